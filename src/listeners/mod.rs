//! Listeners: deliveries that run code for an event (Laravel's listeners in `$listen`).
//!
//! Owns: the [`Listener`] trait (public, so a program embedding herald can register its own),
//! the event view listeners receive ([`Event`]), building the configured listeners (`log`,
//! `webhook`, `forward`), and running one with its time bound. Does not own: which listeners
//! an event gets (`registry`) or what a failure leads to (`settle`).

mod forward;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::value::RawValue;

use crate::config::{Config, ListenerConfig};
use crate::delivery::{DeliveryError, DeliveryResult};
use crate::envelope::Envelope;
use crate::queue::Redis;

use forward::Forward;
use webhook::Webhook;
pub use webhook::signature as webhook_signature;

/// What a listener sees of one event.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The envelope id (stable across retries).
    pub id: &'a str,
    /// The queue it came from (list key before the prefix).
    pub queue: &'a str,
    /// The event name as pushed, e.g. `App\Events\OrderShipped`.
    pub event: &'a str,
    /// Every channel the event is broadcast on (envelope's and registry's).
    pub channels: &'a [String],
    /// The payload, exactly as the producer wrote it.
    pub data: &'a RawValue,
    /// Socket id to exclude from broadcasts, if any.
    pub socket: Option<&'a str>,
    /// Which attempt this is, starting at 1.
    pub attempt: u32,
    /// The whole envelope, for listeners that need more (unknown fields, `created_at`).
    pub envelope: &'a Envelope,
}

/// A delivery that runs code for an event. Implement it to add a listener from Rust:
///
/// ```no_run
/// use herald::listeners::{Event, Listener};
/// use herald::delivery::DeliveryResult;
/// use futures::future::BoxFuture;
///
/// struct Audit;
/// impl Listener for Audit {
///     fn handle<'a>(&'a self, event: &'a Event<'a>) -> BoxFuture<'a, DeliveryResult> {
///         Box::pin(async move {
///             println!("{} {}", event.id, event.event);
///             Ok(())
///         })
///     }
/// }
/// ```
///
/// Register it with [`crate::Herald::with_listener`] under a name the registry's
/// `events.*.listeners` uses. Return a retryable [`DeliveryError`] to be called again later
/// with the same event (only this listener is re-run), or a fatal one to dead-letter it.
pub trait Listener: Send + Sync + 'static {
    /// Handles one event. Runs concurrently with the event's other deliveries.
    fn handle<'a>(&'a self, event: &'a Event<'a>) -> BoxFuture<'a, DeliveryResult>;

    /// How long one call may take before it counts as a retryable timeout.
    fn timeout(&self) -> Duration {
        Duration::from_secs(30)
    }
}

/// Runs `listener` on `event` within its time bound.
pub(crate) async fn run(listener: &dyn Listener, event: &Event<'_>) -> DeliveryResult {
    let limit = listener.timeout();
    match tokio::time::timeout(limit, listener.handle(event)).await {
        Ok(r) => r,
        Err(_) => Err(DeliveryError::Timeout(limit)),
    }
}

/// Writes each event to the log at info level.
pub(crate) struct Log;

impl Listener for Log {
    fn handle<'a>(&'a self, event: &'a Event<'a>) -> BoxFuture<'a, DeliveryResult> {
        Box::pin(async move {
            tracing::info!(
                message = "Event received.",
                envelope_id = %event.id,
                queue = %event.queue,
                event = %event.event,
                channels = ?event.channels,
                attempt = event.attempt,
                data = %event.data.get(),
            );
            Ok(())
        })
    }
}

/// Builds the configured listeners, by name.
pub(crate) fn build(
    config: &Config,
    redis: &Redis,
    http: &reqwest::Client,
) -> Vec<(String, Arc<dyn Listener>)> {
    config
        .listeners
        .iter()
        .map(|(name, l)| {
            let built: Arc<dyn Listener> = match l {
                ListenerConfig::Log => Arc::new(Log),
                ListenerConfig::Webhook(w) => Arc::new(Webhook::new(w, http.clone())),
                ListenerConfig::Forward(f) => {
                    Arc::new(Forward::new(redis.clone(), &config.redis.prefix, &f.queue))
                }
            };
            (name.clone(), built)
        })
        .collect()
}
