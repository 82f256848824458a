//! Local fakes of the services herald talks to, for tests and `herald bench`.
//!
//! Owns: nothing herald needs in production. Does not own: any delivery logic.
//!
//! - [`PusherFake`]: a Pusher Channels HTTP API server on a free loopback port that checks
//!   signatures as strictly as sockudo, enforces soketi's limits, records every event it
//!   accepts and fails on command.

pub mod pusher;

pub use pusher::{FakeEvent, FakeRequest, PusherFake};
