<?php

// PHPUnit bootstrap: Debian's Laravel (php-laravel-framework), and this package's classes
// through the PSR-4 map of its own composer.json, so that map is what the tests exercise.

require_once '/usr/share/php/Illuminate/autoload.php';

(function () {
    $root = dirname(__DIR__);
    $composer = json_decode(file_get_contents($root.'/composer.json'), true, 512, JSON_THROW_ON_ERROR);
    $map = $composer['autoload']['psr-4'] + $composer['autoload-dev']['psr-4'];
    // The longest prefix first, as Composer's ClassLoader matches.
    uksort($map, function ($a, $b) {
        return strlen($b) <=> strlen($a);
    });

    spl_autoload_register(function ($class) use ($map, $root) {
        foreach ($map as $prefix => $dir) {
            if (strncmp($class, $prefix, strlen($prefix)) === 0) {
                $file = $root.'/'.rtrim($dir, '/').'/'.str_replace('\\', '/', substr($class, strlen($prefix))).'.php';
                if (is_file($file)) {
                    require $file;

                    return;
                }
            }
        }
    });
})();
