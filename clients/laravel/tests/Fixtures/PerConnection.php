<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\Channel;
use Illuminate\Broadcasting\InteractsWithBroadcasting;
use Illuminate\Broadcasting\PrivateChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/** Channels and payload keyed by connection name (Laravel 11+'s BroadcastEvent reads them so). */
class PerConnection implements ShouldBroadcast
{
    use InteractsWithBroadcasting;

    public function __construct()
    {
        $this->broadcastVia(['herald', 'pusher']);
    }

    public function broadcastOn()
    {
        return ['herald' => [new Channel('for-defaults')], 'pusher' => [new PrivateChannel('for-pusher')]];
    }

    public function broadcastWith()
    {
        return ['herald' => ['a' => 1], 'pusher' => ['b' => 2]];
    }
}
