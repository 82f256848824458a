<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Notifications\Messages\BroadcastMessage;
use Illuminate\Notifications\Notification;

/** A broadcast notification (BroadcastNotificationCreated). */
class Shipped extends Notification
{
    public function via($notifiable)
    {
        return ['broadcast'];
    }

    public function toBroadcast($notifiable)
    {
        return (new BroadcastMessage(['order' => 42]))->onQueue('high');
    }
}
