<?php

namespace App\Support;

use Illuminate\Broadcasting\BroadcastEvent;

/** What Laravel's own BroadcastEvent computes for an event: its name and payload. */
class Payload extends BroadcastEvent
{
    public static function of($event): array
    {
        $job = new static($event);

        return [
            'event' => method_exists($event, 'broadcastAs') ? $event->broadcastAs() : get_class($event),
            'data' => $job->getPayloadFromEvent($event),
        ];
    }
}
