<?php

return [
    // BROADCAST_DRIVER=herald: the one line an app changes (BROADCAST_CONNECTION on 11+).
    'default' => env('BROADCAST_DRIVER', 'null'),

    'connections' => [
        'herald' => [
            'driver' => 'herald',
            'connection' => 'default',
            'queue' => 'herald:default',
            'queues' => ['high' => 'herald:high'],
            'auth' => env('HERALD_AUTH', 'redis'),
            'key' => env('PUSHER_APP_KEY'),
            'secret' => env('PUSHER_APP_SECRET'),
            'encryption_master_key_base64' => env('PUSHER_ENCRYPTION_MASTER_KEY_BASE64'),
            // herald's multi-app Pusher connection: channel authorization signs with the
            // request's tenant's app, read from herald's apps hash (no key or secret then).
            'apps' => env('HERALD_APPS'),
        ],

        'redis' => [
            'driver' => 'redis',
            'connection' => 'default',
        ],

        'log' => [
            'driver' => 'log',
        ],

        'null' => [
            'driver' => 'null',
        ],
    ],
];
