<?php

// Copied unchanged (but for this comment) from laravel/framework 11.x @3dc23992442f, src/Illuminate/Contracts/Broadcasting/ShouldBeUnique.php
// (MIT License, Copyright (c) Taylor Otwell), so tests on Debian's Laravel 8.83 run the package
// against 11.x's classes: see Laravel11Test.

namespace Illuminate\Contracts\Broadcasting;

interface ShouldBeUnique
{
    //
}
