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
//! Owns: [`process`], the one function that tells the whole story of a batch (a reviewer checks
//! "nothing lost" here), the task loop around it, and the maintenance loop (heartbeat, reaper,
//! promotion of due retries, depth gauges). Does not own: any decision (`registry`, `settle`) or
//! Redis layout (`queue`).
//!
//! **Invariant:** shutdown is checked only between batches. A batch that started is processed
//! and settled; if `shutdown_timeout` runs out first the task is aborted and `lib::run` returns
//! its processing list to the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::broadcast::{Broadcaster, Message};
use crate::clock::{self, Clock};
use crate::delivery::{DeliveryId, DeliveryResult};
use crate::envelope::{self, Envelope, Limits};
use crate::listeners::{self, Event, Listener};
use crate::metrics::{DeliveryMetrics, Metrics};
use crate::queue::{GlobalKeys, Queue, Settled, Settlement, reaper};
use crate::registry::{Plan, Registry};
use crate::settle::{self, Decision};

/// State shared by every worker task of a process.
pub(crate) struct Shared {
    /// Routes envelopes to deliveries.
    pub registry: Registry,
    /// Listener implementations, indexed like `registry.listener_names()`.
    pub listeners: Vec<Arc<dyn Listener>>,
    /// Broadcast connections, indexed like `registry.connection_names()`.
    pub broadcasters: Vec<Arc<Broadcaster>>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// Per-delivery metrics, indexed like `listeners` and `broadcasters`.
    pub listener_metrics: Vec<DeliveryMetrics>,
    pub connection_metrics: Vec<DeliveryMetrics>,
    pub batch_size: usize,
    pub block_timeout: Duration,
}

impl Shared {
    /// The metrics of a delivery, by its id.
    fn delivery_metrics(&self, id: &DeliveryId) -> Option<&DeliveryMetrics> {
        let (names, metrics) = match id {
            DeliveryId::Listener(_) => (self.registry.listener_names(), &self.listener_metrics),
            DeliveryId::Broadcast(_) => {
                (self.registry.connection_names(), &self.connection_metrics)
            }
        };
        names
            .iter()
            .position(|n| n == id.name())
            .map(|i| &metrics[i])
    }
}

/// One envelope that decoded and routed, with the outcomes of its deliveries.
struct Routed {
    env: Envelope,
    plan: Plan,
    /// Seconds since the epoch when this attempt started; the age origin without `created_at`.
    seen: f64,
    results: Vec<(DeliveryId, DeliveryResult)>,
}

/// Processes one reserved batch and says how to settle it. Never fails: bad input becomes a
/// dead letter, failed deliveries become retries or dead letters.
pub(crate) async fn process(shared: &Shared, queue: &str, batch: Vec<Bytes>) -> Settlement {
    let clock = Clock::now();
    let seen = clock.now_ms as f64 / 1000.0;
    let mut settlement = Settlement::default();

    // 1. Decode and route.
    let mut routed: Vec<Routed> = Vec::with_capacity(batch.len());
    for raw in batch {
        let env = match envelope::decode(raw.clone(), &shared.limits) {
            Ok(env) => env,
            Err(why) => {
                reject(
                    shared,
                    queue,
                    &mut settlement,
                    settle::rejected(queue, &raw, None, &why, clock),
                );
                continue;
            }
        };
        let plan = match shared.registry.plan(&env) {
            Ok(plan) => plan,
            Err(why) => {
                let dead = settle::rejected(queue, &raw, Some(&env), &why, clock);
                reject(shared, queue, &mut settlement, dead);
                continue;
            }
        };
        if env.attempts >= settle::max_attempts(&env, &plan.retry) {
            let deliveries = plan
                .deliveries(
                    shared.registry.listener_names(),
                    shared.registry.connection_names(),
                )
                .collect();
            let d = settle::poisoned(queue, &env, deliveries, &plan.retry, clock);
            record(shared, queue, &env, &plan, &[], d, &mut settlement);
            continue;
        }
        routed.push(Routed {
            env,
            plan,
            seen,
            results: Vec::new(),
        });
    }

    // 2. Deliver: every listener call and one send per broadcast connection, all concurrently.
    let listener_calls = routed.iter().enumerate().flat_map(|(i, r)| {
        r.plan.listeners.iter().map(move |&l| async move {
            let event = Event {
                id: &r.env.id,
                queue,
                event: &r.env.event,
                channels: &r.plan.channels,
                data: &r.env.data,
                socket: r.env.socket.as_deref(),
                attempt: r.env.attempts + 1,
                envelope: &r.env,
            };
            let start = Instant::now();
            let result = listeners::run(shared.listeners[l].as_ref(), &event).await;
            let id = DeliveryId::Listener(shared.registry.listener_names()[l].clone());
            (i, l, id, result, start.elapsed())
        })
    });
    let broadcasts = (0..shared.broadcasters.len()).filter_map(|c| {
        let (members, messages): (Vec<usize>, Vec<Message>) = routed
            .iter()
            .enumerate()
            .filter(|(_, r)| r.plan.connections.contains(&c))
            .map(|(i, r)| {
                let m = Message {
                    id: &r.env.id,
                    name: &r.plan.name,
                    channels: &r.plan.channels,
                    data: &r.env.data,
                    socket: r.env.socket.as_deref(),
                    final_payload: r.env.final_payload,
                };
                (i, m)
            })
            .unzip();
        if members.is_empty() {
            return None;
        }
        Some(async move {
            let start = Instant::now();
            let results = shared.broadcasters[c].send(&messages).await;
            (c, members, results, start.elapsed())
        })
    });
    let (listened, broadcast) = futures::join!(join_all(listener_calls), join_all(broadcasts));

    for (i, l, id, result, took) in listened {
        observe(&shared.listener_metrics[l], &routed[i], &result, took);
        routed[i].results.push((id, result));
    }
    for (c, members, mut results, took) in broadcast {
        let name = &shared.registry.connection_names()[c];
        // One outcome per message is the driver contract; a missing one must not read as success.
        results.resize_with(members.len(), || {
            Err(crate::delivery::DeliveryError::Custom {
                message: format!("broadcaster {name} reported no outcome"),
                retryable: true,
            })
        });
        for (i, result) in members.into_iter().zip(results) {
            observe(&shared.connection_metrics[c], &routed[i], &result, took);
            routed[i]
                .results
                .push((DeliveryId::Broadcast(name.clone()), result));
        }
    }

    // 3. Decide, on a clock read after the deliveries: a `Retry-After` counts from when the
    // answer came, not from when the batch started.
    let clock = Clock::now();
    for r in routed {
        let d = settle::decide(queue, &r.env, &r.results, &r.plan.retry, clock);
        record(
            shared,
            queue,
            &r.env,
            &r.plan,
            &r.results,
            d,
            &mut settlement,
        );
    }
    settlement
}

fn observe(m: &DeliveryMetrics, r: &Routed, result: &DeliveryResult, took: Duration) {
    m.took(took.as_secs_f64());
    if result.is_ok() {
        let now = clock::now_secs();
        m.ok(now - r.env.created_at.unwrap_or(r.seen));
    }
}

/// Adds a rejected envelope's dead letter to the settlement, with its log line and metric.
fn reject(
    shared: &Shared,
    queue: &str,
    settlement: &mut Settlement,
    (id, dead): (String, crate::queue::DeadLetter),
) {
    tracing::warn!(
        message = "Envelope rejected; dead-lettered.",
        envelope_id = %id,
        queue = %queue,
        event = dead.event.as_deref().unwrap_or("-"),
        code = %dead.code,
        reason = %dead.reason,
    );
    shared.metrics.dead_lettered(&dead.code);
    shared.metrics.processed(queue, None);
    settlement.dead.push((id, dead));
}

/// Adds a decision to the settlement, with one log line per retry and per dead letter.
fn record(
    shared: &Shared,
    queue: &str,
    env: &Envelope,
    plan: &Plan,
    results: &[(DeliveryId, DeliveryResult)],
    d: Decision,
    settlement: &mut Settlement,
) {
    let known = plan.known.then_some(env.event.as_str());
    shared.metrics.processed(queue, known);
    for (id, result) in results {
        if let Err(e) = result {
            let retried = d.retry.as_ref().is_some_and(|r| r.pending.contains(id));
            if let Some(m) = shared.delivery_metrics(id) {
                m.failed(retried);
            }
            if retried {
                let r = d.retry.as_ref().expect("checked");
                if matches!(e, crate::delivery::DeliveryError::Deferred { .. }) {
                    // Parked while a circuit is open: expected, counted, not worth a line each.
                    tracing::debug!(
                        message = "Delivery deferred; the connection's circuit is open.",
                        envelope_id = %env.id,
                        queue = %queue,
                        delivery = %id,
                        retry_in_ms = r.delay.as_millis() as u64,
                    );
                } else {
                    tracing::warn!(
                        message = "Delivery failed; will retry.",
                        envelope_id = %env.id,
                        queue = %queue,
                        event = %env.event,
                        delivery = %id,
                        attempt = r.attempts,
                        retry_in_ms = r.delay.as_millis() as u64,
                        code = e.code(),
                        error = %e,
                    );
                }
            }
        }
    }
    if let Some(r) = d.retry {
        settlement.retries.push((r.due_ms, r.payload));
    }
    if let Some((id, dead)) = d.dead {
        tracing::warn!(
            message = "Dead-lettered.",
            envelope_id = %id,
            queue = %queue,
            event = %env.event,
            deliveries = %dead.deliveries.iter().map(|d| d.delivery.as_str()).collect::<Vec<_>>().join(","),
            attempt = dead.attempts,
            code = %dead.code,
            reason = %dead.reason,
        );
        shared.metrics.dead_lettered(&dead.code);
        settlement.dead.push((id, dead));
    }
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
/// cancelled.
pub(crate) async fn run_task(
    shared: Arc<Shared>,
    queue: Queue,
    processing: String,
    token: CancellationToken,
) {
    let name = queue.keys.name.clone();
    let metrics = shared.metrics.clone();
    let mut pooled: Option<deadpool_redis::Connection> = None;
    let mut blocking: Option<redis::aio::MultiplexedConnection> = None;
    let mut backoff = reconnect_backoff();
    // A task restarted after a panic may find the batch it was working on: that attempt died.
    if let Err(e) = queue.recover(&processing).await {
        tracing::warn!(message = "Could not check the processing list at start.", queue = %name, error = %e);
    }

    while !token.is_cancelled() {
        let step: Result<(), crate::queue::QueueError> =
            async {
                if pooled.is_none() {
                    pooled = Some(queue.redis.get().await.map_err(|source| {
                        crate::queue::QueueError {
                            queue: name.clone(),
                            op: "connect",
                            source,
                        }
                    })?);
                }
                let conn = pooled.as_mut().expect("just set");
                let mut batch = queue.reserve(conn, &processing, shared.batch_size).await?;
                if batch.is_empty() {
                    if blocking.is_none() {
                        blocking =
                            Some(queue.redis.dedicated(shared.block_timeout).await.map_err(
                                |source| crate::queue::QueueError {
                                    queue: name.clone(),
                                    op: "connect",
                                    source,
                                },
                            )?);
                    }
                    let waiter = blocking.as_mut().expect("just set");
                    let first = tokio::select! {
                        // Dropping a BLMOVE in flight is safe: whatever it moved is in our
                        // processing list, which shutdown returns to the queue.
                        _ = token.cancelled() => return Ok(()),
                        r = queue.wait(waiter, &processing, shared.block_timeout) => r?,
                    };
                    let Some(first) = first else { return Ok(()) };
                    // Process the envelope that woke us at once: asking for more would cost a
                    // round trip on every pickup from an idle queue; under load, the next
                    // iteration reserves a full batch anyway.
                    batch.push(first);
                }
                let n = batch.len();
                metrics.received(&name, n);
                metrics.inflight(&name, n as i64);
                let settlement = process(&shared, &name, batch).await;
                settle_until_done(&queue, conn, &processing, &settlement, &metrics).await;
                metrics.inflight(&name, -(n as i64));
                Ok(())
            }
            .await;
        match step {
            Ok(()) => backoff = reconnect_backoff(),
            Err(e) => {
                metrics.redis_error(e.op);
                tracing::error!(message = "Redis operation failed; retrying.", queue = %name, op = e.op, error = %e.source);
                pooled = None;
                blocking = None;
                let pause = backoff.next().unwrap_or(Duration::from_secs(5));
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Settles a batch, retrying while Redis is unreachable. Giving up is never right: the batch's
/// outcome exists only in memory until this succeeds. (If the process dies meanwhile, the reaper
/// redelivers the batch; settle.lua is idempotent, so a retry after a lost reply is harmless.)
async fn settle_until_done(
    queue: &Queue,
    conn: &mut deadpool_redis::Connection,
    processing: &str,
    settlement: &Settlement,
    metrics: &Metrics,
) {
    let mut backoff = reconnect_backoff();
    let mut fresh: Option<deadpool_redis::Connection> = None;
    loop {
        let c = fresh.as_mut().unwrap_or(&mut *conn);
        match queue
            .settle(c, processing, settlement, clock::now_ms())
            .await
        {
            Ok(Settled::Applied { evicted }) => {
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
                fresh = queue.redis.get().await.ok();
            }
        }
    }
}

/// Everything the maintenance loop needs.
pub(crate) struct Maintenance {
    pub info: reaper::ProcessInfo,
    pub global: GlobalKeys,
    pub queues: Vec<Queue>,
    /// Processing lists of this process, per queue (same order as `queues`).
    pub processing: Vec<Vec<String>>,
    pub heartbeat_interval: Duration,
    pub process_timeout: Duration,
    pub promote_interval: Duration,
    pub metrics: Arc<Metrics>,
    /// Set after each heartbeat attempt: whether Redis answered.
    pub redis_ok: Arc<std::sync::atomic::AtomicBool>,
}

impl Maintenance {
    /// Registers this process and its processing lists once.
    pub(crate) async fn heartbeat(&self) -> Result<(), crate::queue::QueueError> {
        let lists: Vec<(&Queue, Vec<String>)> = self
            .queues
            .iter()
            .zip(self.processing.iter().cloned())
            .collect();
        let r = reaper::heartbeat(
            &self.queues[0].redis,
            &self.global,
            &self.info,
            &lists,
            clock::now_ms(),
            self.process_timeout * 2,
        )
        .await;
        self.redis_ok
            .store(r.is_ok(), std::sync::atomic::Ordering::Relaxed);
        self.metrics.set_redis_up(r.is_ok());
        r
    }

    /// Heartbeats, reaps, promotes and samples depths until `token` is cancelled.
    pub(crate) async fn run(self, token: CancellationToken) {
        let mut beat = tokio::time::interval(self.heartbeat_interval);
        let mut promote = tokio::time::interval(self.promote_interval);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        promote.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = beat.tick() => self.beat().await,
                _ = promote.tick() => self.promote().await,
            }
        }
    }

    async fn beat(&self) {
        if let Err(e) = self.heartbeat().await {
            self.metrics.redis_error("heartbeat");
            tracing::error!(message = "Heartbeat failed.", error = %e);
            return;
        }
        let redis = &self.queues[0].redis;
        match reaper::reap(
            redis,
            &self.global,
            &self.queues,
            self.process_timeout,
            clock::now_ms(),
        )
        .await
        {
            Ok(r) => {
                for (queue, n) in &r.returned {
                    self.metrics.redelivered(queue, *n);
                    tracing::warn!(
                        message = "Returned the work of dead processes to the queue.",
                        queue = %queue,
                        envelopes = n,
                        processes = %r.processes.join(","),
                    );
                }
            }
            Err(e) => {
                self.metrics.redis_error("reap");
                tracing::error!(message = "Reaper failed.", error = %e);
            }
        }
        let now = clock::now_ms();
        for q in &self.queues {
            if let Ok(s) = q.stats(now).await {
                self.metrics.set_depth(&s);
            }
            if let Ok(age) = q.oldest_waiting_age(now).await {
                self.metrics
                    .set_oldest_waiting(&q.keys.name, age.unwrap_or(0.0));
            }
        }
        if let Ok(live) = reaper::count_live(redis, &self.global, self.process_timeout, now).await {
            self.metrics.set_live_processes(live);
        }
    }

    async fn promote(&self) {
        for q in &self.queues {
            loop {
                match q.promote(clock::now_ms(), 1000).await {
                    Ok(1000) => continue,
                    Ok(_) => break,
                    Err(e) => {
                        self.metrics.redis_error("promote");
                        tracing::error!(message = "Promoting due retries failed.", queue = %q.keys.name, error = %e.source);
                        break;
                    }
                }
            }
        }
    }
}
