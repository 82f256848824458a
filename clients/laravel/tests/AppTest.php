<?php

namespace Herald\Laravel\Tests;

use Herald\Laravel\Envelope;
use Herald\Laravel\Herald;
use Herald\Laravel\Tests\Fixtures\PlainEvent;
use Herald\Laravel\Tests\Fixtures\Routed;
use Herald\Laravel\Tests\Fixtures\TenantEvent;
use Illuminate\Broadcasting\BroadcastEvent;
use Illuminate\Broadcasting\BroadcastException;
use Illuminate\Broadcasting\BroadcastManager;
use Illuminate\Support\Facades\DB;

/**
 * The envelope's `app` (the Pusher app of herald's multi-app connections): the event's
 * broadcastApp(), else the application's resolver (Herald::resolveAppUsing), else the herald
 * connection's `app` setting; no member when none answers; an answer herald would refuse is a
 * BroadcastException at dispatch with nothing pushed.
 */
class AppTest extends TestCase
{
    /** The `app` of each envelope on herald's default list, null where it has none. */
    private function apps(): array
    {
        return array_map(function ($envelope) {
            return array_key_exists('app', $envelope) ? $envelope['app'] : null;
        }, $this->envelopes());
    }

    public function test_an_events_broadcast_app_is_the_envelopes_app_queued_or_sent_at_once()
    {
        event(new TenantEvent('acme'));
        event(new TenantEvent('beta', true));

        [$queued, $now] = $this->envelopes();
        $this->assertSame(['acme', 'beta'], [$queued['app'], $now['app']]);
        $this->assertSame(['n' => 1], $queued['data'], 'the app is not part of the payload');
        $this->assertNoLaravelJobs();
    }

    public function test_an_event_no_one_names_an_app_for_has_no_app_member()
    {
        Herald::resolveAppUsing(function () {
            return null;
        });
        event(new TenantEvent(null));
        event(new PlainEvent);

        $this->assertSame([null, null], $this->apps());
        $this->assertSame(['id', 'event', 'channels', 'data', 'socket', 'created_at', 'final_payload'], array_keys($this->envelopes()[0]));
    }

    public function test_the_resolver_is_asked_with_the_event_for_events_that_name_none()
    {
        $asked = [];
        Herald::resolveAppUsing(function ($event) use (&$asked) {
            $asked[] = $event;

            return 'tenant-'.$event->id;
        });
        $event = new PlainEvent(5);
        event($event);

        $this->assertSame(['tenant-5'], $this->apps());
        $this->assertSame([$event], $asked, 'the dispatched event object itself');
    }

    public function test_the_events_answer_wins_then_the_resolvers_then_the_connections_setting()
    {
        $this->app['config']->set('broadcasting.connections.herald.app', 'fallback');
        Herald::resolveAppUsing(function ($event) {
            return $event instanceof PlainEvent ? null : 'resolved';
        });

        event(new TenantEvent('own'));
        event(new TenantEvent(null));
        event(new PlainEvent);

        $this->assertSame(['own', 'resolved', 'fallback'], $this->apps());
    }

    public function test_null_removes_the_resolver()
    {
        Herald::resolveAppUsing(function () {
            return 'resolved';
        });
        Herald::resolveAppUsing(null);
        event(new PlainEvent);

        $this->assertSame([null], $this->apps());
    }

    public function test_every_envelope_of_one_event_has_its_app_and_each_herald_connection_its_own_setting()
    {
        $this->app['config']->set('broadcasting.default', 'log');
        $this->app['config']->set('broadcasting.connections.herald.app', 'acme');
        $this->app['config']->set('broadcasting.connections.herald-eu', ['driver' => 'herald', 'queue' => 'herald:eu', 'app' => 'beta']);

        // herald's defaults and the named `pusher` connection: two envelopes, one app.
        broadcast((new TenantEvent('own'))->broadcastVia(['herald', 'pusher']));
        // Two herald connections, no app of its own: each connection's setting.
        broadcast((new Routed)->broadcastVia(['herald', 'herald-eu']));

        $this->assertSame(['own', 'own', 'acme'], $this->apps());
        $this->assertSame('beta', $this->onlyEnvelope('herald:eu')['app']);
    }

    public function test_a_direct_broadcast_call_carries_the_connections_setting()
    {
        // What a Laravel worker does with a BroadcastEvent job queued before the switch: there is
        // no event object for broadcastApp() or the resolver, only the connection's setting.
        $this->app['config']->set('broadcasting.connections.herald.app', 'acme');
        (new BroadcastEvent(new TenantEvent('ignored')))->handle($this->app['Illuminate\Contracts\Broadcasting\Factory']);

        $this->assertSame(['acme'], $this->apps());
    }

    public function test_the_longest_name_and_every_allowed_character_are_taken()
    {
        $longest = str_repeat('a', 100);
        event(new TenantEvent($longest));
        event(new TenantEvent('_Az09-.x'));
        event(new TenantEvent('-'));

        $this->assertSame([$longest, '_Az09-.x', '-'], $this->apps());
    }

    /**
     * @dataProvider refusedApps
     */
    public function test_an_events_refused_answer_is_an_exception_at_dispatch($app, string $said)
    {
        foreach ([false, true] as $now) {
            $this->assertRefused(function () use ($app, $now) {
                event(new TenantEvent($app, $now));
            }, TenantEvent::class, 'its broadcastApp()', $said);
        }
    }

    /**
     * @dataProvider refusedApps
     */
    public function test_the_resolvers_refused_answer_is_an_exception_at_dispatch($app, string $said)
    {
        Herald::resolveAppUsing(function () use ($app) {
            return $app;
        });

        $this->assertRefused(function () {
            event(new PlainEvent);
        }, PlainEvent::class, 'the resolver given to Herald::resolveAppUsing()', $said);
    }

    public function refusedApps(): array
    {
        return [
            'an int' => [42, 'not int 42'],
            'a bool' => [false, 'not bool false'],
            'an array' => [['acme'], 'not array'],
            'an object' => [new \stdClass, 'not stdClass object'],
            'an empty string' => ['', 'not an empty string'],
            'a path' => ['../x', 'not the string "../x"'],
            'a leading dot' => ['.acme', 'not the string ".acme"'],
            'a space' => ['ac me', 'not the string "ac me"'],
            'a trailing newline' => ["acme\n", 'not the string "acme\n"'],
            '101 characters' => [str_repeat('a', 101), 'not the string "'.str_repeat('a', 101).'"'],
        ];
    }

    public function test_an_after_commit_events_refused_app_is_an_exception_at_dispatch_not_at_commit()
    {
        Herald::resolveAppUsing(function () {
            return 7;
        });
        $event = new Routed;
        $event->afterCommit = true;

        $thrown = null;
        DB::transaction(function () use ($event, &$thrown) {
            try {
                event($event);
            } catch (BroadcastException $e) {
                $thrown = $e;
            }
        });

        $this->assertNotNull($thrown, 'event() itself threw, inside the transaction');
        $this->assertStringContainsString('not int 7', $thrown->getMessage());
        $this->assertSame([], $this->envelopes(), 'nothing was pushed at the commit');
    }

    public function test_a_refused_connection_setting_is_an_exception_naming_the_connection()
    {
        $this->app['config']->set('broadcasting.connections.herald.app', '../x');

        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage('Broadcast connection [herald]: app: an app must be a string of 1 to 100 characters');
        event(new PlainEvent);
    }

    public function test_resolve_app_using_needs_the_herald_manager()
    {
        $this->app->instance(BroadcastManager::class, new BroadcastManager($this->app));

        $this->expectException(\LogicException::class);
        $this->expectExceptionMessage('is Herald\Laravel\HeraldServiceProvider registered?');
        Herald::resolveAppUsing(null);
    }

    public function test_the_drivers_app_rule_is_the_envelope_schemas()
    {
        $schema = json_decode(file_get_contents(dirname(__DIR__, 3).'/config/envelope.schema.json'), true, 512, JSON_THROW_ON_ERROR);

        $this->assertSame($schema['properties']['app']['pattern'], Envelope::APP_PATTERN);
        $this->assertSame(['string', 'null'], $schema['properties']['app']['type']);
    }

    /** `$dispatch` throws a BroadcastException saying the event, the source and the answer, and pushes nothing. */
    private function assertRefused(callable $dispatch, string $event, string $source, string $said): void
    {
        try {
            $dispatch();
            $this->fail('the refused app was dispatched');
        } catch (BroadcastException $e) {
            $this->assertStringStartsWith("Herald error: {$event} was not broadcast: the app {$source} answered is refused: an app must be a string of 1 to 100 characters A-Z a-z 0-9 - _ . not starting with \".\", ", $e->getMessage());
            $this->assertStringEndsWith($said.'.', $e->getMessage());
        }
        $this->assertSame([], $this->envelopes());
        $this->assertNoLaravelJobs();
    }
}
