<?php

namespace Herald\Laravel;

use Illuminate\Broadcasting\BroadcastEvent;
use Illuminate\Broadcasting\BroadcastException;
use Illuminate\Broadcasting\BroadcastManager;
use Illuminate\Bus\UniqueLock;
use Illuminate\Contracts\Broadcasting\ShouldBroadcastNow;
use Illuminate\Contracts\Cache\Repository as Cache;
use Illuminate\Database\Eloquent\ModelNotFoundException;

/**
 * Laravel's BroadcastManager, with one change: while the default connection is a `herald`
 * connection (every broadcast then), or for an event that names a `herald` connection, the
 * broadcast is not queued as a BroadcastEvent job. Its envelopes go onto herald's list at
 * dispatch time (herald is the queue), or when the database transaction commits for an
 * `afterCommit` broadcast, where Laravel's queue would have pushed the job. Every other event
 * goes through Laravel's own `queue()`.
 *
 * What Laravel's worker would compute is computed by the framework's own code: the job is the
 * framework's BroadcastEvent (UniqueBroadcastEvent for ShouldBeUnique on 9+), serialized as the
 * queue serializes it (SerializesModels stores model identifiers) and unserialized before it
 * runs (models fetched again), and its own `handle()` runs against a recorder in place of the
 * broadcasters. So names (`broadcastAs`, enums on 13), channels, the payload (`broadcastWith`
 * plus `socket`, or the public properties with Arrayables as arrays and without
 * `broadcastQueue`) and 11+'s per-connection channels and payloads are the running version's.
 *
 * The Pusher app of herald's multi-app connections (the envelope's `app`) is the one thing the
 * driver asks for itself, at dispatch: the event's `broadcastApp()`, else the application's
 * resolver ({@see resolveAppUsing}), else the herald connection's `app` setting; none of them
 * answering means no `app` member.
 */
class HeraldBroadcastManager extends BroadcastManager
{
    /** @var callable|null the application's app for events whose broadcastApp() gives none */
    protected $appResolver;

    /** @var callable|null the application's app of a channel authorization request */
    protected $authAppResolver;

    /**
     * A HeraldBroadcastManager in place of `$manager`, keeping its drivers and custom creators.
     *
     * @param  \Illuminate\Broadcasting\BroadcastManager  $manager
     * @param  \Illuminate\Contracts\Container\Container  $app
     * @return static
     */
    public static function replacing(BroadcastManager $manager, $app)
    {
        if ($manager instanceof static) {
            return $manager;
        }

        $replacement = new static($app);
        $replacement->drivers = $manager->drivers;
        $replacement->customCreators = $manager->customCreators;

        return $replacement;
    }

    /**
     * Queue the given event for broadcast.
     *
     * @param  mixed  $event
     * @return mixed
     */
    public function queue($event)
    {
        $connections = $this->eventConnections($event);
        $primary = $this->heraldConnectionFor($connections);

        if ($primary === null) {
            return parent::queue($event);
        }

        $now = $event instanceof ShouldBroadcastNow ||
            (is_object($event) && method_exists($event, 'shouldBroadcastNow') && $event->shouldBroadcastNow());

        $send = $now
            ? function () use ($event, $primary) {
                $app = $this->eventApp($event);
                $this->sendToHerald(new BroadcastEvent(clone $event), $primary, $this->laravelQueue($event), $app);
            }
            : function () use ($event, $primary) {
                $this->queueForHerald($event, $primary, $this->eventApp($event));
            };

        // ShouldRescue (12+): failures are reported, not thrown, as Laravel does for them.
        $rescue = interface_exists('Illuminate\Contracts\Broadcasting\ShouldRescue')
            && $event instanceof \Illuminate\Contracts\Broadcasting\ShouldRescue
            && method_exists($this, 'rescue');

        return $rescue ? $this->rescue($send) : $send();
    }

    /**
     * What Laravel's queue does with a queued broadcast: the unique lock (9+), the job
     * serialized at dispatch, pushed now or after the transaction commits.
     *
     * @param  string|null  $app  the event's app, asked at dispatch ({@see eventApp})
     */
    protected function queueForHerald($event, string $primary, ?string $app): void
    {
        $queue = $this->laravelQueue($event);
        $job = new BroadcastEvent(clone $event);
        $unique = false;

        if (interface_exists('Illuminate\Contracts\Broadcasting\ShouldBeUnique')
            && $event instanceof \Illuminate\Contracts\Broadcasting\ShouldBeUnique
            && class_exists('Illuminate\Broadcasting\UniqueBroadcastEvent')) {
            $job = new \Illuminate\Broadcasting\UniqueBroadcastEvent(clone $event);

            if (! $this->acquireUniqueLock($job)) {
                return;
            }

            $unique = true;
        }

        // As Queue::createObjectPayload, at dispatch time.
        $serialized = serialize(clone $job);
        $deleteWhenMissingModels = ! empty($job->deleteWhenMissingModels);

        $push = function () use ($serialized, $primary, $queue, $app, $unique, $job, $deleteWhenMissingModels) {
            try {
                try {
                    $restored = unserialize($serialized);
                } catch (ModelNotFoundException $e) {
                    // Laravel's worker fails the job (or deletes it, with
                    // deleteWhenMissingModels): nothing is broadcast, the app goes on.
                    if (! $deleteWhenMissingModels) {
                        report($e);
                    }

                    return;
                }

                $this->sendToHerald($restored, $primary, $queue, $app);
            } finally {
                if ($unique) {
                    $this->releaseUniqueLock($job);
                }
            }
        };

        if ($this->shouldPushAfterCommit($job, $event) && $this->app->bound('db.transactions')) {
            $transactions = $this->app->make('db.transactions');

            // 12+ releases a unique job's lock when its transaction rolls back.
            if ($unique && method_exists($transactions, 'addCallbackForRollback')) {
                $transactions->addCallbackForRollback(function () use ($job) {
                    $this->releaseUniqueLock($job);
                });
            }

            $transactions->addCallback($push);
        } else {
            $push();
        }
    }

    /**
     * Runs the job's own handle() against a recorder and pushes the envelopes: every envelope
     * has `$app`, else its herald connection's `app` setting.
     *
     * @param  \Illuminate\Broadcasting\BroadcastEvent  $job
     */
    protected function sendToHerald($job, string $primary, ?string $laravelQueue, ?string $app): void
    {
        $recorder = new Recorder;
        $job->handle($recorder);

        $default = $this->getDefaultDriver();
        $groups = [];

        foreach ($recorder->broadcasts as [$connection, $channels, $name, $payload]) {
            $resolved = $connection ?? $default;

            // A `herald` connection means herald's own default connections; any other name is
            // one of herald's connections (they mirror config/broadcasting.php's names).
            [$target, $via] = $this->isHerald($resolved) ? [$resolved, null] : [$primary, (string) $resolved];

            // Connections that get the same broadcast share one envelope.
            $key = implode("\0", [
                $target, $via === null ? 'defaults' : 'named',
                json_encode([$name, $channels, $payload], JSON_PARTIAL_OUTPUT_ON_ERROR),
            ]);

            if (! isset($groups[$key])) {
                $groups[$key] = ['target' => $target, 'name' => $name, 'channels' => $channels, 'payload' => $payload, 'via' => []];
            }

            if ($via !== null && ! in_array($via, $groups[$key]['via'], true)) {
                $groups[$key]['via'][] = $via;
            }
        }

        $tries = isset($job->tries) && is_int($job->tries) ? $job->tries : null;
        $byTarget = [];

        // Every envelope encoded before the first push, so an encoding failure pushes nothing.
        foreach ($groups as $group) {
            $target = $group['target'];
            $byTarget[$target] = $byTarget[$target] ?? ['broadcaster' => $this->connection($target), 'name' => $group['name'], 'envelopes' => []];
            $byTarget[$target]['envelopes'][] = Envelope::encode(
                $group['name'], $group['channels'], $group['payload'], $group['via'] ?: null, $tries,
                $app ?? $byTarget[$target]['broadcaster']->app()
            );
        }

        foreach ($byTarget as ['broadcaster' => $broadcaster, 'name' => $name, 'envelopes' => $envelopes]) {
            $broadcaster->push($broadcaster->queueFor($laravelQueue), $envelopes, $name);
        }
    }

    /**
     * The application's answer to "which Pusher app" for every event whose own broadcastApp()
     * gives none (or null: no resolver). It is called at dispatch with the event object (a
     * model broadcast's BroadcastableModelEventOccurred, a notification's
     * BroadcastNotificationCreated, ...) and answers an app name, or null for none.
     *
     * @param  callable|null  $resolver  fn (object $event): ?string
     * @return $this
     */
    public function resolveAppUsing(?callable $resolver)
    {
        $this->appResolver = $resolver;

        return $this;
    }

    /**
     * The application's answer to "which Pusher app" for a channel authorization request
     * (`/broadcasting/auth`, `/broadcasting/user-auth`) on a herald connection with `apps`: the
     * tenant of the request, as the application knows it. Null, or no resolver: the connection's
     * `app` setting.
     *
     * @param  callable|null  $resolver  fn (\Illuminate\Http\Request $request): ?string
     * @return $this
     */
    public function resolveAuthAppUsing(?callable $resolver)
    {
        $this->authAppResolver = $resolver;

        return $this;
    }

    /**
     * The event's app: its broadcastApp(), else the resolver's answer; null when neither names
     * one (then the herald connection's `app` setting applies). An answer herald would not take
     * is an exception here, at dispatch, before anything is pushed.
     *
     * @throws \Illuminate\Broadcasting\BroadcastException
     */
    protected function eventApp($event): ?string
    {
        $answers = [
            'its broadcastApp()' => function () use ($event) {
                return is_object($event) && method_exists($event, 'broadcastApp') ? $event->broadcastApp() : null;
            },
            'the resolver given to Herald::resolveAppUsing()' => function () use ($event) {
                return $this->appResolver === null ? null : ($this->appResolver)($event);
            },
        ];

        foreach ($answers as $source => $answer) {
            $app = $answer();

            if ($app === null) {
                continue;
            }

            if (($problem = Envelope::appProblem($app)) !== null) {
                throw new BroadcastException(sprintf(
                    'Herald error: %s was not broadcast: the app %s answered is refused: %s.',
                    is_object($event) ? get_class($event) : (string) $event,
                    $source,
                    $problem
                ));
            }

            return $app;
        }

        return null;
    }

    /**
     * The event's broadcast connections, as BroadcastEvent::handle reads them.
     *
     * @return array<int, string|null>
     */
    protected function eventConnections($event): array
    {
        $connections = is_object($event) && method_exists($event, 'broadcastConnections')
            ? $event->broadcastConnections()
            : [null];

        return is_array($connections) && $connections ? array_values($connections) : [null];
    }

    /**
     * The herald connection an event's envelopes go through: the default connection when it
     * is a herald connection (then every broadcast of the app goes to herald, whichever
     * connections it names), else the first herald connection the event names; null when
     * neither (then Laravel broadcasts it itself).
     */
    protected function heraldConnectionFor(array $connections): ?string
    {
        $default = $this->getDefaultDriver();

        if ($this->isHerald($default)) {
            return $default;
        }

        foreach ($connections as $name) {
            if ($this->isHerald($name ?? $default)) {
                return $name ?? $default;
            }
        }

        return null;
    }

    /**
     * Whether a broadcast connection uses the herald driver.
     *
     * @param  mixed  $name
     */
    public function isHerald($name): bool
    {
        if (! is_string($name) || $name === '' || $name === 'null') {
            return false;
        }

        $config = $this->app['config']["broadcasting.connections.{$name}"];

        return is_array($config) && ($config['driver'] ?? null) === 'herald';
    }

    /**
     * The Laravel queue name, as BroadcastManager::queue picks it: broadcastQueue(),
     * $broadcastQueue, $queue, then (13+) the #[Queue] attribute and queue routes.
     */
    protected function laravelQueue($event): ?string
    {
        $queue = null;

        if (method_exists($event, 'broadcastQueue')) {
            $queue = $event->broadcastQueue();
        } elseif (isset($event->broadcastQueue)) {
            $queue = $event->broadcastQueue;
        } elseif (isset($event->queue)) {
            $queue = $event->queue;
        }

        if ($queue === null && method_exists($this, 'getAttributeValue')
            && class_exists('Illuminate\Queue\Attributes\Queue')) {
            $queue = $this->getAttributeValue($event, 'Illuminate\Queue\Attributes\Queue', 'queue');
        }

        if ($queue === null && method_exists($this, 'resolveQueueFromQueueRoute')) {
            $queue = $this->resolveQueueFromQueueRoute($event);
        }

        if ($queue instanceof \BackedEnum) {
            $queue = $queue->value;
        } elseif ($queue instanceof \UnitEnum) {
            $queue = $queue->name;
        }

        return $queue === null ? null : (string) $queue;
    }

    /**
     * Queue::shouldDispatchAfterCommit for the job: its afterCommit (copied from the event),
     * else the queue connection's after_commit setting.
     */
    protected function shouldPushAfterCommit($job, $event): bool
    {
        if (isset($job->afterCommit)) {
            return (bool) $job->afterCommit;
        }

        $connection = $event->connection ?? $this->app['config']['queue.default'];

        return (bool) $this->app['config']["queue.connections.{$connection}.after_commit"];
    }

    /**
     * The lock of a ShouldBeUnique broadcast (9+), taken as BroadcastManager takes it.
     */
    protected function acquireUniqueLock($job): bool
    {
        if (method_exists($this, 'mustBeUniqueAndCannotAcquireLock')) {
            return ! $this->mustBeUniqueAndCannotAcquireLock($job);
        }

        return (new UniqueLock(
            method_exists($job, 'uniqueVia') ? $job->uniqueVia() : $this->app->make(Cache::class)
        ))->acquire($job);
    }

    /**
     * Released once the envelope is on herald's list, where Laravel's worker releases it
     * after handle(): herald's queue is the rest of the job's life.
     */
    protected function releaseUniqueLock($job): void
    {
        $lock = new UniqueLock($this->app->make(Cache::class));

        if (method_exists($lock, 'release')) {
            $lock->release($job);
        }
    }

    /**
     * Resolve the given broadcaster; `herald` connections know their own name.
     *
     * @param  string  $name
     * @return \Illuminate\Contracts\Broadcasting\Broadcaster
     */
    protected function resolve($name)
    {
        $config = $this->getConfig($name);

        if (is_array($config) && ($config['driver'] ?? null) === 'herald'
            && ! isset($this->customCreators['herald'])) {
            return $this->createHeraldDriver($config, (string) $name);
        }

        return parent::resolve($name);
    }

    /**
     * @param  array  $config
     * @return \Herald\Laravel\HeraldBroadcaster
     */
    protected function createHeraldDriver(array $config, string $name = 'herald')
    {
        $broadcaster = new HeraldBroadcaster(
            $this->app->make('redis'),
            $config,
            $name,
            (string) $this->app['config']->get('database.redis.options.prefix', '')
        );
        $broadcaster->resolveAuthAppUsing(function ($request) {
            return $this->authAppResolver === null ? null : ($this->authAppResolver)($request);
        });

        return $broadcaster;
    }
}
