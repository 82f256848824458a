<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\InteractsWithSockets;
use Illuminate\Broadcasting\PresenceChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/** broadcastWith() and broadcastAs(). */
class CustomPayload implements ShouldBroadcast
{
    use InteractsWithSockets;

    public $ignored = 'public, but broadcastWith() decides';

    public function broadcastOn()
    {
        return [new PresenceChannel('room.1'), 'raw-string-channel'];
    }

    public function broadcastAs()
    {
        return 'payload.custom';
    }

    public function broadcastWith()
    {
        return ['a' => 1, 'nested' => ['b' => [1, 2]]];
    }
}
