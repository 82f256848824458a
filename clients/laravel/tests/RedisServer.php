<?php

namespace Herald\Laravel\Tests;

use RuntimeException;

/**
 * A redis-server of the test run's own, on a free loopback port, stopped at exit. Never the
 * machine's shared Redis on 6379; each test deletes the keys of this server only.
 */
class RedisServer
{
    /** @var self|null */
    private static $shared;

    /** @var int */
    public $port;

    /** @var resource */
    private $process;

    /** @var string */
    private $dir;

    public static function shared(): self
    {
        return self::$shared ?? (self::$shared = self::start());
    }

    public static function start(): self
    {
        for ($try = 0; $try < 5; $try++) {
            $server = new self;
            if ($server->spawn(self::freePort())) {
                return $server;
            }
        }

        throw new RuntimeException('could not start redis-server on a free port');
    }

    /** A port nothing listens on, for "Redis is unreachable". */
    public static function freePort(): int
    {
        $socket = stream_socket_server('tcp://127.0.0.1:0', $errno, $error);
        if ($socket === false) {
            throw new RuntimeException("no free port: {$error}");
        }
        $name = stream_socket_get_name($socket, false);
        fclose($socket);

        return (int) substr($name, strrpos($name, ':') + 1);
    }

    private function spawn(int $port): bool
    {
        $this->port = $port;
        $this->dir = sys_get_temp_dir().'/herald-php-redis-'.getmypid().'-'.$port;
        @mkdir($this->dir, 0700, true);
        $bin = getenv('HERALD_REDIS_SERVER') ?: 'redis-server';
        $command = [$bin, '--port', (string) $port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
            '--dir', $this->dir, '--logfile', $this->dir.'/redis.log'];
        $this->process = proc_open($command, [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes);
        if (! is_resource($this->process)) {
            throw new RuntimeException("cannot run {$bin}: install redis-server");
        }

        $deadline = microtime(true) + 10;
        while (microtime(true) < $deadline) {
            if (! proc_get_status($this->process)['running']) {
                return false; // the port was taken meanwhile
            }
            try {
                $client = new \Redis;
                if (@$client->connect('127.0.0.1', $port, 0.2) && $client->ping()) {
                    $client->close();
                    register_shutdown_function([$this, 'stop']);

                    return true;
                }
            } catch (\RedisException $e) {
                // not up yet
            }
            usleep(5000);
        }

        throw new RuntimeException('redis-server did not answer PING: '.@file_get_contents($this->dir.'/redis.log'));
    }

    /** Deletes every key of this (private) server. */
    public function clear(): void
    {
        $client = $this->client();
        $keys = $client->keys('*');
        if ($keys) {
            $client->del($keys);
        }
    }

    /** A raw phpredis client, without any prefix: what is really in Redis. */
    public function client(): \Redis
    {
        $client = new \Redis;
        $client->connect('127.0.0.1', $this->port);

        return $client;
    }

    public function stop(): void
    {
        if (is_resource($this->process)) {
            proc_terminate($this->process, 9);
            proc_close($this->process);
        }
        @array_map('unlink', glob($this->dir.'/*') ?: []);
        @rmdir($this->dir);
    }
}
