//! The wall clock, read in one place.
//!
//! Owns: what time it is, as the units herald stores (milliseconds since the Unix epoch in
//! scores, heartbeats and dead letters; seconds in `created_at` and Pusher signatures), and
//! [`Clock`], one reading passed into pure code (`settle`) so its decisions are reproducible in
//! tests. Does not own: durations between events (`tokio::time`, `Instant`).

use std::time::{SystemTime, UNIX_EPOCH};

/// One reading of the clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    /// Milliseconds since the Unix epoch.
    pub(crate) now_ms: u64,
}

impl Clock {
    /// The clock, read now.
    pub(crate) fn now() -> Clock {
        Clock { now_ms: now_ms() }
    }

    /// The same reading in seconds.
    pub(crate) fn secs(&self) -> f64 {
        self.now_ms as f64 / 1000.0
    }
}

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the Unix epoch, with the milliseconds as a fraction (`created_at`'s unit).
pub(crate) fn now_secs() -> f64 {
    now_ms() as f64 / 1000.0
}

/// Whole seconds since the Unix epoch (Pusher's `auth_timestamp`).
pub(crate) fn unix_secs() -> u64 {
    now_ms() / 1000
}
