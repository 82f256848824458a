<?php

namespace Herald\Laravel\Tests;

use Herald\Laravel\Herald;
use Herald\Laravel\Tests\Fixtures\CommittedPost;
use Herald\Laravel\Tests\Fixtures\PlainEvent;
use Herald\Laravel\Tests\Fixtures\Post;
use Herald\Laravel\Tests\Fixtures\Routed;
use Herald\Laravel\Tests\Fixtures\Shipped;
use Herald\Laravel\Tests\Fixtures\User;
use Illuminate\Database\Eloquent\BroadcastableModelEventOccurred;
use Illuminate\Database\Eloquent\ModelNotFoundException;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Notifications\Events\BroadcastNotificationCreated;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Schema;

/**
 * Model broadcasting (BroadcastsEvents), broadcast notifications, and the queue's behaviour
 * around database transactions (afterCommit), with a SQLite database.
 */
class ModelsAndTransactionsTest extends TestCase
{
    protected function setUp(): void
    {
        parent::setUp();
        Schema::create('posts', function (Blueprint $table) {
            $table->id();
            $table->string('title');
            $table->string('status')->default('draft');
            $table->timestamps();
        });
        Schema::create('users', function (Blueprint $table) {
            $table->id();
            $table->string('name');
            $table->timestamps();
        });
    }

    public function test_model_events_are_named_and_routed_as_laravel_names_them()
    {
        $post = Post::create(['title' => 'first']);
        $post->update(['title' => 'second']);
        $post->delete();

        [$created, $updated, $deleted] = $this->envelopes();
        $channel = 'private-'.str_replace('\\', '.', Post::class).'.'.$post->id;
        $this->assertSame(['PostCreated', 'PostUpdated', 'PostDeleted'], [$created['event'], $updated['event'], $deleted['event']]);
        $this->assertSame([[$channel], [$channel], [$channel]], [$created['channels'], $updated['channels'], $deleted['channels']]);
        $this->assertNoLaravelJobs();
    }

    public function test_a_queued_model_event_carries_the_model_as_the_queue_would_restore_it()
    {
        // SerializesModels: a queued broadcast's model is fetched again before the payload is
        // computed, so it has every column (status's default too), not only what was set.
        $post = Post::create(['title' => 'first']);

        $model = $this->onlyEnvelope()['data']['model'];
        $this->assertSame('draft', $model['status']);
        $this->assertSame($post->id, $model['id']);
        $this->assertSame('first', $model['title']);
        $this->assertArrayHasKey('socket', $this->onlyEnvelope()['data']);
    }

    public function test_a_hard_delete_broadcasts_now_with_the_model_in_memory()
    {
        $post = Post::create(['title' => 'gone']);
        $this->redis->clear();
        $post->delete();

        // ShouldBroadcastNow for a hard delete: no serialization, the row no longer exists.
        $envelope = $this->onlyEnvelope();
        $this->assertSame('PostDeleted', $envelope['event']);
        $this->assertSame('gone', $envelope['data']['model']['title']);
        $this->assertSame([], $this->reported);
    }

    public function test_a_broadcast_notification_is_an_envelope_on_the_notifiables_channel()
    {
        $user = User::create(['name' => 'alice']);
        $user->notify(new Shipped);

        $envelope = $this->onlyEnvelope('herald:high');
        $this->assertSame(BroadcastNotificationCreated::class, $envelope['event']);
        $this->assertSame(['private-'.str_replace('\\', '.', User::class).'.'.$user->id], $envelope['channels']);
        $this->assertSame(42, $envelope['data']['order']);
        $this->assertSame(Shipped::class, $envelope['data']['type']);
        $this->assertArrayHasKey('id', $envelope['data']);
        $this->assertNoLaravelJobs();
    }

    public function test_the_app_resolver_names_the_app_of_model_broadcasts_and_notifications()
    {
        // They have no broadcastApp() of their own: the resolver sees Laravel's event objects.
        Herald::resolveAppUsing(function ($event) {
            if ($event instanceof BroadcastableModelEventOccurred) {
                return 'post-'.$event->model->title;
            }

            return $event instanceof BroadcastNotificationCreated ? 'user-'.$event->notifiable->name : null;
        });

        $post = Post::create(['title' => 'first']);
        $post->delete();
        User::create(['name' => 'alice'])->notify(new Shipped);

        $this->assertSame(['post-first', 'post-first'], array_column($this->envelopes(), 'app'), 'queued created, deleted now');
        $this->assertSame('user-alice', $this->onlyEnvelope('herald:high')['app']);
    }

    public function test_after_commit_pushes_when_the_transaction_commits_and_never_after_a_rollback()
    {
        $event = new Routed;
        $event->afterCommit = true;

        DB::transaction(function () use ($event) {
            event($event);
            event(new PlainEvent);
            $this->assertSame([PlainEvent::class], array_column($this->envelopes(), 'event'), 'before the commit');
        });
        $this->assertSame([PlainEvent::class, Routed::class], array_column($this->envelopes(), 'event'), 'after the commit');

        $this->redis->clear();
        try {
            DB::transaction(function () use ($event) {
                event($event);
                throw new \RuntimeException('roll back');
            });
        } catch (\RuntimeException $e) {
            $this->assertSame('roll back', $e->getMessage());
        }
        $this->assertSame([], $this->envelopes(), 'after the rollback');
        $this->assertNoLaravelJobs();
    }

    public function test_the_queue_connections_after_commit_setting_applies_when_the_event_says_nothing()
    {
        $this->app['config']->set('queue.connections.redis.after_commit', true);

        DB::beginTransaction();
        event(new PlainEvent);
        $this->assertSame([], $this->envelopes());
        DB::commit();
        $this->assertCount(1, $this->envelopes());
    }

    public function test_a_model_gone_when_the_transaction_commits_is_reported_and_not_broadcast()
    {
        DB::transaction(function () {
            $post = CommittedPost::create(['title' => 'short-lived']);
            // The job holds the model's identifier; the row is gone when it is restored.
            CommittedPost::withoutBroadcasting(function () use ($post) {
                $post->delete();
            });
            $this->assertSame([], $this->envelopes());
        });

        $this->assertSame([], $this->envelopes());
        $this->assertCount(1, $this->reported);
        $this->assertInstanceOf(ModelNotFoundException::class, $this->reported[0]);

        $post = CommittedPost::create(['title' => 'kept']);
        $this->assertSame(['CommittedPostCreated'], array_column($this->envelopes(), 'event'));
        $this->assertSame('kept', $this->onlyEnvelope()['data']['model']['title']);
        $this->assertSame($post->id, $this->onlyEnvelope()['data']['model']['id']);
    }
}
