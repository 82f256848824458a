<?php

namespace Herald\Laravel\Tests\Fixtures;

use Illuminate\Database\Eloquent\BroadcastsEvents;
use Illuminate\Database\Eloquent\Model;

/** Model broadcasting: PostCreated, PostUpdated, PostDeleted on private-<class>.<id>. */
class Post extends Model
{
    use BroadcastsEvents;

    protected $guarded = [];
}
