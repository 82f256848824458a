<?php

namespace App\Events;

use Illuminate\Broadcasting\EncryptedPrivateChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcastNow;

/** ShouldBroadcastNow, on an end-to-end encrypted channel. */
class VaultOpened implements ShouldBroadcastNow
{
    public $by;

    public function __construct(string $by)
    {
        $this->by = $by;
    }

    public function broadcastOn()
    {
        return new EncryptedPrivateChannel('vault');
    }
}
