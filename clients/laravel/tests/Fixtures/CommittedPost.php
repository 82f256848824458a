<?php

namespace Herald\Laravel\Tests\Fixtures;

/** A model whose broadcasts wait for the transaction to commit. */
class CommittedPost extends Post
{
    protected $table = 'posts';

    public $broadcastAfterCommit = true;
}
