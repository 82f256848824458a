<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\EncryptedPrivateChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcastNow;

/** ShouldBroadcastNow, on an end-to-end encrypted channel. */
class NowEvent implements ShouldBroadcastNow
{
    public $secret = 'sealed';

    public function broadcastOn()
    {
        return new EncryptedPrivateChannel('vault');
    }
}
