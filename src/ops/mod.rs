//! What an operator does to a fleet: queue counts, live processes, the dead-letter store,
//! pushing envelopes, keyspace migrations.
//!
//! Owns: the one implementation of every `herald stats | failed … | enqueue | migrate` action,
//! which the CLI prints and the admin surface serves, and the connection they share (opened once
//! from the config, errors naming the masked URL). Does not own: the keys and scripts (`queue`),
//! running workers (`Herald::run`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::clock;
use crate::config::Config;
use crate::migrate;
use crate::queue::{GlobalKeys, Queue, QueueKeys, Redis, reaper};

pub use crate::migrate::SchemaError;
pub use crate::queue::{DeadLetter, FailedDelivery, Payload, QueueError, QueueStats};

/// Why an operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// `redis.url` is not usable.
    #[error("redis.url {url}: {source}")]
    Open {
        /// The URL, password masked.
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
    /// Nothing answers at `redis.url`.
    #[error("cannot reach Redis at {url} (redis.url / REDIS_URL)")]
    Unreachable {
        /// The URL, password masked.
        url: String,
    },
    /// A Redis operation failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The keyspace cannot be migrated.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// A live herald process, as its heartbeat reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Process {
    /// `<host>:<pid>:<random>`.
    pub id: String,
    /// Its last heartbeat, in ms since the epoch.
    pub last_heartbeat_ms: u64,
    /// What it reports: hostname, pid, queues, concurrency, started_at, version, beat.
    pub info: BTreeMap<String, String>,
}

/// The operations on one Redis and the queues the config names.
pub struct Ops {
    redis: Redis,
    config: Config,
}

impl Ops {
    /// Prepares a connection to `config.redis.url`; nothing is connected until first use.
    pub fn new(config: &Config) -> Result<Ops, OpsError> {
        let redis = Redis::open(config.redis.url.expose(), 4).map_err(|source| OpsError::Open {
            url: config.redis.url.to_string(),
            source,
        })?;
        Ok(Ops {
            redis,
            config: config.clone(),
        })
    }

    /// Fails with [`OpsError::Unreachable`] unless Redis answers `PING` now.
    pub async fn reachable(&self) -> Result<(), OpsError> {
        if self.redis.ping().await {
            Ok(())
        } else {
            Err(OpsError::Unreachable {
                url: self.config.redis.url.to_string(),
            })
        }
    }

    /// The queue list key `name` (before the prefix), or the first configured queue.
    pub fn queue(&self, name: Option<&str>) -> QueueOps {
        let name = name.unwrap_or(&self.config.worker.queues[0]);
        QueueOps {
            queue: Queue::new(
                self.redis.clone(),
                QueueKeys::new(&self.config.redis.prefix, name),
                self.config.failed.max_entries,
            ),
        }
    }

    /// Every configured queue, in config order.
    pub fn queues(&self) -> Vec<QueueOps> {
        let names = &self.config.worker.queues;
        names.iter().map(|n| self.queue(Some(n))).collect()
    }

    /// Counts of every configured queue.
    pub async fn stats(&self) -> Result<Vec<QueueStats>, OpsError> {
        let mut out = Vec::new();
        for q in self.queues() {
            out.push(q.stats().await?);
        }
        Ok(out)
    }

    /// Processes heartbeating on this Redis, newest heartbeat first.
    pub async fn processes(&self) -> Result<Vec<Process>, OpsError> {
        let global = GlobalKeys::new(&self.config.redis.prefix);
        let live = reaper::live_processes(&self.redis, &global).await?;
        Ok(live
            .into_iter()
            .map(|(id, last_heartbeat_ms, info)| Process {
                id,
                last_heartbeat_ms,
                info,
            })
            .collect())
    }

    /// Applies pending keyspace migrations to every configured queue; the versions applied.
    pub async fn migrate(&self) -> Result<Vec<u32>, OpsError> {
        let queues: Vec<Queue> = self.queues().into_iter().map(|q| q.queue).collect();
        let global = GlobalKeys::new(&self.config.redis.prefix);
        Ok(migrate::migrate(&queues, &global, &self.config.redis.prefix).await?)
    }

    /// The keyspace version this build reads and writes.
    pub fn schema_version() -> u32 {
        migrate::current()
    }
}

/// The operations on one queue.
pub struct QueueOps {
    queue: Queue,
}

impl QueueOps {
    /// The queue's name (list key before the prefix).
    pub fn name(&self) -> &str {
        &self.queue.keys.name
    }

    /// The list key producers push onto (prefix applied).
    pub fn list_key(&self) -> &str {
        &self.queue.keys.list
    }

    /// Waiting, processing, delayed and failed counts.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.queue.stats(clock::now_ms()).await
    }

    /// Pushes envelopes as a producer would (`LPUSH`), in order.
    pub async fn push<T: AsRef<[u8]>>(&self, envelopes: &[T]) -> Result<(), QueueError> {
        self.queue.push(envelopes).await
    }

    /// Pushes `count` envelopes of `event` on `channels` with `data`, each with its own id and
    /// the same `created_at`; returns how many were pushed.
    pub async fn enqueue(
        &self,
        event: &str,
        channels: &[String],
        data: &Value,
        count: usize,
    ) -> Result<usize, QueueError> {
        let now = clock::now_secs();
        let mut pushed = 0;
        while pushed < count {
            let n = (count - pushed).min(10_000);
            let batch: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let e = json!({
                        "id": uuid::Uuid::new_v4().to_string(),
                        "event": event,
                        "channels": channels,
                        "data": data,
                        "created_at": now,
                    });
                    serde_json::to_vec(&e).expect("JSON values serialize")
                })
                .collect();
            self.queue.push(&batch).await?;
            pushed += n;
        }
        Ok(pushed)
    }

    /// Dead letters, newest first: `(id, entry)`.
    pub async fn failed_list(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, DeadLetter)>, QueueError> {
        self.queue.failed_list(offset, limit).await
    }

    /// Every dead-letter id, oldest first.
    pub async fn failed_ids(&self) -> Result<Vec<String>, QueueError> {
        self.queue.failed_ids().await
    }

    /// One dead letter by id.
    pub async fn failed_get(&self, id: &str) -> Result<Option<DeadLetter>, QueueError> {
        self.queue.failed_get(id).await
    }

    /// Puts a dead letter back on its queue, only the deliveries that failed pending; `false`
    /// when it no longer exists.
    pub async fn failed_retry(&self, id: &str) -> Result<bool, QueueError> {
        self.queue.failed_retry(id).await
    }

    /// Deletes one dead letter; `false` when it did not exist.
    pub async fn failed_forget(&self, id: &str) -> Result<bool, QueueError> {
        self.queue.failed_forget(id).await
    }

    /// Deletes every dead letter of the queue; how many there were.
    pub async fn failed_flush(&self) -> Result<u64, QueueError> {
        self.queue.failed_flush().await
    }
}
