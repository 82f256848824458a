<?php

namespace App\Events;

use Illuminate\Broadcasting\Channel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/** No public property: the payload is PHP's empty array (`[]`). */
class Heartbeat implements ShouldBroadcast
{
    protected $beat = 1;

    public function broadcastOn()
    {
        return new Channel('heartbeat');
    }
}
