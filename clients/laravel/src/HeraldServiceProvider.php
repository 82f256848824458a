<?php

namespace Herald\Laravel;

use Illuminate\Broadcasting\BroadcastManager;
use Illuminate\Support\ServiceProvider;

/**
 * Registers the `herald` broadcast driver.
 *
 * Listing this provider in config/app.php (or auto-discovery) is the whole install: it
 * replaces Laravel's BroadcastManager with {@see HeraldBroadcastManager}, which turns every
 * broadcast routed to a `herald` connection into an envelope on herald's Redis list at dispatch
 * time, and it supplies a `herald` connection in broadcasting.connections when the app's
 * config/broadcasting.php has none, so `BROADCAST_DRIVER=herald` (Laravel 8-10) or
 * `BROADCAST_CONNECTION=herald` (11+) is the only line an app has to change.
 */
class HeraldServiceProvider extends ServiceProvider
{
    public function register()
    {
        $config = $this->app['config'];

        if (! is_array($config->get('broadcasting.connections.herald'))) {
            $config->set('broadcasting.connections.herald', static::defaultConnection($config->all()));
        }

        // BroadcastManager is bound by Laravel's deferred BroadcastServiceProvider; an extender
        // runs whenever it is resolved, after that provider registered it.
        $this->app->extend(BroadcastManager::class, function ($manager, $app) {
            return HeraldBroadcastManager::replacing($manager, $app);
        });
    }

    /**
     * The connection used when config/broadcasting.php defines no `herald` connection: the
     * `default` Redis connection, herald's default queue, and the channel-authorization
     * credentials of the app's `pusher` (or `reverb`) connection when those are set, so Pusher
     * protocol clients keep authorizing as they did.
     *
     * @param  array  $config  the whole configuration
     * @return array
     */
    public static function defaultConnection(array $config)
    {
        $connection = [
            'driver' => 'herald',
            'connection' => 'default',
            'queue' => 'herald:default',
        ];

        foreach (['pusher', 'reverb'] as $name) {
            $candidate = $config['broadcasting']['connections'][$name] ?? null;

            if (is_array($candidate) && ! empty($candidate['key']) && ! empty($candidate['secret'])) {
                $connection['auth'] = 'pusher';
                $connection['key'] = $candidate['key'];
                $connection['secret'] = $candidate['secret'];

                if (! empty($candidate['options']['encryption_master_key_base64'])) {
                    $connection['encryption_master_key_base64'] = $candidate['options']['encryption_master_key_base64'];
                }

                break;
            }
        }

        return $connection;
    }
}
