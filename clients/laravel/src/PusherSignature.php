<?php

namespace Herald\Laravel;

use Illuminate\Broadcasting\BroadcastException;
use Symfony\Component\HttpKernel\Exception\BadRequestHttpException;

/**
 * The channel-authorization and user-authentication answers of the Pusher protocol, as the
 * official PHP library (pusher/pusher-php-server 7.x: authorizeChannel,
 * authorizePresenceChannel, authenticateUser) builds them, without that library.
 *
 * - private and encrypted channels: `key:HMAC-SHA256(secret, "socket_id:channel")`;
 * - presence channels: the same over `"socket_id:channel:channel_data"`, channel_data being
 *   `{"user_id":"<id>","user_info":...}` (the library types the id as a string);
 * - `private-encrypted-*` channels add `shared_secret`: base64(SHA-256(channel . master key));
 * - user authentication: `key:HMAC-SHA256(secret, "socket_id::user::user_data")`.
 *
 * See https://pusher.com/docs/channels/library_auth_reference/auth-signatures/ (its worked
 * examples are this class's tests).
 */
class PusherSignature
{
    /** @var string */
    protected $key;

    /** @var string */
    protected $secret;

    /** @var string|null raw 32 bytes */
    protected $masterKey;

    public function __construct(string $key, string $secret, ?string $masterKeyBase64 = null)
    {
        $this->key = $key;
        $this->secret = $secret;

        if ($masterKeyBase64 !== null && $masterKeyBase64 !== '') {
            $raw = base64_decode($masterKeyBase64, true);

            if ($raw === false || strlen($raw) !== 32) {
                throw new BroadcastException(
                    'Herald: encryption_master_key_base64 must be 32 bytes, base64 encoded.'
                );
            }

            $this->masterKey = $raw;
        }
    }

    /**
     * `key:signature` over `$stringToSign`.
     */
    public function sign(string $stringToSign): string
    {
        return $this->key.':'.hash_hmac('sha256', $stringToSign, $this->secret);
    }

    /**
     * The answer for a private (or encrypted private, or presence with `$channelData`) channel.
     *
     * @return array{auth: string, channel_data?: string, shared_secret?: string}
     */
    public function authorizeChannel(string $channel, string $socketId, ?string $channelData = null): array
    {
        $this->validateChannel($channel);
        $this->validateSocketId($socketId);

        $answer = ['auth' => $this->sign(
            $channelData ? "{$socketId}:{$channel}:{$channelData}" : "{$socketId}:{$channel}"
        )];

        if ($channelData) {
            $answer['channel_data'] = $channelData;
        }

        if (strpos($channel, 'private-encrypted-') === 0) {
            $answer['shared_secret'] = base64_encode($this->sharedSecret($channel));
        }

        return $answer;
    }

    /**
     * The answer for a presence channel.
     *
     * @param  mixed  $userId
     * @param  mixed  $userInfo  what the app's channel callback returned
     */
    public function authorizePresenceChannel(string $channel, string $socketId, $userId, $userInfo = null): array
    {
        $userData = ['user_id' => (string) $userId];

        if ($userInfo) {
            $userData['user_info'] = $userInfo;
        }

        return $this->authorizeChannel($channel, $socketId, $this->json($userData));
    }

    /**
     * The answer to `/broadcasting/user-auth` (Pusher's user authentication, Laravel 9+).
     *
     * @return array{auth: string, user_data: string}
     */
    public function authenticateUser(string $socketId, array $user): array
    {
        $this->validateSocketId($socketId);

        if (! array_key_exists('id', $user) || (string) $user['id'] === '') {
            throw new BadRequestHttpException('Pusher user authentication needs a user with an id.');
        }

        $userData = $this->json($user);

        return [
            'auth' => $this->sign("{$socketId}::user::{$userData}"),
            'user_data' => $userData,
        ];
    }

    /**
     * The per-channel key of an end-to-end encrypted channel (raw 32 bytes).
     */
    public function sharedSecret(string $channel): string
    {
        if ($this->masterKey === null) {
            throw new BroadcastException(
                "Herald: channel {$channel} is end-to-end encrypted; set encryption_master_key_base64 "
                .'on the herald broadcast connection (the same key herald uses, '
                .'PUSHER_ENCRYPTION_MASTER_KEY_BASE64).'
            );
        }

        return hash('sha256', $channel.$this->masterKey, true);
    }

    protected function json($value): string
    {
        try {
            return json_encode($value, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new BroadcastException('Herald: the channel data cannot be JSON-encoded: '.$e->getMessage().'.', 0, $e);
        }
    }

    protected function validateChannel(string $channel): void
    {
        if (! preg_match('/\A#?[-a-zA-Z0-9_=@,.;]+\z/', $channel)) {
            throw new BadRequestHttpException('Invalid channel name '.$channel);
        }
    }

    protected function validateSocketId(string $socketId): void
    {
        if (! preg_match('/\A\d+\.\d+\z/', $socketId)) {
            throw new BadRequestHttpException('Invalid socket ID '.$socketId);
        }
    }
}
