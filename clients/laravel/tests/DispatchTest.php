<?php

namespace Herald\Laravel\Tests;

use Herald\Laravel\HeraldBroadcaster;
use Herald\Laravel\HeraldBroadcastManager;
use Herald\Laravel\Tests\Fixtures\Conditional;
use Herald\Laravel\Tests\Fixtures\CustomPayload;
use Herald\Laravel\Tests\Fixtures\EmptyEvent;
use Herald\Laravel\Tests\Fixtures\NowEvent;
use Herald\Laravel\Tests\Fixtures\OrderShipped;
use Herald\Laravel\Tests\Fixtures\PlainEvent;
use Herald\Laravel\Tests\Fixtures\QueuedOn;
use Herald\Laravel\Tests\Fixtures\Routed;
use Illuminate\Broadcasting\BroadcastEvent;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Broadcast;

/**
 * Events dispatched the way apps dispatch them (event(), broadcast(), ->toOthers()) become
 * envelopes on herald's list at once: payloads, names, channels and envelope fields as Laravel
 * computes them, and nothing in Laravel's own queue.
 */
class DispatchTest extends TestCase
{
    /** The payload the framework's own BroadcastEvent computes for an event. */
    private function laravelPayload($event): array
    {
        $job = new class($event) extends BroadcastEvent {
            public function payload()
            {
                return $this->getPayloadFromEvent($this->event);
            }
        };

        return $job->payload();
    }

    public function test_the_manager_is_replaced_and_the_herald_driver_registered()
    {
        $this->assertInstanceOf(HeraldBroadcastManager::class, Broadcast::getFacadeRoot());
        $this->assertInstanceOf(HeraldBroadcaster::class, Broadcast::connection('herald'));
        $this->assertInstanceOf(HeraldBroadcaster::class, Broadcast::connection());
    }

    public function test_an_event_with_neither_trait_nor_broadcast_with_carries_no_socket_in_data()
    {
        event(new PlainEvent(7));

        $envelope = $this->onlyEnvelope();
        $this->assertSame(['id' => 7, 'tags' => ['a', 'b'], 'nothing' => null], $envelope['data']);
        $this->assertNull($envelope['socket']);
        $this->assertTrue($envelope['final_payload']);
        $this->assertSame(PlainEvent::class, $envelope['event']);
        $this->assertSame(['plain'], $envelope['channels']);
        $this->assertNoLaravelJobs();
    }

    public function test_public_properties_arrayables_and_the_trait_socket_as_laravel_computes_them()
    {
        $event = new OrderShipped(42);
        event($event);

        $raw = $this->rawEnvelopes()[0];
        $envelope = json_decode($raw, true);
        $this->assertEquals([
            'orderId' => 42,
            'lines' => [['sku' => 'A-1', 'qty' => 2], ['sku' => 'B/2', 'qty' => 1.5]],
            'note' => "caf\u{e9} / \u{2713} \"q\" <b>",
            'socket' => null,
        ], $envelope['data']);
        $this->assertSame(['orders', 'private-orders.42'], $envelope['channels']);
        // Byte for byte what RedisBroadcaster json_encodes as `data` (default flags: \/ and \u).
        $this->assertStringContainsString('"data":'.json_encode($this->laravelPayload($event)).',', $raw);
        $this->assertStringContainsString('B\/2', $raw);
        $this->assertNoLaravelJobs();
    }

    public function test_to_others_takes_the_socket_from_x_socket_id()
    {
        $this->app->instance('request', Request::create('/', 'POST', [], [], [], ['HTTP_X_SOCKET_ID' => '1234.5678']));

        broadcast(new OrderShipped(1))->toOthers();
        broadcast(new CustomPayload)->toOthers();
        broadcast(new OrderShipped(2));

        [$others, $custom, $everyone] = $this->envelopes();
        $this->assertSame('1234.5678', $others['socket']);
        $this->assertSame('1234.5678', $others['data']['socket']);
        $this->assertSame(['a' => 1, 'nested' => ['b' => [1, 2]], 'socket' => '1234.5678'], $custom['data']);
        $this->assertSame('1234.5678', $custom['socket']);
        $this->assertNull($everyone['socket']);
        $this->assertArrayHasKey('socket', $everyone['data']);
        $this->assertNull($everyone['data']['socket']);
    }

    public function test_broadcast_with_and_broadcast_as_and_channel_kinds()
    {
        event(new CustomPayload);
        event(new NowEvent);

        [$custom, $now] = $this->envelopes();
        $this->assertSame('payload.custom', $custom['event']);
        $this->assertSame(['presence-room.1', 'raw-string-channel'], $custom['channels']);
        $this->assertSame(['a' => 1, 'nested' => ['b' => [1, 2]], 'socket' => null], $custom['data']);
        $this->assertSame(['private-encrypted-vault'], $now['channels']);
        $this->assertSame(['secret' => 'sealed'], $now['data']);
        $this->assertNoLaravelJobs();
    }

    public function test_an_empty_payload_is_phps_empty_array()
    {
        event(new EmptyEvent);

        $raw = $this->rawEnvelopes()[0];
        $this->assertStringContainsString('"data":[],', $raw);
        $this->assertSame([], json_decode($raw, true)['data']);
    }

    public function test_the_envelope_has_every_field_herald_reads()
    {
        $before = microtime(true);
        event(new PlainEvent);
        $envelope = $this->onlyEnvelope();

        $this->assertSame(['id', 'event', 'channels', 'data', 'socket', 'created_at', 'final_payload'], array_keys($envelope));
        $this->assertMatchesRegularExpression('/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/', $envelope['id']);
        $this->assertGreaterThanOrEqual($before, $envelope['created_at']);
        $this->assertLessThanOrEqual(microtime(true), $envelope['created_at']);

        event(new PlainEvent);
        $this->assertNotSame($envelope['id'], $this->envelopes()[1]['id']);
    }

    public function test_the_connections_redis_prefix_applies_to_the_list_key_not_to_channels()
    {
        event(new PlainEvent);

        $this->assertSame([self::PREFIX.'herald:default'], $this->keys());
        $this->assertSame(['plain'], $this->onlyEnvelope()['channels']);
    }

    public function test_broadcast_queue_picks_the_mapped_herald_queue_and_stays_out_of_the_payload()
    {
        event(new QueuedOn('high'));
        event(new QueuedOn('unmapped'));
        event(new QueuedOn(null));

        $this->assertSame(['value' => 1], $this->onlyEnvelope('herald:high')['data']);
        $this->assertCount(2, $this->envelopes('herald:default'));
        $this->assertSame([self::PREFIX.'herald:default', self::PREFIX.'herald:high'], $this->keys());
        $this->assertNoLaravelJobs();
    }

    public function test_broadcast_when_false_sends_nothing()
    {
        event(new Conditional(false));
        event(new Conditional(true));

        $this->assertSame(['send' => true], $this->onlyEnvelope()['data']);
    }

    public function test_broadcast_via_names_herald_connections_and_a_herald_connection_means_herald_s_defaults()
    {
        broadcast(new Routed)->via('pusher');
        broadcast((new Routed)->broadcastVia(['redis', 'pusher']));
        broadcast(new Routed)->via('herald');
        broadcast((new Routed)->broadcastVia(['herald', 'pusher']));

        $envelopes = $this->envelopes();
        $this->assertSame(['pusher'], $envelopes[0]['connections']);
        $this->assertSame(['redis', 'pusher'], $envelopes[1]['connections']);
        $this->assertArrayNotHasKey('connections', $envelopes[2]);
        // herald's defaults and a named connection cannot share one envelope: two.
        $this->assertArrayNotHasKey('connections', $envelopes[3]);
        $this->assertSame(['pusher'], $envelopes[4]['connections']);
        $this->assertSame($envelopes[3]['data'], $envelopes[4]['data']);
        $this->assertCount(5, $envelopes);
        $this->assertNoLaravelJobs();
    }

    public function test_tries_becomes_max_attempts()
    {
        $event = new Routed;
        $event->tries = 3;
        event($event);
        event(new Routed);

        [$three, $default] = $this->envelopes();
        $this->assertSame(3, $three['max_attempts']);
        $this->assertArrayNotHasKey('max_attempts', $default);
    }

    public function test_a_default_connection_that_is_not_herald_leaves_the_event_to_laravel()
    {
        $this->app['config']->set('broadcasting.default', 'log');

        event(new PlainEvent);
        broadcast(new Routed)->via('herald');

        $this->assertSame([BroadcastEvent::class], array_map(function ($e) {
            return get_class($e->job);
        }, $this->laravelJobs), 'the event without herald went to Laravel\'s queue');
        $this->assertSame(['n' => 1, 'afterCommit' => null, 'tries' => null], $this->onlyEnvelope()['data']);
    }

    public function test_a_direct_broadcast_call_pushes_an_envelope_too()
    {
        // What a Laravel worker does with a BroadcastEvent job queued before the switch.
        (new BroadcastEvent(new PlainEvent(3)))->handle($this->app['Illuminate\Contracts\Broadcasting\Factory']);

        $envelope = $this->onlyEnvelope();
        $this->assertSame(['id' => 3, 'tags' => ['a', 'b'], 'nothing' => null], $envelope['data']);
        $this->assertSame(['plain'], $envelope['channels']);
    }
}
