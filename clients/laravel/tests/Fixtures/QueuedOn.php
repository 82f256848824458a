<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\Channel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/** $broadcastQueue (a public property Laravel leaves out of the payload). */
class QueuedOn implements ShouldBroadcast
{
    public $broadcastQueue;

    public $value = 1;

    public function __construct($queue)
    {
        $this->broadcastQueue = $queue;
    }

    public function broadcastOn()
    {
        return new Channel('queued');
    }
}
