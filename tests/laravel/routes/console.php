<?php

use App\Events\Heartbeat;
use App\Events\InventoryChanged;
use App\Events\InvoicePaid;
use App\Events\OrderShipped;
use App\Events\PriceDropped;
use App\Events\RoomMessage;
use App\Events\TenantMessage;
use App\Events\VaultOpened;
use App\Models\Post;
use App\Models\User;
use App\Notifications\OrderDelivered;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Http\Request;
use Illuminate\Queue\Events\JobFailed;
use Illuminate\Queue\Events\JobQueued;
use Illuminate\Support\Carbon;
use Illuminate\Support\Facades\Artisan;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Event;
use Illuminate\Support\Facades\Redis;
use Illuminate\Support\Facades\Schema;

// The schema and two users with API tokens.
Artisan::command('herald:migrate', function () {
    Schema::create('users', function (Blueprint $table) {
        $table->id();
        $table->string('name');
        $table->string('api_token')->unique();
        $table->timestamps();
    });
    Schema::create('posts', function (Blueprint $table) {
        $table->id();
        $table->string('title');
        $table->boolean('published')->default(false);
        $table->timestamps();
    });
    User::create(['name' => 'alice', 'api_token' => 'alice-token']);
    User::create(['name' => 'bob', 'api_token' => 'bob-token']);
});

// The same set of events through whichever broadcaster BROADCAST_DRIVER names. One JSON line
// per step: the jobs Laravel's queue received and its keys in Redis; with --work, Laravel's own
// worker (queue:work) runs what was queued after each step, as a prompt worker would.
Artisan::command('herald:scenario {--work}', function () {
    Carbon::setTestNow('2026-01-02 03:04:05');
    $jobs = 0;
    Event::listen(JobQueued::class, function () use (&$jobs) {
        $jobs++;
    });
    $failed = [];
    Event::listen(JobFailed::class, function (JobFailed $e) use (&$failed) {
        $failed[] = $e->job->resolveName().': '.$e->exception->getMessage();
    });
    $alice = User::where('name', 'alice')->firstOrFail();

    $steps = [
        'queued, trait, public properties' => function () {
            OrderShipped::dispatch(1);
        },
        'neither trait nor broadcastWith' => function () {
            InventoryChanged::dispatch();
        },
        'broadcastWith, broadcastAs, presence, toOthers' => function () {
            app()->instance('request', Request::create('/', 'POST', [], [], [], ['HTTP_X_SOCKET_ID' => '1234.5678']));
            broadcast(new RoomMessage('hi there'))->toOthers();
            app()->instance('request', Request::create('/', 'POST'));
        },
        'empty payload' => function () {
            event(new Heartbeat);
        },
        'ShouldBroadcastNow, encrypted channel' => function () {
            event(new VaultOpened('alice'));
        },
        'broadcastWhen, broadcastQueue' => function () {
            event(new PriceDropped(250.0));
            event(new PriceDropped(99.5));
        },
        'model created (queued)' => function () {
            Post::create(['title' => 'hello']);
        },
        'model updated (queued)' => function () {
            Post::where('title', 'hello')->firstOrFail()->update(['title' => 'hello again', 'published' => true]);
        },
        'model deleted (now)' => function () {
            Post::where('title', 'hello again')->firstOrFail()->delete();
        },
        'broadcast notification' => function () use ($alice) {
            $notification = new OrderDelivered(7);
            $notification->id = '9a0c1e5e-0000-4000-8000-000000000007';
            $alice->notify($notification);
        },
        'afterCommit in a transaction' => function () {
            DB::transaction(function () {
                $post = Post::withoutBroadcasting(function () {
                    return Post::create(['title' => 'invoice']);
                });
                event(new InvoicePaid($post));
            });
        },
    ];

    foreach ($steps as $name => $step) {
        $before = $jobs;
        $step();
        $keys = Redis::connection()->client()->keys('*queues:*');
        sort($keys);
        $line = ['step' => $name, 'laravel_jobs' => $jobs - $before, 'laravel_queue_keys' => $keys];
        if ($this->option('work')) {
            Artisan::call('queue:work', ['connection' => 'redis', '--queue' => 'high,default', '--stop-when-empty' => true, '--sleep' => 0]);
            $line['failed_jobs'] = $failed;
            $failed = [];
        }
        $this->line(json_encode($line));
    }

    $this->line(json_encode(['done' => true, 'laravel_jobs' => $jobs]));
});

// Multi-tenant broadcasting: one TenantMessage per entry of the JSON list `events`, each
// {"text", "app" (the event's broadcastApp(), or null), "x_tenant" (the request's X-Tenant
// header the app's resolver reads, or null)}.
Artisan::command('herald:tenants {events}', function () {
    foreach (json_decode($this->argument('events'), true, 512, JSON_THROW_ON_ERROR) as $e) {
        $headers = $e['x_tenant'] === null ? [] : ['HTTP_X_TENANT' => $e['x_tenant']];
        app()->instance('request', Request::create('/', 'POST', [], [], [], $headers));
        event(new TenantMessage($e['app'], $e['text']));
    }
});
