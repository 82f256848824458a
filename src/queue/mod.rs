//! Reserving, acknowledging, delaying and dead-lettering envelopes on Redis.
//!
//! Owns: every Redis key (see [`keys`]), the Lua scripts that move envelopes between them
//! (`lua/`), connections and the one way to send a request ([`redis`]), the blocking wait on an
//! idle queue, promotion of due retries, process heartbeats and the reaper ([`reaper`]), and the
//! dead-letter store behind `herald failed …` ([`failed`]). Does not own: decoding (`envelope`),
//! routing (`registry`), the retry decision (`settle`).
//!
//! **Invariant:** an envelope is always somewhere in Redis until it is settled: in the queue, a
//! processing list, the delayed set, a parked set ([`parked`]) or the dead-letter store. Every move is one Lua script (one
//! hash slot), never a read-then-write from Rust.

pub(crate) mod activity;
pub(crate) mod failed;
mod failed_scan;
pub(crate) mod keys;
mod parked;
pub(crate) mod reaper;
mod redis;
#[cfg(test)]
mod tests;

use std::time::Duration;

use ::redis::Script;
use ::redis::aio::ConnectionLike;
use bytes::Bytes;

pub use activity::Minute;
pub(crate) use activity::Tally;
pub use failed::{DeadLetter, FailedDelivery, Payload};
pub use failed_scan::{Cursor, Filter};
pub(crate) use keys::{GlobalKeys, QueueKeys};
pub(crate) use parked::Unpark;
pub(crate) use redis::{Conn, NO_QUEUE, Redis, Spread};

/// A Redis operation that failed, naming the queue and what herald was doing.
#[derive(Debug, thiserror::Error)]
#[error("queue {queue}: {op}: {source}")]
pub struct QueueError {
    /// The queue (list key before the prefix), or `*` for keys of no queue.
    pub queue: String,
    /// What herald was doing: `reserve`, `settle`, `heartbeat`, `failed retry`, …
    pub op: &'static str,
    /// Shown in the message, not chained as a source, so `{:#}` prints it once.
    pub source: ::redis::RedisError,
}

impl QueueError {
    fn new(keys: &QueueKeys, op: &'static str) -> impl FnOnce(::redis::RedisError) -> QueueError {
        let queue = keys.name.clone();
        move |source| QueueError { queue, op, source }
    }
}

/// The Lua scripts, loaded once per server by `EVALSHA` (redis-rs falls back to `SCRIPT LOAD`).
pub(crate) struct Scripts {
    pub(crate) reserve: Script,
    pub(crate) settle: Script,
    pub(crate) requeue: Script,
    pub(crate) promote: Script,
    pub(crate) retry_failed: Script,
    pub(crate) unpark: Script,
}

pub(crate) fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        reserve: Script::new(include_str!("lua/reserve.lua")),
        settle: Script::new(include_str!("lua/settle.lua")),
        requeue: Script::new(include_str!("lua/requeue.lua")),
        promote: Script::new(include_str!("lua/promote.lua")),
        retry_failed: Script::new(include_str!("lua/retry_failed.lua")),
        unpark: Script::new(include_str!("lua/unpark.lua")),
    })
}

/// Everything one settle writes, for one reserved batch.
#[derive(Debug, Default)]
pub(crate) struct Settlement {
    /// (due ms, envelope) pairs for the delayed set.
    pub(crate) retries: Vec<(u64, Vec<u8>)>,
    /// (circuit, age stamp ms, envelope) triples parked until their circuit closes.
    pub(crate) parked: Vec<(String, u64, Vec<u8>)>,
    /// (id, entry) pairs for the dead-letter store.
    pub(crate) dead: Vec<(String, DeadLetter)>,
    /// What this batch adds to its queue's activity of the minute.
    pub(crate) activity: Tally,
}

/// What a settle did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Applied; this many old dead letters were evicted by the cap.
    Applied { evicted: u64 },
    /// The processing list was gone: a reaper had returned the batch to the queue (this process
    /// was presumed dead), so nothing was applied and the batch will be delivered again.
    Reclaimed,
}

/// Counts of one queue, as `herald stats` and the depth gauges report them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// The queue (list key before the prefix).
    pub queue: String,
    /// Envelopes waiting in the list.
    pub waiting: u64,
    /// Envelopes reserved by a worker task and not settled yet.
    pub processing: u64,
    /// Retries (and delayed envelopes) waiting for their due time.
    pub delayed: u64,
    /// Delayed envelopes already due (about to be promoted).
    pub delayed_due: u64,
    /// Envelopes parked until a Pusher connection's open circuit closes.
    pub parked: u64,
    /// Dead letters.
    pub failed: u64,
}

/// One queue: its keys and the Redis it lives on.
#[derive(Clone)]
pub(crate) struct Queue {
    pub(crate) keys: QueueKeys,
    pub(crate) redis: Redis,
    /// Cap on the dead-letter store (0 = none).
    pub(crate) failed_cap: usize,
}

impl Queue {
    pub(crate) fn new(redis: Redis, keys: QueueKeys, failed_cap: usize) -> Queue {
        Queue {
            keys,
            redis,
            failed_cap,
        }
    }

    /// Sends `request` on a pooled connection; an error names this queue and `op`.
    pub(crate) async fn run<T: ::redis::FromRedisValue + Send>(
        &self,
        op: &'static str,
        request: &impl redis::Request,
    ) -> Result<T, QueueError> {
        self.redis.run(&self.keys.name, op, request).await
    }

    /// Moves up to `max` envelopes into `processing`, oldest first: envelopes parked for a
    /// circuit that closed again come before the list's. Empty when there is nothing.
    /// If `processing` still holds a batch (an earlier reserve or wait whose reply was lost),
    /// returns that batch instead, so nothing reserved is ever settled unseen. Runs on the
    /// task's own pooled connection, which it keeps between batches.
    pub(crate) async fn reserve<C: ConnectionLike>(
        &self,
        conn: &mut C,
        processing: &str,
        max: usize,
    ) -> Result<Vec<Bytes>, QueueError> {
        let mut items: Vec<Bytes> = scripts()
            .reserve
            .key(&self.keys.list)
            .key(processing)
            .key(self.keys.parked_ready())
            .key(self.keys.parked_index())
            .arg(max)
            .arg(self.keys.parked_prefix())
            .invoke_async(conn)
            .await
            .map_err(QueueError::new(&self.keys, "reserve"))?;
        items.reverse();
        Ok(items)
    }

    /// Waits up to `timeout` for an envelope and moves it into `processing` (`BLMOVE`), so an
    /// event pushed into an idle queue is picked up at once. Needs a dedicated connection.
    pub(crate) async fn wait(
        &self,
        conn: &mut (impl ConnectionLike + Send),
        processing: &str,
        timeout: Duration,
    ) -> Result<Option<Bytes>, QueueError> {
        ::redis::cmd("BLMOVE")
            .arg(&self.keys.list)
            .arg(processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(timeout.as_secs_f64())
            .query_async(conn)
            .await
            .map_err(QueueError::new(&self.keys, "wait"))
    }

    /// Acknowledges the batch in `processing` together with its retries, dead letters and
    /// activity counts, in one script. Idempotent: once applied the processing list is gone and
    /// a repeat is a no-op (and counts nothing).
    pub(crate) async fn settle<C: ConnectionLike>(
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
            .key(self.keys.activity(activity::minute_of(now_ms)))
            .key(self.keys.parked_index())
            .key(self.keys.parked_ready())
            .arg(self.failed_cap)
            .arg(self.keys.pusher_sent_prefix())
            .arg(self.keys.parked_prefix())
            .arg(s.retries.len());
        for (due, payload) in &s.retries {
            inv.arg(due).arg(payload.as_slice());
        }
        inv.arg(s.parked.len());
        for (circuit, age, payload) in &s.parked {
            inv.arg(circuit).arg(age).arg(payload.as_slice());
        }
        inv.arg(s.dead.len());
        for (id, entry) in &s.dead {
            inv.arg(id).arg(entry.to_json()).arg(entry.failed_at);
        }
        inv.arg(s.activity.settled);
        if s.activity.settled > 0 {
            let fields = s.activity.fields();
            inv.arg(activity::TTL.as_millis() as u64).arg(fields.len());
            for (field, n) in &fields {
                inv.arg(field).arg(n);
            }
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
    pub(crate) async fn requeue(
        &self,
        processing_lists: &[String],
        crashed: bool,
    ) -> Result<u64, QueueError> {
        self.requeue_script(processing_lists, crashed, true).await
    }

    /// Returns what a worker task's own list holds when the task (re)starts: a batch it was
    /// processing when it died, counted as an attempt. The list stays registered, so the task's
    /// next batch is visible to reapers from the first moment.
    pub(crate) async fn recover(&self, processing: &str) -> Result<u64, QueueError> {
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
        let mut inv = scripts().requeue.prepare_invoke();
        inv.key(&self.keys.list).key(&self.keys.workers);
        for p in processing_lists {
            inv.key(p);
        }
        let flag = |b: bool| if b { "1" } else { "0" };
        inv.arg(flag(crashed)).arg(flag(unregister));
        self.run("requeue", &inv).await
    }

    /// Moves up to `limit` delayed envelopes that are due by `now_ms` onto the queue.
    pub(crate) async fn promote(&self, now_ms: u64, limit: usize) -> Result<u64, QueueError> {
        let mut inv = scripts().promote.prepare_invoke();
        inv.key(&self.keys.delayed)
            .key(&self.keys.list)
            .arg(now_ms)
            .arg(limit);
        self.run("promote", &inv).await
    }

    /// Pushes envelopes onto the queue (as a producer would, `LPUSH`), in order.
    pub(crate) async fn push<T: AsRef<[u8]>>(&self, envelopes: &[T]) -> Result<(), QueueError> {
        if envelopes.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for chunk in envelopes.chunks(1000) {
            let mut cmd = ::redis::cmd("LPUSH");
            cmd.arg(&self.keys.list);
            for e in chunk {
                cmd.arg(e.as_ref());
            }
            pipe.add_command(cmd).ignore();
        }
        self.run("push", &pipe).await
    }

    /// The processing lists registered for this queue, by any process.
    pub(crate) async fn processing_lists(&self) -> Result<Vec<String>, QueueError> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(&self.keys.workers);
        self.run("list processing", &cmd).await
    }

    /// Counts waiting, processing, delayed, parked and failed envelopes.
    pub(crate) async fn stats(&self, now_ms: u64) -> Result<QueueStats, QueueError> {
        let lists = self.processing_lists().await?;
        let mut pipe = ::redis::pipe();
        pipe.llen(&self.keys.list)
            .zcard(&self.keys.delayed)
            .zcount(&self.keys.delayed, "-inf", now_ms)
            .zcard(&self.keys.failed_index);
        for l in &lists {
            pipe.llen(l);
        }
        let counts: Vec<u64> = self.run("stats", &pipe).await?;
        Ok(QueueStats {
            queue: self.keys.name.clone(),
            waiting: counts[0],
            delayed: counts[1],
            delayed_due: counts[2],
            failed: counts[3],
            processing: counts[4..].iter().sum(),
            parked: self.parked_count().await?,
        })
    }

    /// Reserved envelopes per process id, from the processing lists registered for this queue.
    pub(crate) async fn held_by_process(
        &self,
    ) -> Result<std::collections::BTreeMap<String, u64>, QueueError> {
        let lists = self.processing_lists().await?;
        let mut held = std::collections::BTreeMap::new();
        if lists.is_empty() {
            return Ok(held);
        }
        let mut pipe = ::redis::pipe();
        for l in &lists {
            pipe.llen(l);
        }
        let counts: Vec<u64> = self.run("processes", &pipe).await?;
        for (l, n) in lists.iter().zip(counts) {
            if let Some(p) = self.keys.process_of(l) {
                *held.entry(p.to_string()).or_default() += n;
            }
        }
        Ok(held)
    }

    /// Marks the queue paused, recording `by`; `false` when it already was.
    pub(crate) async fn pause(&self, by: &str) -> Result<bool, QueueError> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.keys.paused()).arg(by).arg("NX");
        let set: Option<String> = self.run("pause", &cmd).await?;
        Ok(set.is_some())
    }

    /// Clears the pause; `false` when the queue was not paused.
    pub(crate) async fn resume(&self) -> Result<bool, QueueError> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(self.keys.paused());
        let n: u64 = self.run("resume", &cmd).await?;
        Ok(n == 1)
    }

    /// Who paused the queue and when, while it is paused.
    pub(crate) async fn paused_by(&self) -> Result<Option<String>, QueueError> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(self.keys.paused());
        self.run("pause", &cmd).await
    }

    /// The age of the oldest waiting envelope, from its `created_at`, when it has one.
    pub(crate) async fn oldest_waiting_age(&self, now_ms: u64) -> Result<Option<f64>, QueueError> {
        let mut cmd = ::redis::cmd("LINDEX");
        cmd.arg(&self.keys.list).arg(-1);
        let head: Option<Bytes> = self.run("peek", &cmd).await?;
        Ok(head
            .and_then(|h| crate::envelope::created_at(&h))
            .map(|t| (now_ms as f64 / 1000.0 - t).max(0.0)))
    }
}
