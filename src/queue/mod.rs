//! Reserving, acknowledging, delaying and dead-lettering envelopes on Redis.
//!
//! Owns: every Redis key (see [`keys`]), the Lua scripts that move envelopes between them
//! (`lua/`), the blocking wait on an idle queue, process heartbeats and the reaper
//! ([`reaper`]), and the dead-letter store behind `herald failed …` ([`failed`]). Does not own:
//! decoding (`envelope`), routing (`registry`), the retry decision (`settle`).
//!
//! **Invariant:** an envelope is always somewhere in Redis until it is settled: in the queue, a
//! processing list, the delayed set or the dead-letter store. Every move is one Lua script (one
//! hash slot), never a read-then-write from Rust.
//!
//! Connections: non-blocking commands go through a `deadpool_redis` pool of multiplexed
//! connections. A blocking `BLMOVE` would stall every command pipelined behind it on a shared
//! multiplexed connection (redis-rs #453, #361), so each worker task blocks on a dedicated
//! connection of its own ([`Redis::dedicated`]) whose response timeout is above the block time.

pub mod failed;
pub mod keys;
pub mod reaper;

use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Script};

pub use failed::{DeadLetter, FailedDelivery};
pub use keys::{GlobalKeys, QueueKeys};

/// A Redis operation that failed, naming the queue and what herald was doing.
#[derive(Debug, thiserror::Error)]
#[error("queue {queue}: {op}: {source}")]
pub struct QueueError {
    pub queue: String,
    pub op: &'static str,
    /// Shown in the message, not chained as a source, so `{:#}` prints it once.
    pub source: redis::RedisError,
}

impl QueueError {
    fn new(keys: &QueueKeys, op: &'static str) -> impl FnOnce(redis::RedisError) -> QueueError {
        let queue = keys.name.clone();
        move |source| QueueError { queue, op, source }
    }
}

/// The Lua scripts, loaded once per server by `EVALSHA` (redis-rs falls back to `SCRIPT LOAD`).
pub(crate) struct Scripts {
    pub reserve: Script,
    pub settle: Script,
    pub requeue: Script,
    pub promote: Script,
    pub retry_failed: Script,
}

pub(crate) fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        reserve: Script::new(include_str!("lua/reserve.lua")),
        settle: Script::new(include_str!("lua/settle.lua")),
        requeue: Script::new(include_str!("lua/requeue.lua")),
        promote: Script::new(include_str!("lua/promote.lua")),
        retry_failed: Script::new(include_str!("lua/retry_failed.lua")),
    })
}

/// A connection to one Redis server: a pool for ordinary commands, and a way to open dedicated
/// connections for blocking ones.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    pool: deadpool_redis::Pool,
}

/// Response timeout of pooled connections. Generous, because a settle or reap script over a big
/// batch is one command; a hung server is still noticed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

impl Redis {
    /// Prepares connections to `url`; nothing is connected until first use.
    pub fn open(url: &str, pool_size: usize) -> Result<Redis, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let manager = deadpool_redis::Manager::new_with_config(
            url,
            AsyncConnectionConfig::new()
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_connection_timeout(Some(Duration::from_secs(5))),
        )?;
        let pool = deadpool_redis::Pool::builder(manager)
            .max_size(pool_size)
            .runtime(deadpool_redis::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .expect("runtime is set, so the pool builds");
        Ok(Redis { client, pool })
    }

    /// A pooled connection for non-blocking commands.
    pub async fn get(&self) -> Result<deadpool_redis::Connection, redis::RedisError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_redis::PoolError::Backend(e) => e,
            other => redis::RedisError::from((
                redis::ErrorKind::Io,
                "connection pool",
                other.to_string(),
            )),
        })
    }

    /// A connection of its own, for blocking commands that wait up to `block`.
    pub async fn dedicated(
        &self,
        block: Duration,
    ) -> Result<MultiplexedConnection, redis::RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(block + Duration::from_secs(5)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// `PING` with a short timeout: is the server reachable right now?
    pub async fn ping(&self) -> bool {
        let probe = async {
            let mut c = self.get().await?;
            redis::cmd("PING").query_async::<String>(&mut c).await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), probe).await,
            Ok(Ok(_))
        )
    }
}

/// Everything one settle writes, for one reserved batch.
#[derive(Debug, Default)]
pub struct Settlement {
    /// (due ms, envelope) pairs for the delayed set.
    pub retries: Vec<(u64, Vec<u8>)>,
    /// (id, entry) pairs for the dead-letter store.
    pub dead: Vec<(String, DeadLetter)>,
}

/// What a settle did.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// Applied; this many old dead letters were evicted by the cap.
    Applied { evicted: u64 },
    /// The processing list was gone: a reaper had returned the batch to the queue (this process
    /// was presumed dead), so nothing was applied and the batch will be delivered again.
    Reclaimed,
}

/// Counts of one queue, as `herald stats` and the depth gauges report them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub waiting: u64,
    pub processing: u64,
    pub delayed: u64,
    /// Delayed envelopes already due (about to be promoted).
    pub delayed_due: u64,
    pub failed: u64,
}

/// One queue: its keys and the Redis it lives on.
#[derive(Clone)]
pub struct Queue {
    pub keys: QueueKeys,
    pub redis: Redis,
    /// Cap on the dead-letter store (0 = none).
    pub failed_cap: usize,
}

impl Queue {
    pub fn new(redis: Redis, keys: QueueKeys, failed_cap: usize) -> Queue {
        Queue {
            keys,
            redis,
            failed_cap,
        }
    }

    /// Moves up to `max` envelopes into `processing`, oldest first. Empty when the queue is.
    /// If `processing` still holds a batch (an earlier reserve or wait whose reply was lost),
    /// returns that batch instead, so nothing reserved is ever settled unseen.
    pub async fn reserve<C: ConnectionLike>(
        &self,
        conn: &mut C,
        processing: &str,
        max: usize,
    ) -> Result<Vec<Bytes>, QueueError> {
        let mut items: Vec<Bytes> = scripts()
            .reserve
            .key(&self.keys.list)
            .key(processing)
            .arg(max)
            .invoke_async(conn)
            .await
            .map_err(QueueError::new(&self.keys, "reserve"))?;
        items.reverse();
        Ok(items)
    }

    /// Waits up to `timeout` for an envelope and moves it into `processing` (`BLMOVE`), so an
    /// event pushed into an idle queue is picked up at once. Needs a dedicated connection.
    pub async fn wait(
        &self,
        conn: &mut MultiplexedConnection,
        processing: &str,
        timeout: Duration,
    ) -> Result<Option<Bytes>, QueueError> {
        redis::cmd("BLMOVE")
            .arg(&self.keys.list)
            .arg(processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(timeout.as_secs_f64())
            .query_async(conn)
            .await
            .map_err(QueueError::new(&self.keys, "wait"))
    }

    /// Acknowledges the batch in `processing` together with its retries and dead letters, in
    /// one script. Idempotent: once applied the processing list is gone and a repeat is a no-op.
    pub async fn settle<C: ConnectionLike>(
        &self,
        conn: &mut C,
        processing: &str,
        s: &Settlement,
        now_ms: u64,
    ) -> Result<Settled, QueueError> {
        let mut inv = scripts().settle.prepare_invoke();
        inv.key(processing)
            .key(&self.keys.delayed)
            .key(&self.keys.failed)
            .key(&self.keys.failed_index)
            .arg(now_ms)
            .arg(self.failed_cap)
            .arg(s.retries.len());
        for (due, payload) in &s.retries {
            inv.arg(due).arg(payload.as_slice());
        }
        inv.arg(s.dead.len());
        for (id, entry) in &s.dead {
            inv.arg(id).arg(entry.to_json());
        }
        let r: i64 = inv
            .invoke_async(conn)
            .await
            .map_err(QueueError::new(&self.keys, "settle"))?;
        Ok(if r < 0 {
            Settled::Reclaimed
        } else {
            Settled::Applied { evicted: r as u64 }
        })
    }

    /// Returns the envelopes in `processing_lists` of a process that is gone (dead, or shutting
    /// down) to the head of the queue, in their order, and unregisters the lists. `crashed`
    /// counts a redelivery in each envelope (see requeue.lua).
    pub async fn requeue(
        &self,
        processing_lists: &[String],
        crashed: bool,
    ) -> Result<u64, QueueError> {
        self.requeue_script(processing_lists, crashed, true).await
    }

    /// Returns what a worker task's own list holds when the task (re)starts: a batch it was
    /// processing when it died, counted as an attempt. The list stays registered, so the task's
    /// next batch is visible to reapers from the first moment.
    pub async fn recover(&self, processing: &str) -> Result<u64, QueueError> {
        self.requeue_script(&[processing.to_string()], true, false)
            .await
    }

    async fn requeue_script(
        &self,
        processing_lists: &[String],
        crashed: bool,
        unregister: bool,
    ) -> Result<u64, QueueError> {
        if processing_lists.is_empty() {
            return Ok(0);
        }
        let mut conn = self
            .redis
            .get()
            .await
            .map_err(QueueError::new(&self.keys, "requeue"))?;
        let mut inv = scripts().requeue.prepare_invoke();
        inv.key(&self.keys.list).key(&self.keys.workers);
        for p in processing_lists {
            inv.key(p);
        }
        let flag = |b: bool| if b { "1" } else { "0" };
        inv.arg(flag(crashed))
            .arg(flag(unregister))
            .invoke_async(&mut conn)
            .await
            .map_err(QueueError::new(&self.keys, "requeue"))
    }

    /// Moves up to `limit` delayed envelopes that are due by `now_ms` onto the queue.
    pub async fn promote(&self, now_ms: u64, limit: usize) -> Result<u64, QueueError> {
        let mut conn = self
            .redis
            .get()
            .await
            .map_err(QueueError::new(&self.keys, "promote"))?;
        scripts()
            .promote
            .key(&self.keys.delayed)
            .key(&self.keys.list)
            .arg(now_ms)
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(QueueError::new(&self.keys, "promote"))
    }

    /// Pushes envelopes onto the queue (as a producer would, `LPUSH`), in order.
    pub async fn push<T: AsRef<[u8]>>(&self, envelopes: &[T]) -> Result<(), QueueError> {
        if envelopes.is_empty() {
            return Ok(());
        }
        let mut conn = self
            .redis
            .get()
            .await
            .map_err(QueueError::new(&self.keys, "push"))?;
        let mut pipe = redis::pipe();
        for chunk in envelopes.chunks(1000) {
            let mut cmd = redis::cmd("LPUSH");
            cmd.arg(&self.keys.list);
            for e in chunk {
                cmd.arg(e.as_ref());
            }
            pipe.add_command(cmd).ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(QueueError::new(&self.keys, "push"))
    }

    /// The processing lists registered for this queue, by any process.
    pub async fn processing_lists(&self) -> Result<Vec<String>, QueueError> {
        let mut conn = self
            .redis
            .get()
            .await
            .map_err(QueueError::new(&self.keys, "list processing"))?;
        redis::cmd("SMEMBERS")
            .arg(&self.keys.workers)
            .query_async(&mut conn)
            .await
            .map_err(QueueError::new(&self.keys, "list processing"))
    }

    /// Counts waiting, processing, delayed and failed envelopes.
    pub async fn stats(&self, now_ms: u64) -> Result<QueueStats, QueueError> {
        let lists = self.processing_lists().await?;
        let mut conn = self
            .redis
            .get()
            .await
            .map_err(QueueError::new(&self.keys, "stats"))?;
        let mut pipe = redis::pipe();
        pipe.llen(&self.keys.list)
            .zcard(&self.keys.delayed)
            .zcount(&self.keys.delayed, "-inf", now_ms)
            .zcard(&self.keys.failed_index);
        for l in &lists {
            pipe.llen(l);
        }
        let counts: Vec<u64> = pipe
            .query_async(&mut conn)
            .await
            .map_err(QueueError::new(&self.keys, "stats"))?;
        Ok(QueueStats {
            queue: self.keys.name.clone(),
            waiting: counts[0],
            delayed: counts[1],
            delayed_due: counts[2],
            failed: counts[3],
            processing: counts[4..].iter().sum(),
        })
    }

    /// The age of the oldest waiting envelope, from its `created_at`, when it has one.
    pub async fn oldest_waiting_age(&self, now_ms: u64) -> Result<Option<f64>, QueueError> {
        let mut conn = self
            .redis
            .get()
            .await
            .map_err(QueueError::new(&self.keys, "peek"))?;
        let head: Option<Bytes> = redis::cmd("LINDEX")
            .arg(&self.keys.list)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(QueueError::new(&self.keys, "peek"))?;
        #[derive(serde::Deserialize)]
        struct Created {
            created_at: Option<f64>,
        }
        Ok(head
            .and_then(|h| serde_json::from_slice::<Created>(&h).ok())
            .and_then(|c| c.created_at)
            .map(|t| (now_ms as f64 / 1000.0 - t).max(0.0)))
    }
}
