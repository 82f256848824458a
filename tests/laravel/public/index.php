<?php

// laravel/laravel's public/index.php; the test serves it with `php -S 127.0.0.1:<port> public/index.php`.

$app = require __DIR__.'/../bootstrap/app.php';

$kernel = $app->make(Illuminate\Contracts\Http\Kernel::class);

$response = $kernel->handle(
    $request = Illuminate\Http\Request::capture()
)->send();

$kernel->terminate($request, $response);
