<?php

namespace Herald\Laravel;

use Illuminate\Broadcasting\BroadcastException;
use Illuminate\Support\Str;

/**
 * One herald envelope (config/envelope.schema.json in the herald repository).
 *
 * `data` is the payload exactly as Laravel's BroadcastEvent computed it, so the envelope says
 * `"final_payload": true`: herald publishes it unchanged (Redis: `{"event","data","socket"}`, as
 * RedisBroadcaster does; Pusher: without its `socket` member, as PusherBroadcaster does).
 * `socket` is the payload's `socket` member, the value both of Laravel's broadcasters pull out
 * of it. `app` names the Pusher app of herald's multi-app connections (`apps = "redis"` or
 * `apps_dir`); the envelope has it only when the event has one.
 */
class Envelope
{
    /**
     * What herald takes as an app name: config/envelope.schema.json's `app` pattern (a test
     * checks the two are the same text).
     */
    const APP_PATTERN = '^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$';

    /**
     * The envelope's JSON text.
     *
     * `data` is encoded with json_encode's default flags, as RedisBroadcaster encodes its
     * message, so its bytes are the bytes Laravel would publish; a payload json_encode cannot
     * encode is an exception here instead of the `false` Laravel would publish.
     *
     * @param  string[]  $channels  channel names, unprefixed (herald adds its prefix)
     * @param  string[]|null  $connections  herald connections instead of herald's defaults
     * @param  int|null  $maxAttempts  the event's `$tries`
     * @param  string|null  $app  the event's app, already checked by {@see appProblem}
     */
    public static function encode(
        string $event,
        array $channels,
        array $payload,
        ?array $connections = null,
        ?int $maxAttempts = null,
        ?string $app = null
    ): string {
        $envelope = [
            'id' => (string) Str::uuid(),
            'event' => $event,
            'channels' => array_values($channels),
            'data' => $payload,
            'socket' => static::socket($payload),
            'created_at' => microtime(true),
            'final_payload' => true,
        ];

        if ($connections) {
            $envelope['connections'] = array_values($connections);
        }

        if ($maxAttempts !== null && $maxAttempts >= 1) {
            $envelope['max_attempts'] = $maxAttempts;
        }

        if ($app !== null) {
            $envelope['app'] = $app;
        }

        try {
            return json_encode($envelope, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new BroadcastException(
                sprintf('Herald error: the payload of %s cannot be JSON-encoded: %s.', $event, $e->getMessage()),
                0,
                $e
            );
        }
    }

    /**
     * The socket id to exclude: `Arr::pull($payload, 'socket')` in both of Laravel's
     * broadcasters. herald's envelope takes a string or null, so another scalar (an app's own
     * `socket` member) becomes its string, and anything else null.
     *
     * @return string|null
     */
    public static function socket(array $payload)
    {
        $socket = $payload['socket'] ?? null;

        return is_scalar($socket) ? (string) $socket : null;
    }

    /**
     * Why `$app` cannot be an envelope's `app`, or null when it can: herald dead-letters an
     * envelope whose `app` breaks {@see APP_PATTERN} (`invalid_field`), so the driver refuses it
     * before anything is pushed.
     *
     * @param  mixed  $app
     */
    public static function appProblem($app): ?string
    {
        if (is_string($app) && preg_match('/'.self::APP_PATTERN.'/D', $app)) {
            return null;
        }

        if ($app === '') {
            $what = 'an empty string';
        } elseif (is_string($app)) {
            $what = 'the string '.json_encode($app, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
        } else {
            $what = get_debug_type($app).(is_scalar($app) ? ' '.var_export($app, true) : (is_object($app) ? ' object' : ''));
        }

        return 'an app must be a string of 1 to 100 characters A-Z a-z 0-9 - _ . not starting with ".", not '.$what;
    }
}
