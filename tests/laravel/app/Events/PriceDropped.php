<?php

namespace App\Events;

use Illuminate\Broadcasting\Channel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/** broadcastWhen(), and $broadcastQueue (herald: the queues map's herald:high). */
class PriceDropped implements ShouldBroadcast
{
    public $broadcastQueue = 'high';

    public $price;

    public function __construct(float $price)
    {
        $this->price = $price;
    }

    public function broadcastOn()
    {
        return new Channel('prices');
    }

    public function broadcastWhen()
    {
        return $this->price < 100;
    }
}
