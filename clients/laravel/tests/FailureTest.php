<?php

namespace Herald\Laravel\Tests;

use Herald\Laravel\Tests\Fixtures\NowEvent;
use Herald\Laravel\Tests\Fixtures\PlainEvent;
use Herald\Laravel\Tests\Fixtures\QueuedOn;
use Illuminate\Broadcasting\BroadcastException;

/**
 * Redis unreachable at dispatch: a BroadcastException naming the Redis connection and the
 * herald queue, for queued and immediate events; never a silent drop.
 */
class FailureTest extends TestCase
{
    protected function config(): array
    {
        $config = parent::config();
        $config['database']['redis']['down'] = [
            'host' => '127.0.0.1', 'port' => RedisServer::freePort(), 'database' => 0, 'timeout' => 1,
        ];
        $config['broadcasting']['connections']['herald']['connection'] = 'down';

        return $config;
    }

    /** @dataProvider events */
    public function test_an_unreachable_redis_is_a_broadcast_exception_naming_connection_and_queue($event, $queue)
    {
        try {
            event($event);
            $this->fail('the event was dropped silently');
        } catch (BroadcastException $e) {
            $this->assertStringContainsString('Redis connection [down]', $e->getMessage());
            $this->assertStringContainsString("herald queue [{$queue}]", $e->getMessage());
            $this->assertStringContainsString(get_class($event), $e->getMessage());
            $this->assertInstanceOf(\RedisException::class, $e->getPrevious());
        }
        $this->assertNoLaravelJobs();
    }

    public function events(): array
    {
        return [
            'queued' => [new PlainEvent, 'herald:default'],
            'now' => [new NowEvent, 'herald:default'],
            'mapped queue' => [new QueuedOn('high'), 'herald:high'],
        ];
    }

    public function test_a_list_key_holding_something_else_is_a_broadcast_exception()
    {
        $this->app['config']->set('broadcasting.connections.herald.connection', 'default');
        $this->redis->client()->set(self::PREFIX.'herald:default', 'not a list');

        $this->expectException(BroadcastException::class);
        $this->expectExceptionMessage('herald queue [herald:default]');
        event(new PlainEvent);
    }
}
