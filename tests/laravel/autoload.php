<?php

// The test app's autoloading without Composer (there is no Composer registry here): Debian's
// Laravel 8.83 (php-laravel-framework), the herald/laravel package through the PSR-4 map of its
// own composer.json (as a Composer path repository would install it), and this app's App\.

require_once '/usr/share/php/Illuminate/autoload.php';

(function () {
    $package = dirname(__DIR__, 2).'/clients/laravel';
    $composer = json_decode(file_get_contents($package.'/composer.json'), true, 512, JSON_THROW_ON_ERROR);
    $map = ['App\\' => __DIR__.'/app'];
    foreach ($composer['autoload']['psr-4'] as $prefix => $dir) {
        $map[$prefix] = $package.'/'.rtrim($dir, '/');
    }

    spl_autoload_register(function ($class) use ($map) {
        foreach ($map as $prefix => $dir) {
            if (strncmp($class, $prefix, strlen($prefix)) === 0) {
                $file = $dir.'/'.str_replace('\\', '/', substr($class, strlen($prefix))).'.php';
                if (is_file($file)) {
                    require $file;
                }

                return;
            }
        }
    });
})();
