<?php

namespace Herald\Laravel\Tests;

use Herald\Laravel\Tests\Fixtures\PerConnection;
use Herald\Laravel\Tests\Fixtures\UniqueProgress;
use Illuminate\Broadcasting\AnonymousEvent;
use Illuminate\Bus\UniqueLock;
use Illuminate\Support\Facades\Cache;

/**
 * The package against Laravel 11.x's own classes (tests/laravel-11/, copied from
 * laravel/framework 11.x), loaded in place of Debian's 8.83 ones in a process of each test's
 * own: anonymous events, per-connection channels and payloads, and ShouldBeUnique broadcasts,
 * which 8.x does not have.
 *
 * @runTestsInSeparateProcesses
 * @preserveGlobalState disabled
 */
class Laravel11Test extends TestCase
{
    protected function setUp(): void
    {
        foreach (['ShouldBeUnique', 'UniqueLock', 'BroadcastEvent', 'UniqueBroadcastEvent', 'AnonymousEvent'] as $class) {
            require_once __DIR__.'/laravel-11/'.$class.'.php';
        }
        $this->assertTrue(method_exists(\Illuminate\Broadcasting\BroadcastEvent::class, 'getConnectionChannels'), '11.x BroadcastEvent loaded');
        parent::setUp();
    }

    public function test_an_anonymous_event_is_named_anonymous_event_unless_named()
    {
        (new AnonymousEvent('orders'))->with(['id' => 1])->send();
        (new AnonymousEvent(['orders', 'other']))->as('order.placed')->sendNow();

        [$anonymous, $named] = $this->envelopes();
        $this->assertSame('AnonymousEvent', $anonymous['event']);
        $this->assertSame(['id' => 1, 'socket' => null], $anonymous['data']);
        $this->assertSame(['orders'], $anonymous['channels']);
        $this->assertSame('order.placed', $named['event']);
        $this->assertSame(['orders', 'other'], $named['channels']);
        $this->assertNoLaravelJobs();
    }

    public function test_per_connection_channels_and_payloads_become_one_envelope_per_connection()
    {
        event(new PerConnection);

        [$defaults, $pusher] = $this->envelopes();
        $this->assertSame(['for-defaults'], $defaults['channels']);
        $this->assertSame(['a' => 1], $defaults['data']);
        $this->assertArrayNotHasKey('connections', $defaults);
        $this->assertSame(['private-for-pusher'], $pusher['channels']);
        $this->assertSame(['b' => 2], $pusher['data']);
        $this->assertSame(['pusher'], $pusher['connections']);
    }

    public function test_a_unique_broadcast_is_dropped_while_its_lock_is_held_and_the_lock_released_after_the_push()
    {
        event(new UniqueProgress(10));
        $this->assertSame([10], array_column(array_column($this->envelopes(), 'data'), 'percent'));

        // Held elsewhere (a Laravel worker, another request): this dispatch is dropped.
        $job = new \Illuminate\Broadcasting\UniqueBroadcastEvent(new UniqueProgress(0));
        $this->assertTrue((new UniqueLock(Cache::store()))->acquire($job), 'the lock was released after the first push');
        event(new UniqueProgress(20));
        $this->assertSame([10], array_column(array_column($this->envelopes(), 'data'), 'percent'));

        (new UniqueLock(Cache::store()))->release($job);
        event(new UniqueProgress(30));
        $this->assertSame([10, 30], array_column(array_column($this->envelopes(), 'data'), 'percent'));
        $this->assertNoLaravelJobs();
    }
}
