<?php

use App\Events\OrderShipped;
use App\Events\RoomMessage;
use App\Events\VaultOpened;
use App\Support\Payload;
use Illuminate\Support\Facades\Route;

// Fires one event, ->toOthers() (X-Socket-ID, when the request has it); answers what Laravel's
// BroadcastEvent computes for it, so a test can compare what its clients receive.
Route::post('/fire/{what}', function (string $what) {
    $event = [
        'order' => function () {
            return new OrderShipped(1, request('note', 'shipped'));
        },
        'room' => function () {
            return new RoomMessage(request('text', 'hello'));
        },
        'vault' => function () {
            return new VaultOpened('alice');
        },
    ][$what]();

    $expected = Payload::of($event);
    broadcast($event)->toOthers();

    return $expected + ['socket' => request()->header('X-Socket-ID')];
});

Route::get('/up', function () {
    return 'up';
});
