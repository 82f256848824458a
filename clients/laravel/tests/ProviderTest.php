<?php

namespace Herald\Laravel\Tests;

use Herald\Laravel\HeraldBroadcaster;
use Herald\Laravel\HeraldBroadcastManager;
use Herald\Laravel\HeraldServiceProvider;
use Herald\Laravel\Tests\Fixtures\PlainEvent;
use Illuminate\Config\Repository;
use Illuminate\Filesystem\Filesystem;
use Illuminate\Foundation\Application;
use Illuminate\Foundation\ProviderRepository;
use Illuminate\Support\Facades\Broadcast;
use Illuminate\Support\Facades\Facade;
use Illuminate\Support\ServiceProvider;

/**
 * The install: composer.json as Composer and Laravel's package discovery read it, and the
 * provider listed in config/app.php's providers, loaded the way Laravel loads that list (its
 * ProviderRepository, with the framework's deferred BroadcastServiceProvider), with no config
 * of its own.
 */
class ProviderTest extends TestCase
{
    public function test_composer_json_names_the_package_its_autoload_and_its_provider()
    {
        $composer = json_decode(file_get_contents(dirname(__DIR__).'/composer.json'), true, 512, JSON_THROW_ON_ERROR);

        $this->assertSame('herald/laravel', $composer['name']);
        $this->assertSame(['Herald\\Laravel\\' => 'src/'], $composer['autoload']['psr-4']);
        $this->assertSame([HeraldServiceProvider::class], $composer['extra']['laravel']['providers']);
        $this->assertTrue(is_subclass_of($composer['extra']['laravel']['providers'][0], ServiceProvider::class));
        $this->assertFileExists(dirname(__DIR__).'/src/HeraldServiceProvider.php');
    }

    /** An app booted as Laravel boots config/app.php's providers. */
    private function appWithProviderList(array $broadcasting): Application
    {
        $config = $this->config();
        $config['broadcasting'] = $broadcasting;
        $base = sys_get_temp_dir().'/herald-provider-test-'.getmypid();
        @mkdir($base.'/bootstrap/cache', 0777, true);
        @unlink($base.'/bootstrap/cache/services.php');

        $app = new Application($base);
        $app->instance('config', new Repository($config));
        Facade::clearResolvedInstances();
        Facade::setFacadeApplication($app);

        (new ProviderRepository($app, new Filesystem, $base.'/bootstrap/cache/services.php'))->load([
            \Illuminate\Bus\BusServiceProvider::class,
            \Illuminate\Cache\CacheServiceProvider::class,
            \Illuminate\Database\DatabaseServiceProvider::class,
            \Illuminate\Queue\QueueServiceProvider::class,
            \Illuminate\Redis\RedisServiceProvider::class,
            \Illuminate\Broadcasting\BroadcastServiceProvider::class,
            HeraldServiceProvider::class,
        ]);
        $app->boot();
        // Laravel registers BroadcastManager only when it is first asked for.
        $this->assertTrue($app->isDeferredService(\Illuminate\Broadcasting\BroadcastManager::class));

        return $app;
    }

    public function test_listing_the_provider_is_enough_and_supplies_the_herald_connection()
    {
        $this->app = $this->appWithProviderList([
            'default' => 'herald',
            'connections' => ['log' => ['driver' => 'log']],
        ]);

        $this->assertSame(
            ['driver' => 'herald', 'connection' => 'default', 'queue' => 'herald:default'],
            $this->app['config']['broadcasting.connections.herald']
        );
        $this->assertInstanceOf(HeraldBroadcastManager::class, Broadcast::getFacadeRoot());
        $this->assertInstanceOf(HeraldBroadcaster::class, Broadcast::connection());
        $this->assertSame('redis', Broadcast::connection()->authMode());

        event(new PlainEvent);
        $this->assertSame(['plain'], $this->onlyEnvelope()['channels']);
        $this->assertNoLaravelJobs();
    }

    public function test_the_supplied_connection_authorizes_with_the_apps_pusher_credentials()
    {
        $this->app = $this->appWithProviderList([
            'default' => 'herald',
            'connections' => [
                'pusher' => ['driver' => 'pusher', 'key' => 'k', 'secret' => 's', 'app_id' => '1',
                    'options' => ['encryption_master_key_base64' => base64_encode(str_repeat('m', 32))]],
            ],
        ]);

        $this->assertSame('pusher', Broadcast::connection()->authMode());
        $this->assertSame('k:'.hash_hmac('sha256', '1.2:private-x', 's'), Broadcast::connection()->signature()->authorizeChannel('private-x', '1.2')['auth']);
        $this->assertArrayHasKey('shared_secret', Broadcast::connection()->signature()->authorizeChannel('private-encrypted-x', '1.2'));
    }

    public function test_an_apps_own_herald_connection_is_kept()
    {
        $this->app = $this->appWithProviderList([
            'default' => 'herald',
            'connections' => ['herald' => ['driver' => 'herald', 'connection' => 'default', 'queue' => 'mine']],
        ]);

        event(new PlainEvent);
        $this->assertCount(1, $this->envelopes('mine'));
        $this->assertSame([], $this->envelopes('herald:default'));
    }
}
