<?php

namespace Herald\Laravel\Tests;

use Herald\Laravel\HeraldServiceProvider;
use Illuminate\Config\Repository;
use Illuminate\Contracts\Debug\ExceptionHandler;
use Illuminate\Database\Eloquent\Model;
use Illuminate\Foundation\Application;
use Illuminate\Http\Request;
use Illuminate\Queue\Events\JobQueued;
use Illuminate\Support\Facades\Facade;
use PHPUnit\Framework\TestCase as PHPUnitTestCase;

/**
 * A real Laravel application (Debian's framework) per test: the framework's own providers, a
 * SQLite database in memory, the test run's own redis-server (phpredis, key prefix
 * `test_prefix:`), Laravel's `redis` queue, and HeraldServiceProvider listed as config/app.php
 * lists it.
 */
abstract class TestCase extends PHPUnitTestCase
{
    const PREFIX = 'test_prefix:';

    /** @var \Illuminate\Foundation\Application */
    protected $app;

    /** @var \Herald\Laravel\Tests\RedisServer */
    protected $redis;

    /** @var \Illuminate\Queue\Events\JobQueued[] jobs Laravel's own queue received */
    protected $laravelJobs = [];

    /** @var \Throwable[] what report() was given */
    protected $reported = [];

    protected function setUp(): void
    {
        parent::setUp();
        $this->redis = RedisServer::shared();
        $this->redis->clear();
        $this->app = $this->createApplication($this->config());
    }

    protected function tearDown(): void
    {
        Facade::clearResolvedInstances();
        Facade::setFacadeApplication(null);
        Model::clearBootedModels();
        $this->app->flush();
        parent::tearDown();
    }

    /**
     * The configuration, as config/*.php of an app would give it.
     */
    protected function config(): array
    {
        return [
            'app' => [
                'name' => 'herald-tests',
                'env' => 'testing',
                'debug' => true,
                'key' => 'base64:'.base64_encode(str_repeat('k', 32)),
                'cipher' => 'AES-256-CBC',
            ],
            'broadcasting' => [
                'default' => 'herald',
                'connections' => [
                    'herald' => [
                        'driver' => 'herald',
                        'connection' => 'default',
                        'queue' => 'herald:default',
                        'queues' => ['high' => 'herald:high'],
                    ],
                    'redis' => ['driver' => 'redis', 'connection' => 'default'],
                    'log' => ['driver' => 'log'],
                    'null' => ['driver' => 'null'],
                ],
            ],
            'database' => [
                'default' => 'sqlite',
                'connections' => [
                    'sqlite' => ['driver' => 'sqlite', 'database' => ':memory:', 'prefix' => '', 'foreign_key_constraints' => true],
                ],
                'redis' => [
                    'client' => 'phpredis',
                    'options' => ['prefix' => self::PREFIX],
                    'default' => ['host' => '127.0.0.1', 'port' => $this->redis->port, 'database' => 0, 'read_timeout' => 2],
                ],
            ],
            'queue' => [
                'default' => 'redis',
                'connections' => [
                    'redis' => ['driver' => 'redis', 'connection' => 'default', 'queue' => 'default', 'retry_after' => 90, 'block_for' => null],
                    'sync' => ['driver' => 'sync'],
                ],
                'failed' => ['driver' => 'null'],
            ],
            'cache' => [
                'default' => 'array',
                'stores' => ['array' => ['driver' => 'array', 'serialize' => false]],
                'prefix' => 'cache',
            ],
            'logging' => [
                'default' => 'null',
                'channels' => ['null' => ['driver' => 'monolog', 'handler' => \Monolog\Handler\NullHandler::class]],
            ],
        ];
    }

    protected function createApplication(array $config): Application
    {
        $app = new Application(sys_get_temp_dir());
        $app->instance('config', new Repository($config));
        $app->instance('request', Request::create('http://localhost/', 'POST'));

        Facade::clearResolvedInstances();
        Facade::setFacadeApplication($app);

        $reported = &$this->reported;
        $app->singleton(ExceptionHandler::class, function () use (&$reported) {
            return new class($reported) implements ExceptionHandler {
                private $reported;

                public function __construct(&$reported)
                {
                    $this->reported = &$reported;
                }

                public function report(\Throwable $e)
                {
                    $this->reported[] = $e;
                }

                public function shouldReport(\Throwable $e)
                {
                    return true;
                }

                public function render($request, \Throwable $e)
                {
                    throw $e;
                }

                public function renderForConsole($output, \Throwable $e)
                {
                    throw $e;
                }
            };
        });

        foreach ([
            \Illuminate\Bus\BusServiceProvider::class,
            \Illuminate\Cache\CacheServiceProvider::class,
            \Illuminate\Database\DatabaseServiceProvider::class,
            \Illuminate\Queue\QueueServiceProvider::class,
            \Illuminate\Redis\RedisServiceProvider::class,
            \Illuminate\Broadcasting\BroadcastServiceProvider::class,
            \Illuminate\Notifications\NotificationServiceProvider::class,
            HeraldServiceProvider::class,
        ] as $provider) {
            $app->register($provider);
        }

        $app->boot();

        $jobs = &$this->laravelJobs;
        $app['events']->listen(JobQueued::class, function ($event) use (&$jobs) {
            $jobs[] = $event;
        });

        return $app;
    }

    /**
     * The envelopes on a herald list (oldest first), decoded, read without any prefix.
     */
    protected function envelopes(string $queue = 'herald:default'): array
    {
        $raw = $this->redis->client()->lRange(self::PREFIX.$queue, 0, -1);

        return array_map(function ($text) {
            return json_decode($text, true, 512, JSON_THROW_ON_ERROR);
        }, array_reverse($raw));
    }

    /** The raw text of the envelopes on a herald list, oldest first. */
    protected function rawEnvelopes(string $queue = 'herald:default'): array
    {
        return array_reverse($this->redis->client()->lRange(self::PREFIX.$queue, 0, -1));
    }

    /** Every key in Redis, as stored (prefix included). */
    protected function keys(): array
    {
        $keys = $this->redis->client()->keys('*');
        sort($keys);

        return $keys;
    }

    /** The one envelope the test expects on a list. */
    protected function onlyEnvelope(string $queue = 'herald:default'): array
    {
        $envelopes = $this->envelopes($queue);
        $this->assertCount(1, $envelopes, 'envelopes on '.$queue.': '.json_encode($envelopes));

        return $envelopes[0];
    }

    protected function assertNoLaravelJobs(): void
    {
        $this->assertSame([], array_map(function ($e) {
            return get_class($e->job);
        }, $this->laravelJobs), 'jobs reached Laravel\'s queue');
        $this->assertSame([], array_values(array_filter($this->keys(), function ($k) {
            return strpos($k, self::PREFIX.'queues:') === 0;
        })), 'Laravel queue keys in Redis');
    }
}
