<?php

namespace App\Events;

use Illuminate\Broadcasting\Channel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;

/**
 * A multi-tenant app's event: broadcastApp() names the tenant's Pusher app when the event knows
 * it; null leaves it to the app's resolver (the request's X-Tenant header, see
 * Providers/BroadcastServiceProvider). Every tenant's channel has the same name: only the app
 * keeps them apart.
 */
class TenantMessage implements ShouldBroadcast
{
    public $tenant;

    public $text;

    public function __construct(?string $tenant, string $text)
    {
        $this->tenant = $tenant;
        $this->text = $text;
    }

    public function broadcastApp()
    {
        return $this->tenant;
    }

    public function broadcastOn()
    {
        return new Channel('tenant-news');
    }
}
