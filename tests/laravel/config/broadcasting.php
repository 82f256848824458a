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
