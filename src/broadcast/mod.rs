//! Broadcasters: deliveries that publish an event on channels, one per broadcast connection
//! (Laravel's `config/broadcasting.php` drivers).
//!
//! Owns: the closed set of drivers ([`Broadcaster`]), the outgoing message view ([`Message`]),
//! and sending a whole batch per connection at once, so each driver can batch (pipelined
//! `PUBLISH` for Redis, `batch_events` for Pusher). Does not own: which connections and
//! channels an event gets (`registry`) or retries (`settle`): a driver returns one outcome per
//! message and nothing more.
//!
//! **Invariant:** only this module serializes the outgoing wire formats.

pub(crate) mod pusher;
mod redis;

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::config::{Config, ConnectionConfig};
use crate::delivery::DeliveryResult;
use crate::metrics::Metrics;
use crate::queue::Redis;

pub(crate) use self::pusher::PusherBroadcaster;
pub(crate) use self::redis::RedisBroadcaster;
#[cfg(feature = "internals")]
pub(crate) use self::redis::laravel_message;

/// One event to broadcast on one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message<'a> {
    /// Envelope id (for logs and idempotency keys).
    pub id: &'a str,
    /// The name clients listen for (`broadcast_as` or the event name).
    pub name: &'a str,
    pub channels: &'a [String],
    /// The payload object, exactly as the producer wrote it.
    pub data: &'a RawValue,
    /// Socket id to exclude (Laravel's `toOthers()`).
    pub socket: Option<&'a str>,
    /// `data` is the final payload (the envelope's `final_payload`): the Redis message carries
    /// it unchanged instead of adding `socket` to it.
    pub final_payload: bool,
    /// The envelope's `app`: which app of a multi-app Pusher connection it goes to.
    pub app: Option<&'a str>,
}

/// A broadcast connection.
pub(crate) enum Broadcaster {
    /// Redis pub/sub in Laravel's RedisBroadcaster format.
    Redis(RedisBroadcaster),
    /// The Pusher Channels HTTP API (Pusher, soketi, sockudo, Reverb).
    Pusher(Box<PusherBroadcaster>),
    /// Logs each message at info level.
    Log,
    /// Accepts and drops (Laravel's `null` driver).
    Null,
}

impl Broadcaster {
    /// Broadcasts a batch; one outcome per message, in order.
    /// `queue`: the queue the batch came from.
    pub(crate) async fn send(&self, batch: &[Message<'_>], queue: &str) -> Vec<DeliveryResult> {
        match self {
            Broadcaster::Redis(r) => r.send(batch).await,
            Broadcaster::Pusher(p) => p.send(batch, queue).await,
            Broadcaster::Log => batch
                .iter()
                .map(|m| {
                    tracing::info!(
                        message = "Broadcast.",
                        envelope_id = %m.id,
                        event = %m.name,
                        channels = ?m.channels,
                        data = %m.data.get(),
                    );
                    Ok(())
                })
                .collect(),
            Broadcaster::Null => batch.iter().map(|_| Ok(())).collect(),
        }
    }
}

/// Builds the configured connections, by name. `main` is the queue's Redis, reused by `redis`
/// connections that do not name a URL of their own.
/// A broadcast connection that cannot be built (its Redis URL, its HTTP client).
#[derive(Debug, thiserror::Error)]
#[error("broadcast connection {connection}: {message}")]
pub(crate) struct BuildError {
    pub(crate) connection: String,
    pub(crate) message: String,
}

pub(crate) fn build(
    config: &Config,
    main: &Redis,
    pool_size: usize,
    metrics: &Arc<Metrics>,
) -> Result<Vec<(String, Arc<Broadcaster>)>, BuildError> {
    let failed = |name: &str, message: String| BuildError {
        connection: name.to_string(),
        message,
    };
    config
        .broadcasting
        .connections
        .iter()
        .map(|(name, c)| {
            let b = match c {
                ConnectionConfig::Redis(r) => {
                    let redis = match &r.url {
                        Some(url) if url != &config.redis.url => {
                            Redis::open_url(url.expose(), pool_size)
                                .map_err(|e| failed(name, e.to_string()))?
                        }
                        _ => main.clone(),
                    };
                    let prefix = r
                        .prefix
                        .clone()
                        .unwrap_or_else(|| config.redis.prefix.clone());
                    Broadcaster::Redis(RedisBroadcaster::new(redis, prefix))
                }
                ConnectionConfig::Pusher(p) => Broadcaster::Pusher(Box::new(
                    PusherBroadcaster::new(name, p, main.clone(), &config.redis.prefix, metrics)
                        .map_err(|e| failed(name, e))?,
                )),
                ConnectionConfig::Log => Broadcaster::Log,
                ConnectionConfig::Null => Broadcaster::Null,
            };
            Ok((name.clone(), Arc::new(b)))
        })
        .collect()
}
