<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Broadcasting\Channel;
use Illuminate\Broadcasting\InteractsWithSockets;
use Illuminate\Broadcasting\PrivateChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;
use Illuminate\Support\Collection;

/** Queued, InteractsWithSockets, public properties only (an Arrayable among them). */
class OrderShipped implements ShouldBroadcast
{
    use InteractsWithSockets;

    public $orderId;

    public $lines;

    public $note = "caf\u{e9} / \u{2713} \"q\" <b>";

    protected $internal = 'not broadcast';

    private $secret = 'not broadcast either';

    public function __construct(int $orderId)
    {
        $this->orderId = $orderId;
        $this->lines = new Collection([['sku' => 'A-1', 'qty' => 2], ['sku' => 'B/2', 'qty' => 1.5]]);
    }

    public function broadcastOn()
    {
        return [new Channel('orders'), new PrivateChannel('orders.'.$this->orderId)];
    }
}
