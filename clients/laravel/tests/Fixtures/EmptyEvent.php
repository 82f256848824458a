<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\Channel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/** No public property at all: the payload is PHP's empty array, `[]` in JSON. */
class EmptyEvent implements ShouldBroadcast
{
    protected $hidden = 1;

    public function broadcastOn()
    {
        return new Channel('empty');
    }
}
