<?php

namespace App\Events;

use Illuminate\Broadcasting\Channel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;
use Illuminate\Foundation\Events\Dispatchable;

/** Neither InteractsWithSockets nor broadcastWith(): Laravel puts no socket member in data. */
class InventoryChanged implements ShouldBroadcast
{
    use Dispatchable;

    public $sku = 'A-1';

    public $levels = ['warehouse' => 3, 'store' => 0];

    public $discontinued = null;

    public function broadcastOn()
    {
        return new Channel('inventory');
    }
}
