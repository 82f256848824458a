//! `[worker]`: queues, tasks, batches, timeouts, liveness.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};
use crate::queue::QueueKeys;

/// What to do with an event the registry has no entry for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownEvents {
    /// Broadcast it on the channels it names, over the default connections.
    #[default]
    Broadcast,
    /// Dead-letter it with code `unknown_event`.
    Reject,
}

/// `[worker]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Queue list keys to consume (before the prefix). Env: `HERALD_QUEUE`.
    pub queues: Vec<String>,
    /// Worker tasks per queue; each owns one processing list. Env: `HERALD_CONCURRENCY`.
    pub concurrency: usize,
    /// Most envelopes reserved in one round trip (1–1000). Env: `HERALD_BATCH_SIZE`.
    pub batch_size: usize,
    /// How long an idle worker blocks on the queue before checking for shutdown.
    #[serde(with = "super::de::duration")]
    pub block_timeout: Duration,
    /// On SIGTERM, how long in-flight deliveries may take before what is left goes back to the
    /// queue. Env: `HERALD_SHUTDOWN_TIMEOUT`.
    #[serde(with = "super::de::duration")]
    pub shutdown_timeout: Duration,
    /// How often this process proves it is alive, and looks for dead ones.
    #[serde(with = "super::de::duration")]
    pub heartbeat_interval: Duration,
    /// A process silent this long is dead: its processing lists go back to the queue.
    #[serde(with = "super::de::duration")]
    pub process_timeout: Duration,
    /// How often due delayed envelopes (retries) are moved back onto their queue.
    #[serde(with = "super::de::duration")]
    pub promote_interval: Duration,
    /// `broadcast` (default) or `reject`. Env: `HERALD_UNKNOWN_EVENTS`.
    pub unknown_events: UnknownEvents,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            queues: vec!["herald:default".into()],
            concurrency: 4,
            batch_size: 100,
            block_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(25),
            heartbeat_interval: Duration::from_secs(2),
            process_timeout: Duration::from_secs(20),
            promote_interval: Duration::from_millis(500),
            unknown_events: UnknownEvents::Broadcast,
        }
    }
}

impl WorkerConfig {
    /// Checks the section; `prefix` is `redis.prefix`, which every queue key starts with.
    pub(super) fn check(&self, prefix: &str) -> Result<(), ConfigError> {
        self.check_queues(prefix)?;
        if self.concurrency == 0 || self.concurrency > 1024 {
            return Err(invalid("worker.concurrency", "must be between 1 and 1024"));
        }
        if self.batch_size == 0 || self.batch_size > 1000 {
            return Err(invalid("worker.batch_size", "must be between 1 and 1000"));
        }
        if self.block_timeout < Duration::from_millis(10) {
            return Err(invalid("worker.block_timeout", "must be at least 10ms"));
        }
        if self.process_timeout <= self.heartbeat_interval * 2 {
            return Err(invalid(
                "worker.process_timeout",
                "must be more than twice worker.heartbeat_interval",
            ));
        }
        if self.heartbeat_interval.is_zero() || self.promote_interval.is_zero() {
            return Err(invalid("worker", "intervals must be above zero"));
        }
        Ok(())
    }

    fn check_queues(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.queues.is_empty() {
            return Err(invalid("worker.queues", "at least one queue is needed"));
        }
        for q in &self.queues {
            if q.is_empty() {
                return Err(invalid("worker.queues", "a queue name is empty"));
            }
            if !QueueKeys::new(prefix, q).is_cluster_safe() {
                return Err(invalid(
                    "worker.queues",
                    format!("{q:?}: a `}}` outside a `{{tag}}` cannot share a hash slot"),
                ));
            }
        }
        Ok(())
    }
}
