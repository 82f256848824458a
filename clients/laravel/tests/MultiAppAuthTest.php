<?php

namespace Herald\Laravel\Tests;

use Herald\Laravel\Herald;
use Herald\Laravel\Tests\Fixtures\User;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Broadcast;
use InvalidArgumentException;
use LogicException;
use Symfony\Component\HttpKernel\Exception\AccessDeniedHttpException;

/**
 * `/broadcasting/auth` for a multi-tenant app on one herald connection with `apps`: each
 * request is signed with its own tenant's Pusher key and secret, read from herald's hash
 * (`herald:pusher:apps:<connection>`, behind the Redis prefix) in a real redis-server, so a
 * tenant added or rotated there is signed for on the next request.
 */
class MultiAppAuthTest extends TestCase
{
    const MASTER = 'YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=';

    protected function config(): array
    {
        $config = parent::config();
        $config['broadcasting']['connections']['herald'] += [
            'auth' => 'pusher',
            'apps' => 'tenants',
            'encryption_master_key_base64' => self::MASTER,
        ];

        return $config;
    }

    private function addApp(string $app, string $key, string $secret): void
    {
        $this->redis->client()->hSet(
            self::PREFIX.'herald:pusher:apps:tenants',
            $app,
            json_encode(['app_id' => "id-{$app}", 'key' => $key, 'secret' => $secret])
        );
    }

    /** `/broadcasting/auth` on `$channel` for a request whose tenant (X-Tenant) is `$tenant`. */
    private function auth(?string $tenant, string $channel = 'private-orders')
    {
        Broadcast::connection('herald')->channel('orders', function ($user) {
            return true;
        });
        Broadcast::connection('herald')->channel('room', function ($user) {
            return ['name' => 'Ada'];
        });
        Broadcast::connection('herald')->channel('vault', function ($user) {
            return true;
        });
        $request = Request::create('/broadcasting/auth', 'POST', ['channel_name' => $channel, 'socket_id' => '1234.1234']);
        if ($tenant !== null) {
            $request->headers->set('X-Tenant', $tenant);
        }
        $request->setUserResolver(function () {
            return (new User)->forceFill(['id' => 7]);
        });

        return Broadcast::connection('herald')->auth($request);
    }

    private function tenantFromHeader(): void
    {
        Herald::resolveAuthAppUsing(function (Request $request) {
            return $request->header('X-Tenant');
        });
    }

    public function test_each_request_is_signed_with_its_own_tenants_key_and_secret()
    {
        $this->addApp('acme', 'acme-key', 'acme-secret');
        $this->addApp('globex', 'globex-key', 'globex-secret');
        $this->tenantFromHeader();

        foreach (['acme', 'globex'] as $tenant) {
            $this->assertSame(
                ['auth' => "{$tenant}-key:".hash_hmac('sha256', '1234.1234:private-orders', "{$tenant}-secret")],
                $this->auth($tenant)
            );
        }
    }

    public function test_presence_and_encrypted_channels_use_the_tenants_secret_too()
    {
        $this->addApp('acme', 'acme-key', 'acme-secret');
        $this->tenantFromHeader();

        $presence = $this->auth('acme', 'presence-room');
        $this->assertSame('{"user_id":"7","user_info":{"name":"Ada"}}', $presence['channel_data']);
        $this->assertSame(
            'acme-key:'.hash_hmac('sha256', '1234.1234:presence-room:'.$presence['channel_data'], 'acme-secret'),
            $presence['auth']
        );

        $encrypted = $this->auth('acme', 'private-encrypted-vault');
        $this->assertSame('acme-key:'.hash_hmac('sha256', '1234.1234:private-encrypted-vault', 'acme-secret'), $encrypted['auth']);
        $this->assertSame(
            base64_encode(hash('sha256', 'private-encrypted-vault'.base64_decode(self::MASTER), true)),
            $encrypted['shared_secret']
        );
    }

    public function test_a_tenant_added_or_rotated_in_herald_is_signed_for_on_the_next_request()
    {
        $this->tenantFromHeader();
        try {
            $this->auth('initech');
            $this->fail('an app herald does not have is refused');
        } catch (AccessDeniedHttpException $e) {
            $this->assertStringContainsString('[initech]', $e->getMessage());
        }

        $this->addApp('initech', 'initech-key', 'old-secret');
        $this->assertSame('initech-key:'.hash_hmac('sha256', '1234.1234:private-orders', 'old-secret'), $this->auth('initech')['auth']);

        $this->addApp('initech', 'initech-key', 'new-secret');
        $this->assertSame('initech-key:'.hash_hmac('sha256', '1234.1234:private-orders', 'new-secret'), $this->auth('initech')['auth']);
    }

    public function test_an_unreadable_entry_is_refused_without_showing_it()
    {
        $this->tenantFromHeader();
        $this->redis->client()->hSet(self::PREFIX.'herald:pusher:apps:tenants', 'broken', '{"key":"k","secret":');

        try {
            $this->auth('broken');
            $this->fail('an unreadable entry is refused');
        } catch (AccessDeniedHttpException $e) {
            $this->assertStringNotContainsString('secret"', $e->getMessage());
        }
    }

    public function test_without_a_resolver_the_connections_app_signs()
    {
        $this->addApp('acme', 'acme-key', 'acme-secret');
        $this->app['config']->set('broadcasting.connections.fixed', [
            'driver' => 'herald', 'auth' => 'pusher', 'apps' => 'tenants', 'app' => 'acme',
        ]);
        Broadcast::connection('fixed')->channel('orders', function ($user) {
            return true;
        });
        $request = Request::create('/broadcasting/auth', 'POST', ['channel_name' => 'private-orders', 'socket_id' => '1.2']);
        $request->setUserResolver(function () {
            return (new User)->forceFill(['id' => 7]);
        });

        $this->assertSame(
            ['auth' => 'acme-key:'.hash_hmac('sha256', '1.2:private-orders', 'acme-secret')],
            Broadcast::connection('fixed')->auth($request)
        );
    }

    public function test_nothing_naming_the_requests_app_is_a_clear_error()
    {
        $this->expectException(LogicException::class);
        $this->expectExceptionMessage('Herald::resolveAuthAppUsing()');
        $this->auth(null);
    }

    public function test_apps_needs_pusher_auth()
    {
        $this->app['config']->set('broadcasting.connections.bad', [
            'driver' => 'herald', 'auth' => 'redis', 'apps' => 'tenants',
        ]);
        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage("apps must name herald's multi-app Pusher connection");
        Broadcast::connection('bad');
    }
}
