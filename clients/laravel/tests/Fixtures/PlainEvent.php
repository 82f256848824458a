<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\Channel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/** Neither InteractsWithSockets nor broadcastWith(): Laravel puts no socket in data. */
class PlainEvent implements ShouldBroadcast
{
    public $id;

    public $tags = ['a', 'b'];

    public $nothing = null;

    public function __construct($id = 7)
    {
        $this->id = $id;
    }

    public function broadcastOn()
    {
        return new Channel('plain');
    }
}
