<?php

namespace Herald\Laravel;

use Illuminate\Broadcasting\BroadcastManager;
use Illuminate\Container\Container;
use LogicException;

/**
 * The driver's application-wide settings, for a service provider's boot():
 *
 *     Herald::resolveAppUsing(fn ($event) => tenant('id'));
 *
 * They live on the application's {@see HeraldBroadcastManager}, so each application (and each
 * test's) has its own; this class holds nothing.
 */
final class Herald
{
    /**
     * The Pusher app of herald's multi-app connections for every event whose broadcastApp()
     * gives none: {@see HeraldBroadcastManager::resolveAppUsing}. Null removes it.
     *
     * @param  callable|null  $resolver  fn (object $event): ?string
     */
    public static function resolveAppUsing(?callable $resolver): void
    {
        self::manager()->resolveAppUsing($resolver);
    }

    /**
     * The Pusher app whose key and secret sign a channel authorization request on a herald
     * connection with `apps`: {@see HeraldBroadcastManager::resolveAuthAppUsing}. Null removes it.
     *
     *     Herald::resolveAuthAppUsing(fn ($request) => tenant('id'));
     *
     * @param  callable|null  $resolver  fn (\Illuminate\Http\Request $request): ?string
     */
    public static function resolveAuthAppUsing(?callable $resolver): void
    {
        self::manager()->resolveAuthAppUsing($resolver);
    }

    private static function manager(): HeraldBroadcastManager
    {
        $manager = Container::getInstance()->make(BroadcastManager::class);

        if (! $manager instanceof HeraldBroadcastManager) {
            throw new LogicException(sprintf(
                'Herald: the broadcast manager is %s, not %s: is Herald\Laravel\HeraldServiceProvider registered?',
                get_class($manager),
                HeraldBroadcastManager::class
            ));
        }

        return $manager;
    }
}
