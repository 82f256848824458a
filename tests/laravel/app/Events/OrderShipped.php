<?php

namespace App\Events;

use Illuminate\Broadcasting\Channel;
use Illuminate\Broadcasting\InteractsWithSockets;
use Illuminate\Broadcasting\PrivateChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;
use Illuminate\Foundation\Events\Dispatchable;
use Illuminate\Queue\SerializesModels;
use Illuminate\Support\Collection;

/** Queued; InteractsWithSockets; public properties, an Arrayable among them; a public and a private channel. */
class OrderShipped implements ShouldBroadcast
{
    use Dispatchable, InteractsWithSockets, SerializesModels;

    public $orderId;

    public $lines;

    public $note;

    protected $internal = 'never broadcast';

    public function __construct(int $orderId, string $note = "caf\u{e9} / \u{2713} \"quoted\" <b>")
    {
        $this->orderId = $orderId;
        $this->note = $note;
        $this->lines = new Collection([['sku' => 'A-1', 'qty' => 2], ['sku' => 'B/2', 'qty' => 1.5]]);
    }

    public function broadcastOn()
    {
        return [new Channel('orders'), new PrivateChannel('orders.'.$this->orderId)];
    }
}
