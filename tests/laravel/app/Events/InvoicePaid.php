<?php

namespace App\Events;

use App\Models\Post;
use Illuminate\Broadcasting\Channel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;
use Illuminate\Queue\SerializesModels;

/** afterCommit: pushed when the transaction commits; a model property, restored by the queue. */
class InvoicePaid implements ShouldBroadcast
{
    use SerializesModels;

    public $afterCommit = true;

    public $post;

    public function __construct(Post $post)
    {
        $this->post = $post;
    }

    public function broadcastOn()
    {
        return new Channel('invoices');
    }
}
