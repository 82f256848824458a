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
 * of it.
 */
class Envelope
{
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
     */
    public static function encode(
        string $event,
        array $channels,
        array $payload,
        ?array $connections = null,
        ?int $maxAttempts = null
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
}
