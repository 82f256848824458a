//! herald: a fast, reliable event-broadcasting queue worker.
//!
//! Producers `LPUSH` JSON envelopes onto a Redis list; herald reserves them in batches, runs the
//! listeners the registry names, broadcasts to Redis pub/sub (Laravel's format) and other
//! connections, and settles each envelope: acknowledged, retried for only the deliveries that
//! failed, or dead-lettered with its original bytes.
//!
//! # Layout, in the order an envelope flows
//!
//! - [`envelope`]: bytes → `Envelope`, or a `Rejection` (bad input is data, not a panic).
//! - [`queue`]: reserve into a per-task processing list; settle, delay, dead-letter; heartbeats
//!   and the reaper; every Redis key and Lua script.
//! - [`registry`]: event name → `Plan` (listeners, connections, channels, `broadcast_as`).
//! - [`listeners`] and [`broadcast`]: the deliveries; each returns one outcome per event.
//! - [`delivery`]: what a delivery is and how it fails (`DeliveryError::is_retryable`).
//! - [`settle`]: pure decision from outcomes to ack / retry pending / dead-letter.
//! - [`worker`]: the loop that calls the stages above, in order, and the maintenance loop.
//!
//! Around them: [`config`], [`metrics`], [`admin`] (`/metrics`, `/healthz`, `/readyz`),
//! [`migrate`] (keyspace versions), [`shutdown`] (signals), and [`Herald::run`], which wires it
//! all up and drains on shutdown.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod admin;
mod broadcast;
mod clock;
pub mod config;
pub mod delivery;
pub mod envelope;
mod herald;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
pub mod listeners;
pub mod metrics;
mod migrate;
pub mod ops;
mod queue;
mod registry;
mod settle;
pub mod shutdown;
mod template;
mod worker;

pub use config::Config;
pub use herald::{Error, Herald, Started};

/// Runs herald on `config` until `shutdown` completes (mini-redis's `server::run` shape).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    Herald::new(config).run(shutdown).await
}
