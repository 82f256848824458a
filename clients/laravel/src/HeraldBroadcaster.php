<?php

namespace Herald\Laravel;

use Illuminate\Broadcasting\Broadcasters\Broadcaster;
use Illuminate\Broadcasting\Broadcasters\UsePusherChannelConventions;
use Illuminate\Broadcasting\BroadcastException;
use Illuminate\Contracts\Redis\Factory as Redis;
use Illuminate\Http\JsonResponse;
use Illuminate\Support\Str;
use InvalidArgumentException;
use Symfony\Component\HttpKernel\Exception\AccessDeniedHttpException;

/**
 * The `herald` broadcast connection.
 *
 * Broadcasting pushes one envelope onto herald's list (`LPUSH`, through Laravel's Redis
 * manager, so the connection's key prefix applies). Channel authorization answers as Laravel's
 * PusherBroadcaster does (`auth` => `pusher`: Pusher, soketi, sockudo, Reverb) or as its
 * RedisBroadcaster does (`auth` => `redis`: laravel-echo-server).
 *
 * Config (broadcasting.connections.<name>):
 *   driver      'herald'
 *   connection  Redis connection of config/database.php ('default')
 *   queue       herald's list key ('herald:default')
 *   queues      optional map: an event's broadcastQueue => herald list key (unmapped: `queue`)
 *   auth        'pusher' or 'redis' (default: 'pusher' when key and secret are set, else 'redis')
 *   key, secret the Pusher app's key and secret, for `auth` => 'pusher'
 *   encryption_master_key_base64  for private-encrypted-* channels (or options.encryption_master_key_base64)
 *   app         optional: the Pusher app of herald's multi-app connections for every event this
 *               connection sends that names none itself ({@see HeraldBroadcastManager::resolveAppUsing})
 *   apps        optional, with `auth` => 'pusher': the name of herald's multi-app Pusher connection
 *               (`apps = "redis"` in herald's config). Channel authorization then signs with the
 *               key and secret of the request's app, read from herald's own hash
 *               `herald:pusher:apps:<apps>` (through `connection`, so its prefix applies) on
 *               every request, so an app added or rotated there needs no deploy; the app is
 *               {@see HeraldBroadcastManager::resolveAuthAppUsing}'s answer, else `app`.
 *               No `key` or `secret` then.
 */
class HeraldBroadcaster extends Broadcaster
{
    use UsePusherChannelConventions;

    /** @var \Illuminate\Contracts\Redis\Factory */
    protected $redis;

    /** @var array */
    protected $config;

    /** @var string the broadcast connection's name */
    protected $name;

    /** @var string database.redis.options.prefix, stripped from channel names in `redis` auth */
    protected $prefix;

    /** @var \Herald\Laravel\PusherSignature|null the one app's signer (null with `apps` or `redis` auth) */
    protected $signature;

    /** @var callable|null fn (Request): ?string, the request's app, with `apps` */
    protected $authApp;

    public function __construct(Redis $redis, array $config, string $name = 'herald', string $prefix = '')
    {
        $this->redis = $redis;
        $this->config = $config;
        $this->name = $name;
        $this->prefix = $prefix;

        if (isset($config['app']) && ($problem = Envelope::appProblem($config['app'])) !== null) {
            throw new InvalidArgumentException("Broadcast connection [{$name}]: app: {$problem}.");
        }

        $mode = $this->authMode();

        if (! in_array($mode, ['pusher', 'redis'], true)) {
            throw new InvalidArgumentException(
                "Broadcast connection [{$name}]: auth must be 'pusher' or 'redis', not '{$mode}'."
            );
        }

        if (isset($config['apps'])) {
            if (! is_string($config['apps']) || Envelope::appProblem($config['apps']) !== null || $mode !== 'pusher') {
                throw new InvalidArgumentException(
                    "Broadcast connection [{$name}]: apps must name herald's multi-app Pusher connection, with auth 'pusher'."
                );
            }
        } elseif ($mode === 'pusher') {
            if (empty($config['key']) || empty($config['secret'])) {
                throw new InvalidArgumentException(
                    "Broadcast connection [{$name}]: auth 'pusher' needs the Pusher app's key and secret."
                );
            }

            $this->signature = new PusherSignature(
                (string) $config['key'],
                (string) $config['secret'],
                $config['encryption_master_key_base64']
                    ?? $config['options']['encryption_master_key_base64']
                    ?? null
            );
        }
    }

    /**
     * 'pusher' or 'redis'.
     */
    public function authMode(): string
    {
        if (isset($this->config['auth'])) {
            return (string) $this->config['auth'];
        }

        return isset($this->config['apps']) || (! empty($this->config['key']) && ! empty($this->config['secret']))
            ? 'pusher' : 'redis';
    }

    /**
     * Where the request's app comes from, with `apps` (the manager sets it).
     *
     * @param  callable  $resolver  fn (\Illuminate\Http\Request $request): ?string
     */
    public function resolveAuthAppUsing(callable $resolver): void
    {
        $this->authApp = $resolver;
    }

    public function name(): string
    {
        return $this->name;
    }

    /**
     * The connection's `app` setting: the app of events that name none themselves.
     */
    public function app(): ?string
    {
        return isset($this->config['app']) ? (string) $this->config['app'] : null;
    }

    public function redisConnection(): string
    {
        return (string) ($this->config['connection'] ?? 'default');
    }

    /**
     * herald's list key for an event's Laravel queue name (broadcastQueue, $queue): the
     * `queues` map's entry, else `queue`. An unmapped name goes to `queue`, never to a list
     * herald may not be reading.
     */
    public function queueFor(?string $laravelQueue): string
    {
        $map = $this->config['queues'] ?? [];

        if ($laravelQueue !== null && is_array($map) && isset($map[$laravelQueue])) {
            return (string) $map[$laravelQueue];
        }

        return (string) ($this->config['queue'] ?? 'herald:default');
    }

    /**
     * Broadcast the given event: one envelope on the default queue, with the connection's
     * `app` (there is no event object here to ask).
     *
     * The manager sends queued and immediate events itself ({@see HeraldBroadcastManager}); this
     * is the path of a BroadcastEvent job run by a Laravel worker (one queued before the switch)
     * and of direct `Broadcast::connection('herald')->broadcast(...)` calls.
     */
    public function broadcast(array $channels, $event, array $payload = [])
    {
        if (empty($channels)) {
            return;
        }

        $this->push($this->queueFor(null), [
            Envelope::encode((string) $event, $this->formatChannels($channels), $payload, null, null, $this->app()),
        ], (string) $event);
    }

    /**
     * LPUSH the envelopes onto `$queue` in one command.
     *
     * @param  string[]  $envelopes
     *
     * @throws \Illuminate\Broadcasting\BroadcastException when Redis cannot take them
     */
    public function push(string $queue, array $envelopes, string $what): void
    {
        if (! $envelopes) {
            return;
        }

        $connection = $this->redisConnection();

        try {
            $pushed = $this->redis->connection($connection)->lpush($queue, ...$envelopes);
        } catch (\RedisException|\Predis\PredisException $e) {
            throw $this->failure($what, $queue, $e->getMessage(), $e);
        }

        // phpredis answers false (no exception) to some error replies, e.g. WRONGTYPE.
        if (! is_int($pushed) || $pushed < 1) {
            throw $this->failure($what, $queue, 'LPUSH answered '.var_export($pushed, true));
        }
    }

    protected function failure(string $what, string $queue, string $why, ?\Throwable $previous = null): BroadcastException
    {
        return new BroadcastException(sprintf(
            'Herald error: %s was not broadcast: pushing onto herald queue [%s] through Redis connection [%s] (broadcast connection [%s]) failed: %s.',
            $what,
            $queue,
            $this->redisConnection(),
            $this->name,
            rtrim($why, '.')
        ), 0, $previous);
    }

    /**
     * Channel names as both of Laravel's broadcasters format them, without the Redis prefix
     * (herald publishes with its own, the same one).
     *
     * @return string[]
     */
    public function formatChannels(array $channels)
    {
        return parent::formatChannels($channels);
    }

    /**
     * Authenticate the incoming request for a given channel (`/broadcasting/auth`).
     *
     * @param  \Illuminate\Http\Request  $request
     * @return mixed
     *
     * @throws \Symfony\Component\HttpKernel\Exception\AccessDeniedHttpException
     */
    public function auth($request)
    {
        // RedisBroadcaster strips the Redis prefix first; PusherBroadcaster does not.
        $channelName = $this->normalizeChannelName(
            $this->authMode() === 'redis' && $this->prefix !== ''
                ? str_replace($this->prefix, '', (string) $request->channel_name)
                : (string) $request->channel_name
        );

        if (empty($request->channel_name) ||
            ($this->isGuardedChannel($request->channel_name) &&
            ! $this->retrieveUser($request, $channelName))) {
            throw new AccessDeniedHttpException;
        }

        return parent::verifyUserCanAccessChannel($request, $channelName);
    }

    /**
     * Return the valid authentication response.
     *
     * @param  \Illuminate\Http\Request  $request
     * @param  mixed  $result
     * @return mixed
     */
    public function validAuthenticationResponse($request, $result)
    {
        if ($this->authMode() === 'redis') {
            return $this->redisAuthenticationResponse($request, $result);
        }

        $channel = (string) $request->channel_name;
        $socketId = (string) $request->socket_id;

        $signature = $this->signatureFor($request);

        if (Str::startsWith($channel, 'private')) {
            return $this->pusherResponse($request, $signature->authorizeChannel($channel, $socketId));
        }

        return $this->pusherResponse($request, $signature->authorizePresenceChannel(
            $channel, $socketId, $this->broadcastIdentifier($request, $channel), $result
        ));
    }

    /**
     * Pusher user authentication (`/broadcasting/user-auth`, Laravel 9+).
     *
     * @param  \Illuminate\Http\Request  $request
     * @return array|null
     */
    public function resolveAuthenticatedUser($request)
    {
        if (! method_exists(Broadcaster::class, 'resolveAuthenticatedUser')) {
            return null;
        }

        $user = parent::resolveAuthenticatedUser($request);

        if (! $user || $this->authMode() === 'redis') {
            return $user ?: null;
        }

        return $this->signatureFor($request)->authenticateUser((string) $request->socket_id, $user);
    }

    /**
     * The signer for `$request`: the connection's one app, or, with `apps`, the request's app's
     * key and secret as herald holds them now.
     *
     * @throws \Symfony\Component\HttpKernel\Exception\AccessDeniedHttpException when herald has no such app
     * @throws \LogicException when nothing names the request's app
     */
    protected function signatureFor($request): PusherSignature
    {
        if ($this->signature !== null) {
            return $this->signature;
        }

        $apps = (string) $this->config['apps'];
        $app = ($this->authApp === null ? null : ($this->authApp)($request)) ?? $this->app();

        if ($app === null) {
            throw new \LogicException(
                "Broadcast connection [{$this->name}]: channel authorization for herald's multi-app connection [{$apps}] needs the request's app: give Herald::resolveAuthAppUsing() a resolver, or the connection an 'app'."
            );
        }

        if (! is_string($app) || ($problem = Envelope::appProblem($app)) !== null) {
            throw new \LogicException("Broadcast connection [{$this->name}]: the request's app is refused: ".($problem ?? 'not a string').'.');
        }

        $entry = json_decode((string) $this->redis->connection($this->redisConnection())->hget("herald:pusher:apps:{$apps}", $app), true);

        if (! is_array($entry) || ! is_string($entry['key'] ?? null) || ! is_string($entry['secret'] ?? null)
            || $entry['key'] === '' || $entry['secret'] === '') {
            throw new AccessDeniedHttpException("Herald has no readable Pusher app [{$app}] for connection [{$apps}].");
        }

        return new PusherSignature(
            $entry['key'],
            $entry['secret'],
            $this->config['encryption_master_key_base64'] ?? $this->config['options']['encryption_master_key_base64'] ?? null
        );
    }

    /**
     * RedisBroadcaster::validAuthenticationResponse.
     */
    protected function redisAuthenticationResponse($request, $result)
    {
        if (is_bool($result)) {
            return json_encode($result);
        }

        return json_encode(['channel_data' => [
            'user_id' => $this->broadcastIdentifier($request, (string) $request->channel_name),
            'user_info' => $result,
        ]]);
    }

    /**
     * @return mixed the user's getAuthIdentifierForBroadcasting(), else getAuthIdentifier()
     */
    protected function broadcastIdentifier($request, string $channel)
    {
        $user = $this->retrieveUser($request, $this->normalizeChannelName($channel));

        return method_exists($user, 'getAuthIdentifierForBroadcasting')
            ? $user->getAuthIdentifierForBroadcasting()
            : $user->getAuthIdentifier();
    }

    /**
     * PusherBroadcaster::decodePusherResponse: the answer, as JSONP when asked for.
     */
    protected function pusherResponse($request, array $answer)
    {
        if (! $request->input('callback', false)) {
            return $answer;
        }

        return (new JsonResponse($answer))->withCallback($request->callback);
    }

    /**
     * The Pusher signer of this connection (null with `auth` => 'redis').
     */
    public function signature(): ?PusherSignature
    {
        return $this->signature;
    }
}
