//! Worker tasks: the loop that moves envelopes through every stage, and the maintenance loop.
//!
//! ```text
//!        ┌──────────────────────── until shutdown ───────────────────────┐
//!        ▼                                                               │
//!   reserve batch ──empty──▶ BLMOVE (≤ block_timeout, own connection) ───┤
//!        │                                                               │
//!        ▼                                                               │
//!   process: decode → plan → deliver (listeners ∥ broadcasters) → decide │
//!        │                                                               │
//!        ▼                                                               │
//!   settle (one script; retried until Redis takes it) ───────────────────┘
//! ```
//!
//! Owns: the task loop ([`run_task`]) around [`process`] (one batch's story, in `process.rs`),
//! the delivery table (`table.rs`), and the maintenance loop (`maintenance.rs`: heartbeat,
//! reaper, promotion of due retries, depth gauges). Does not own: any decision (`registry`,
//! `settle`) or Redis layout (`queue`).
//!
//! **Invariant:** shutdown is checked only between batches. A batch that started is processed
//! and settled; if `shutdown_timeout` runs out first the task is aborted and the drain returns
//! its processing list to the queue.

mod maintenance;
mod pause;
mod process;
mod table;

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::envelope::Limits;
use crate::metrics::Metrics;
use crate::queue::{Conn, Queue, QueueError, Settled, Settlement};
use crate::registry::Registry;

pub(crate) use maintenance::Maintenance;
pub(crate) use pause::Pause;
pub(crate) use process::process;
pub(crate) use table::Table;

/// State shared by every worker task of a process.
pub(crate) struct Shared {
    /// Routes envelopes to deliveries of `table`.
    pub(crate) registry: Registry,
    /// Every listener and connection, with its id and metrics.
    pub(crate) table: Table,
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) batch_size: usize,
    pub(crate) block_timeout: Duration,
}

/// Delays between attempts to reach Redis again after an error: 50 ms doubling to 5 s.
fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs one worker task on `queue`, owning the processing list `processing`, until `token` is
/// cancelled; while `pause` says the queue is paused, it waits instead. Redis errors are logged,
/// counted and retried after a backoff; they never end it.
pub(crate) async fn run_task(
    shared: Arc<Shared>,
    queue: Queue,
    processing: String,
    pause: Arc<Pause>,
    token: CancellationToken,
) {
    let mut task = Task {
        shared,
        queue,
        processing,
        pause,
        pooled: None,
        blocking: None,
    };
    // A task restarted after a panic may find the batch it was working on: that attempt died.
    if let Err(e) = task.queue.recover(&task.processing).await {
        tracing::warn!(message = "Could not check the processing list at start.", queue = %task.queue.keys.name, error = %e);
    }
    let mut backoff = reconnect_backoff();
    while !token.is_cancelled() {
        if task.pause.is_paused() {
            task.pause.park(&token).await;
            continue;
        }
        match task.round(&token).await {
            Ok(()) => backoff = reconnect_backoff(),
            Err(e) => {
                task.lost_redis(&e);
                let pause = backoff.next().unwrap_or(Duration::from_secs(5));
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// One worker task: its queue, its processing list, and its two connections (a pooled one for
/// scripts, a dedicated one for the blocking wait).
struct Task {
    shared: Arc<Shared>,
    queue: Queue,
    processing: String,
    pause: Arc<Pause>,
    pooled: Option<Conn>,
    blocking: Option<Conn>,
}

impl Task {
    /// One round: a batch reserved (or waited for), processed and settled.
    async fn round(&mut self, token: &CancellationToken) -> Result<(), QueueError> {
        let Some(batch) = self.next_batch(token).await? else {
            return Ok(());
        };
        let (name, metrics) = (&self.queue.keys.name, &self.shared.metrics);
        let n = batch.len();
        metrics.received(name, n);
        metrics.inflight(name, n as i64);
        let settlement = process(&self.shared, name, batch).await;
        let conn = self.pooled.as_mut().expect("next_batch connected it");
        settle_until_done(&self.queue, conn, &self.processing, &settlement, metrics).await;
        metrics.inflight(name, -(n as i64));
        Ok(())
    }

    /// Up to `batch_size` envelopes; when the queue is empty, the first one pushed within
    /// `block_timeout`. `None` when nothing came or shutdown began.
    async fn next_batch(
        &mut self,
        token: &CancellationToken,
    ) -> Result<Option<Vec<bytes::Bytes>>, QueueError> {
        let conn = match &mut self.pooled {
            Some(c) => c,
            None => self.pooled.insert(
                self.queue
                    .redis
                    .for_task()
                    .await
                    .map_err(self.connect_error())?,
            ),
        };
        let batch = self
            .queue
            .reserve(conn, &self.processing, self.shared.batch_size)
            .await?;
        if !batch.is_empty() {
            replicated(&self.queue, conn, &self.shared.metrics).await?;
            return Ok(Some(batch));
        }
        let block = self.shared.block_timeout;
        let waiter = match &mut self.blocking {
            Some(c) => c,
            None => self.blocking.insert(
                self.queue
                    .redis
                    .dedicated(block)
                    .await
                    .map_err(self.connect_error())?,
            ),
        };
        let first = tokio::select! {
            // Dropping a BLMOVE in flight is safe: whatever it moved is in our processing list,
            // which shutdown returns to the queue.
            _ = token.cancelled() => return Ok(None),
            r = self.queue.wait(waiter, &self.processing, block) => r?,
        };
        if first.is_some() {
            replicated(&self.queue, waiter, &self.shared.metrics).await?;
        }
        // Process the envelope that woke us at once: asking for more would cost a round trip on
        // every pickup from an idle queue; under load, the next round reserves a full batch.
        Ok(first.map(|e| vec![e]))
    }

    fn connect_error(&self) -> impl FnOnce(redis::RedisError) -> QueueError {
        let queue = self.queue.keys.name.clone();
        move |source| QueueError {
            queue,
            op: "connect",
            source,
        }
    }

    /// After a Redis error: count it, log it, and reconnect both connections next round.
    fn lost_redis(&mut self, e: &QueueError) {
        self.shared.metrics.redis_error(e.op);
        tracing::error!(message = "Redis operation failed; retrying.", queue = %self.queue.keys.name, op = e.op, error = %e.source);
        self.pooled = None;
        self.blocking = None;
    }
}

/// With `[redis] wait_replicas` set, waits until that many replicas hold what `conn` just
/// moved; a wait that ends short is logged and counted, and the worker carries on (a lost
/// replica must not stop the queue).
async fn replicated(queue: &Queue, conn: &mut Conn, metrics: &Metrics) -> Result<(), QueueError> {
    let short = queue
        .redis
        .replicated(conn, &queue.keys.list)
        .await
        .map_err(|source| QueueError {
            queue: queue.keys.name.clone(),
            op: "wait replicas",
            source,
        })?;
    if let Some(acked) = short {
        metrics.redis_wait_short(&queue.keys.name);
        tracing::warn!(message = "Fewer replicas than redis.wait_replicas acknowledged a move; a failover now could undo it.", queue = %queue.keys.name, acked);
    }
    Ok(())
}

/// Settles a batch, retrying while Redis is unreachable. Giving up is never right: the batch's
/// outcome exists only in memory until this succeeds. (If the process dies meanwhile, the reaper
/// redelivers the batch; settle.lua is idempotent, so a retry after a lost reply is harmless.)
async fn settle_until_done(
    queue: &Queue,
    conn: &mut Conn,
    processing: &str,
    settlement: &Settlement,
    metrics: &Metrics,
) {
    let mut backoff = reconnect_backoff();
    let mut fresh: Option<Conn> = None;
    loop {
        let c = fresh.as_mut().unwrap_or(&mut *conn);
        match queue
            .settle(c, processing, settlement, clock::now_ms())
            .await
        {
            Ok(Settled::Applied { evicted }) => {
                if let Err(e) = replicated(queue, c, metrics).await {
                    metrics.redis_error(e.op);
                    tracing::warn!(message = "Settled, but could not wait for replicas.", queue = %queue.keys.name, error = %e.source);
                }
                if evicted > 0 {
                    metrics.evicted(&queue.keys.name, evicted);
                    tracing::warn!(message = "Dead-letter store full; evicted the oldest.", queue = %queue.keys.name, evicted);
                }
                return;
            }
            Ok(Settled::Reclaimed) => {
                metrics.reclaimed(&queue.keys.name);
                tracing::warn!(
                    message = "Batch was returned to the queue by a reaper (this process was presumed dead); it will be redelivered.",
                    queue = %queue.keys.name,
                );
                return;
            }
            Err(e) => {
                metrics.redis_error("settle");
                tracing::error!(message = "Settle failed; retrying.", queue = %queue.keys.name, error = %e.source);
                tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(5))).await;
                fresh = queue.redis.for_task().await.ok();
            }
        }
    }
}
