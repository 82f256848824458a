<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\Channel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/** broadcastWhen(): Laravel's dispatcher asks it before broadcasting. */
class Conditional implements ShouldBroadcast
{
    public $send;

    public function __construct(bool $send)
    {
        $this->send = $send;
    }

    public function broadcastOn()
    {
        return new Channel('conditional');
    }

    public function broadcastWhen()
    {
        return $this->send;
    }
}
