<?php

namespace App\Models;

use Illuminate\Database\Eloquent\BroadcastsEvents;
use Illuminate\Database\Eloquent\Model;

/** Model broadcasting: PostCreated, PostUpdated, PostDeleted on private-App.Models.Post.{id}. */
class Post extends Model
{
    use BroadcastsEvents;

    protected $guarded = [];

    protected $casts = ['published' => 'boolean'];
}
