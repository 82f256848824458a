<?php

namespace App\Events;

use Illuminate\Broadcasting\InteractsWithSockets;
use Illuminate\Broadcasting\PresenceChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;
use Illuminate\Foundation\Events\Dispatchable;

/** broadcastWith() and broadcastAs(), on a presence channel. */
class RoomMessage implements ShouldBroadcast
{
    use Dispatchable, InteractsWithSockets;

    public $text;

    public function __construct(string $text)
    {
        $this->text = $text;
    }

    public function broadcastOn()
    {
        return new PresenceChannel('room.1');
    }

    public function broadcastAs()
    {
        return 'room.message';
    }

    public function broadcastWith()
    {
        return ['text' => $this->text, 'length' => strlen($this->text)];
    }
}
