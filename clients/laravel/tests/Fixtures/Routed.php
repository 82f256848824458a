<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\Channel;
use Illuminate\Broadcasting\InteractsWithBroadcasting;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/** InteractsWithBroadcasting: broadcastVia() names the connections. */
class Routed implements ShouldBroadcast
{
    use InteractsWithBroadcasting;

    public $n = 1;

    public $afterCommit;

    public $tries;

    public function broadcastOn()
    {
        return new Channel('routed');
    }
}
