<?php

namespace Herald\Laravel\Tests;

use Herald\Laravel\Tests\Fixtures\User;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Broadcast;
use Symfony\Component\HttpKernel\Exception\AccessDeniedHttpException;

/**
 * `/broadcasting/auth` through the app's channels (Broadcast::channel, as routes/channels.php
 * registers them): the answers of Laravel's PusherBroadcaster (`auth` => `pusher`) and of its
 * RedisBroadcaster (`auth` => `redis`).
 */
class AuthTest extends TestCase
{
    const KEY = '278d425bdf160c739803';

    const SECRET = '7ad3773142a6692b25b8';

    protected function config(): array
    {
        $config = parent::config();
        $config['broadcasting']['connections']['herald'] += [
            'auth' => 'pusher',
            'key' => self::KEY,
            'secret' => self::SECRET,
            'encryption_master_key_base64' => base64_encode(str_repeat('a', 32)),
        ];
        $config['broadcasting']['connections']['echo'] = [
            'driver' => 'herald', 'connection' => 'default', 'queue' => 'herald:default', 'auth' => 'redis',
        ];

        return $config;
    }

    private function channels(): void
    {
        foreach (['herald', 'echo'] as $connection) {
            $broadcaster = Broadcast::connection($connection);
            $broadcaster->channel('foobar', function ($user) {
                return $user->id === 10;
            });
            $broadcaster->channel('vault', function ($user) {
                return true;
            });
            $broadcaster->channel('room.{id}', function ($user, $id) {
                return $id === '1' ? ['name' => 'Mr. Channels'] : false;
            });
        }
    }

    private function auth(string $connection, string $channel, ?int $userId = 10, array $extra = [])
    {
        $this->channels();
        $request = Request::create('/broadcasting/auth', 'POST', ['channel_name' => $channel, 'socket_id' => '1234.1234'] + $extra);
        $request->setUserResolver(function () use ($userId) {
            return $userId === null ? null : (new User)->forceFill(['id' => $userId]);
        });

        return Broadcast::connection($connection)->auth($request);
    }

    public function test_pusher_mode_signs_private_channels_as_the_docs_example()
    {
        $this->assertSame(
            ['auth' => self::KEY.':58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4'],
            $this->auth('herald', 'private-foobar')
        );
    }

    public function test_pusher_mode_signs_presence_channels_with_the_users_id_and_info()
    {
        $answer = $this->auth('herald', 'presence-room.1');

        $this->assertSame('{"user_id":"10","user_info":{"name":"Mr. Channels"}}', $answer['channel_data']);
        $this->assertSame(
            self::KEY.':'.hash_hmac('sha256', '1234.1234:presence-room.1:'.$answer['channel_data'], self::SECRET),
            $answer['auth']
        );
    }

    public function test_pusher_mode_adds_the_shared_secret_for_encrypted_channels()
    {
        $answer = $this->auth('herald', 'private-encrypted-vault');

        $this->assertSame(base64_encode(hash('sha256', 'private-encrypted-vault'.str_repeat('a', 32), true)), $answer['shared_secret']);
        $this->assertSame(self::KEY.':'.hash_hmac('sha256', '1234.1234:private-encrypted-vault', self::SECRET), $answer['auth']);
    }

    public function test_pusher_mode_answers_jsonp_when_asked()
    {
        $response = $this->auth('herald', 'private-foobar', 10, ['callback' => 'cb']);

        $this->assertStringStartsWith('/**/cb(', $response->getContent());
        $this->assertStringContainsString('58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4', $response->getContent());
    }

    public function test_redis_mode_answers_as_laravels_redis_broadcaster()
    {
        $this->assertSame('true', $this->auth('echo', 'private-foobar'));
        $this->assertSame(
            '{"channel_data":{"user_id":10,"user_info":{"name":"Mr. Channels"}}}',
            $this->auth('echo', 'presence-room.1')
        );
    }

    public function test_redis_mode_strips_the_redis_prefix_from_the_channel_name()
    {
        $this->assertSame('true', $this->auth('echo', self::PREFIX.'private-foobar'));
    }

    /** @dataProvider refusals */
    public function test_refusals_are_403($connection, $channel, $userId)
    {
        $this->expectException(AccessDeniedHttpException::class);
        $this->auth($connection, $channel, $userId);
    }

    public function refusals(): array
    {
        return [
            'pusher: the callback says no' => ['herald', 'private-foobar', 11],
            'pusher: no user' => ['herald', 'private-foobar', null],
            'pusher: no such channel' => ['herald', 'private-nope', 10],
            'pusher: presence callback false' => ['herald', 'presence-room.2', 10],
            'redis: the callback says no' => ['echo', 'private-foobar', 11],
            'redis: no user' => ['echo', 'presence-room.1', null],
        ];
    }

    public function test_user_authentication_signs_the_user_data_where_laravel_has_it()
    {
        if (! method_exists(\Illuminate\Broadcasting\Broadcasters\Broadcaster::class, 'resolveAuthenticatedUserUsing')) {
            // Laravel 8 has no /broadcasting/user-auth: the method answers nothing.
            $this->assertNull(Broadcast::connection('herald')->resolveAuthenticatedUser(Request::create('/')));

            return;
        }

        Broadcast::connection('herald')->resolveAuthenticatedUserUsing(function () {
            return ['id' => '12345'];
        });
        $this->assertSame([
            'auth' => self::KEY.':4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba',
            'user_data' => '{"id":"12345"}',
        ], Broadcast::connection('herald')->resolveAuthenticatedUser(Request::create('/', 'POST', ['socket_id' => '1234.1234'])));
    }

    public function test_pusher_mode_without_credentials_is_a_configuration_error()
    {
        $this->app['config']->set('broadcasting.connections.bad', ['driver' => 'herald', 'auth' => 'pusher']);

        $this->expectExceptionMessage('needs the Pusher app\'s key and secret');
        Broadcast::connection('bad');
    }
}
