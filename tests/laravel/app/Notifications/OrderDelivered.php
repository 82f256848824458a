<?php

namespace App\Notifications;

use Illuminate\Notifications\Messages\BroadcastMessage;
use Illuminate\Notifications\Notification;

/** A broadcast notification (BroadcastNotificationCreated on private-App.Models.User.{id}). */
class OrderDelivered extends Notification
{
    public $orderId;

    public function __construct(int $orderId)
    {
        $this->orderId = $orderId;
    }

    public function via($notifiable)
    {
        return ['broadcast'];
    }

    public function toBroadcast($notifiable)
    {
        return (new BroadcastMessage(['order_id' => $this->orderId, 'for' => $notifiable->name]))->onQueue('high');
    }
}
