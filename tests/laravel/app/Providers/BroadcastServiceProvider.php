<?php

namespace App\Providers;

use Herald\Laravel\Herald;
use Illuminate\Support\Facades\Broadcast;
use Illuminate\Support\ServiceProvider;

class BroadcastServiceProvider extends ServiceProvider
{
    public function boot()
    {
        Broadcast::routes();

        require base_path('routes/channels.php');

        // A multi-tenant app's one resolver: the tenant of the request, for events that do not
        // name their Pusher app themselves (none on a request without the header).
        Herald::resolveAppUsing(function () {
            return request()->header('X-Tenant');
        });

        // The tenant whose Pusher app signs a channel authorization: the signed-in user's.
        Herald::resolveAuthAppUsing(function ($request) {
            return ['alice' => 'acme', 'bob' => 'beta'][optional($request->user())->name] ?? null;
        });
    }
}
