<?php

// A Laravel 8 application as laravel/laravel's bootstrap/app.php builds one. Writable state
// (SQLite file, storage, the provider/package manifests) lives under HERALD_E2E_DIR, a
// temporary directory of the test's own, so running the test writes nothing into the repository.

require_once __DIR__.'/../autoload.php';

$state = getenv('HERALD_E2E_DIR') ?: sys_get_temp_dir().'/herald-laravel-e2e';
foreach (['storage/framework/cache', 'storage/framework/views', 'storage/framework/sessions', 'storage/logs', 'cache'] as $dir) {
    @mkdir($state.'/'.$dir, 0777, true);
}
foreach (['SERVICES' => 'services', 'PACKAGES' => 'packages', 'CONFIG' => 'config', 'ROUTES' => 'routes-v7', 'EVENTS' => 'events'] as $key => $file) {
    $_ENV['APP_'.$key.'_CACHE'] = $_SERVER['APP_'.$key.'_CACHE'] = $state.'/cache/'.$file.'.php';
}

$app = new Illuminate\Foundation\Application(dirname(__DIR__));
$app->useStoragePath($state.'/storage');

$app->singleton(Illuminate\Contracts\Http\Kernel::class, App\Http\Kernel::class);
$app->singleton(Illuminate\Contracts\Console\Kernel::class, App\Console\Kernel::class);
$app->singleton(Illuminate\Contracts\Debug\ExceptionHandler::class, App\Exceptions\Handler::class);

return $app;
