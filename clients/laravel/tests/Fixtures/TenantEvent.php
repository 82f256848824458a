<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\Channel;
use Illuminate\Broadcasting\InteractsWithBroadcasting;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/**
 * broadcastApp() answers what it was given (null: no opinion); queued, or sent at once
 * (shouldBroadcastNow()). Neither setting is a public property, so neither is in the payload.
 */
class TenantEvent implements ShouldBroadcast
{
    use InteractsWithBroadcasting;

    public $n = 1;

    protected $app;

    protected $now;

    public function __construct($app = null, bool $now = false)
    {
        $this->app = $app;
        $this->now = $now;
    }

    public function broadcastApp()
    {
        return $this->app;
    }

    public function shouldBroadcastNow(): bool
    {
        return $this->now;
    }

    public function broadcastOn()
    {
        return new Channel('tenant');
    }
}
