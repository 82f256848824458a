<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\Channel;
use Illuminate\Contracts\Broadcasting\ShouldBeUnique;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/** A ShouldBeUnique broadcast (Laravel 9+'s Illuminate\Contracts\Broadcasting\ShouldBeUnique). */
class UniqueProgress implements ShouldBroadcast, ShouldBeUnique
{
    public $percent;

    public $uniqueFor = 60;

    public function __construct(int $percent)
    {
        $this->percent = $percent;
    }

    public function uniqueId()
    {
        return 'job-1';
    }

    public function broadcastOn()
    {
        return new Channel('progress');
    }
}
