<?php

namespace Herald\Laravel;

use Illuminate\Contracts\Broadcasting\Broadcaster;
use Illuminate\Contracts\Broadcasting\Factory;

/**
 * Stands in for the broadcast manager while a BroadcastEvent job's own handle() runs: it
 * records, per connection handle() asks for, the channels (as strings, the way Laravel's
 * broadcasters format them), the event name and the payload it would have broadcast.
 *
 * @internal
 */
class Recorder implements Factory
{
    /** @var array<int, array{0: string|null, 1: string[], 2: string, 3: array}> */
    public $broadcasts = [];

    public function connection($name = null)
    {
        return new class($this, $name) implements Broadcaster {
            /** @var \Herald\Laravel\Recorder */
            private $recorder;

            /** @var string|null */
            private $name;

            public function __construct(Recorder $recorder, $name)
            {
                $this->recorder = $recorder;
                $this->name = $name;
            }

            public function auth($request)
            {
                throw new \LogicException('the recorder only records broadcasts');
            }

            public function validAuthenticationResponse($request, $result)
            {
                throw new \LogicException('the recorder only records broadcasts');
            }

            public function broadcast(array $channels, $event, array $payload = [])
            {
                if (empty($channels)) {
                    return;
                }

                $this->recorder->broadcasts[] = [
                    $this->name,
                    array_values(array_map(function ($channel) {
                        return (string) $channel;
                    }, $channels)),
                    (string) $event,
                    $payload,
                ];
            }
        };
    }
}
