//! What an operator does to a fleet: queue counts and activity, live processes, the dead-letter
//! store, pausing a queue, pushing envelopes, keyspace migrations, the Pusher connections'
//! health, the effective configuration.
//!
//! Owns: the one implementation of every operator action, which the CLI (`herald stats |
//! failed … | pause | enqueue | migrate`) prints and the dashboard's admin API serves; the log
//! line of every action that changes something, naming who did it ([`Actor`]); and the
//! connection they share (opened once from the config, errors naming the masked URL). Does not
//! own: the keys and scripts (`queue`), running workers (`Herald::run`), HTTP (`admin`).
//!
//! Files: this one (the fleet: [`Ops`]), `queue` (one queue: [`QueueOps`]), `dead_letters`
//! (listing, retry, forget, flush), `connections` (Pusher connections).

mod connections;
mod dead_letters;
mod queue;

use std::collections::BTreeMap;

use crate::clock;
use crate::config::Config;
use crate::migrate;
use crate::queue::{GlobalKeys, Queue, QueueKeys, Redis, reaper};

pub use self::connections::{CircuitState, ConnectionStatus, RecentRequest, RequestMinute};
pub use self::dead_letters::{Done, MAX_PAGE, Page, Selection};
pub use self::queue::{DeliveryAge, QueueActivity, QueueOps, QueueOverview};
pub use crate::migrate::SchemaError;
pub use crate::queue::{
    Cursor, DeadLetter, FailedDelivery, Filter, Minute, Payload, QueueError, QueueStats,
};

/// Why an operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// `redis.url` (or `redis.nodes`) is not usable.
    #[error("{url}: {source}")]
    Open {
        /// Where herald looks for Redis (the URL or nodes), passwords masked.
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
    /// Redis does not answer `PING` where the config says it is.
    #[error("cannot reach Redis at {url}: {reason}")]
    Unreachable {
        /// Where herald looks for Redis (the URL or nodes), passwords masked.
        url: String,
        /// Why: the client's error, an untrusted TLS certificate, or no answer in time.
        reason: String,
    },
    /// The queue is not one of `worker.queues`.
    #[error("no queue {queue:?} in worker.queues (configured: {configured})")]
    UnknownQueue {
        /// The name asked for.
        queue: String,
        /// The configured names.
        configured: String,
    },
    /// A Redis operation failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The configuration asks for something this build cannot do (a Redis mode).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The keyspace cannot be migrated.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// Who asked for an action, for its log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `cli` or `dashboard`.
    pub via: &'static str,
    /// The person or client: `$USER@host` on the command line, the client address (and how it
    /// authenticated) on the dashboard.
    pub who: String,
}

impl Actor {
    /// The user running this command-line process.
    pub fn cli() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Actor {
            via: "cli",
            who: format!("{user}@{}", reaper::hostname()),
        }
    }

    /// A request to the admin API.
    pub(crate) fn dashboard(who: String) -> Actor {
        Actor {
            via: "dashboard",
            who,
        }
    }
}

/// A live herald process, as its heartbeat reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Process {
    /// `<host>:<pid>:<random>`.
    pub id: String,
    /// Its last heartbeat, in ms since the epoch.
    pub last_heartbeat_ms: u64,
    /// Envelopes it holds reserved right now, over every queue (its processing lists).
    pub inflight: u64,
    /// What it reports: hostname, pid, queues, concurrency, started_at, version, beat.
    pub info: BTreeMap<String, String>,
}

/// What `herald stats --json` prints and `GET /api/stats` answers: the same value.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    /// Counts of every configured queue, in config order.
    pub queues: Vec<QueueStats>,
    /// Live processes, newest heartbeat first.
    pub processes: Vec<Process>,
}

/// The operations on one Redis and the queues the config names.
pub struct Ops {
    redis: Redis,
    config: Config,
}

impl Ops {
    /// Prepares a connection to `config.redis.url`; nothing is connected until first use.
    pub fn new(config: &Config) -> Result<Ops, OpsError> {
        let redis = Redis::open(&config.redis, 4).map_err(|source| OpsError::Open {
            url: config.redis.target(),
            source,
        })?;
        Ok(Ops::with_redis(redis, config))
    }

    /// On a connection herald already has (the admin server's).
    pub(crate) fn with_redis(redis: Redis, config: &Config) -> Ops {
        Ops {
            redis,
            config: config.clone(),
        }
    }

    /// Fails with [`OpsError::Unreachable`] unless Redis answers `PING` now.
    pub async fn reachable(&self) -> Result<(), OpsError> {
        self.redis
            .check()
            .await
            .map_err(|reason| OpsError::Unreachable {
                url: self.config.redis.target(),
                reason: reason.to_string(),
            })
    }

    /// The queue list key `name` (before the prefix), or the first configured queue.
    pub fn queue(&self, name: Option<&str>) -> QueueOps {
        let name = name.unwrap_or(&self.config.worker.queues[0]);
        QueueOps::new(Queue::new(
            self.redis.clone(),
            QueueKeys::new(&self.config.redis.prefix, name),
            self.config.failed.max_entries,
        ))
    }

    /// [`Ops::queue`], only for a queue of `worker.queues`: the admin API acts on nothing else.
    pub fn configured_queue(&self, name: Option<&str>) -> Result<QueueOps, OpsError> {
        let queues = &self.config.worker.queues;
        match name {
            Some(n) if !queues.iter().any(|q| q == n) => Err(OpsError::UnknownQueue {
                queue: n.to_string(),
                configured: queues.join(", "),
            }),
            _ => Ok(self.queue(name)),
        }
    }

    /// Every configured queue, in config order.
    pub fn queues(&self) -> Vec<QueueOps> {
        let names = &self.config.worker.queues;
        names.iter().map(|n| self.queue(Some(n))).collect()
    }

    /// Counts of every configured queue.
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>, OpsError> {
        let mut out = Vec::new();
        for q in self.queues() {
            out.push(q.stats().await?);
        }
        Ok(out)
    }

    /// Every queue's counts and the live processes: `herald stats`.
    pub async fn stats(&self) -> Result<Stats, OpsError> {
        Ok(Stats {
            queues: self.queue_stats().await?,
            processes: self.processes().await?,
        })
    }

    /// Processes heartbeating on this Redis, newest heartbeat first, with what each holds.
    pub async fn processes(&self) -> Result<Vec<Process>, OpsError> {
        let global = GlobalKeys::new(&self.config.redis.prefix);
        let live = reaper::live_processes(&self.redis, &global).await?;
        let mut held: BTreeMap<String, u64> = BTreeMap::new();
        for q in self.queues() {
            for (process, n) in q.held_by_process().await? {
                *held.entry(process).or_default() += n;
            }
        }
        Ok(live
            .into_iter()
            .map(|(id, last_heartbeat_ms, info)| Process {
                inflight: held.get(&id).copied().unwrap_or(0),
                id,
                last_heartbeat_ms,
                info,
            })
            .collect())
    }

    /// The effective configuration as TOML, secrets masked (what `check-config` prints).
    pub fn config_toml(&self) -> String {
        self.config.to_masked_toml()
    }

    /// Applies pending keyspace migrations to every configured queue; the versions applied.
    pub async fn migrate(&self) -> Result<Vec<u32>, OpsError> {
        let queues: Vec<Queue> = self
            .queues()
            .into_iter()
            .map(QueueOps::into_queue)
            .collect();
        let global = GlobalKeys::new(&self.config.redis.prefix);
        Ok(migrate::migrate(&queues, &global, &self.config.redis.prefix).await?)
    }

    /// The keyspace version this build reads and writes.
    pub fn schema_version() -> u32 {
        migrate::current()
    }

    /// Milliseconds since the epoch, the clock every time in these answers is on.
    pub fn now_ms() -> u64 {
        clock::now_ms()
    }
}

/// Logs one action that changed something: who, what, on which queue, and how it went.
fn log_action(actor: &Actor, action: &str, queue: &str, what: &str, outcome: &str) {
    tracing::info!(
        message = "Operator action.",
        via = actor.via,
        actor = %actor.who,
        action,
        queue,
        selection = %what,
        outcome = %outcome,
    );
}
