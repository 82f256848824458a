//! The maintenance loop of a process: heartbeats, the reaper, promotion of due retries, the
//! return of envelopes parked for a circuit that closed, and the pause state, the depth gauges and the flush of Pusher request counts, each on its own
//! interval.
//!
//! Owns: when each of those runs and what is logged and counted when one fails. Does not own:
//! what they do in Redis (`queue::reaper`, `Queue::promote`, `Queue::stats`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::broadcast::pusher::activity::RequestLog;
use crate::broadcast::pusher::circuit::{self, State};
use crate::clock;
use crate::metrics::Metrics;
use crate::queue::{GlobalKeys, Queue, QueueError, Unpark, reaper};
use crate::worker::Pause;

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
    pub redis_ok: Arc<AtomicBool>,
    /// Pusher request counts, added to the fleet-wide ones on every heartbeat.
    pub requests: Vec<Arc<RequestLog>>,
    /// Each queue's pause state (same order as `queues`), refreshed on every promote tick.
    pub pauses: Vec<Arc<Pause>>,
}

impl Maintenance {
    /// Registers this process and its processing lists once.
    pub(crate) async fn heartbeat(&self) -> Result<(), QueueError> {
        let lists: Vec<(&Queue, Vec<String>)> = self
            .queues
            .iter()
            .zip(self.processing.iter().cloned())
            .collect();
        // The queues whose every task stopped for a pause: `herald stats` and the dashboard show
        // when a pause has taken hold.
        let paused: Vec<&str> = (self.queues.iter().zip(&self.pauses))
            .filter(|(_, p)| p.all_parked())
            .map(|(q, _)| q.keys.name.as_str())
            .collect();
        let r = reaper::heartbeat(
            &self.queues[0].redis,
            &self.global,
            &self.info,
            &paused.join(","),
            &lists,
            clock::now_ms(),
            self.process_timeout * 2,
        )
        .await;
        self.redis_ok.store(r.is_ok(), Ordering::Relaxed);
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
                _ = token.cancelled() => {
                    self.flush_requests().await;
                    return;
                }
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
        self.flush_requests().await;
    }

    async fn flush_requests(&self) {
        for log in &self.requests {
            if let Err(e) = log.flush(&self.queues[0].redis, &self.global).await {
                self.metrics.redis_error("pusher activity");
                tracing::debug!(message = "Could not add Pusher request counts.", error = %e);
            }
        }
    }

    async fn promote(&self) {
        for (q, pause) in self.queues.iter().zip(&self.pauses) {
            match q.paused_by().await {
                Ok(by) => pause.set(by.is_some()),
                Err(e) => {
                    self.metrics.redis_error("pause");
                    tracing::debug!(message = "Could not read the pause state.", queue = %q.keys.name, error = %e.source);
                }
            }
            self.unpark(q).await;
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

    /// Lets envelopes parked for circuits that let requests through again come back: all of a
    /// closed circuit's (handed out by reserve), one to carry a half-open circuit's probe.
    async fn unpark(&self, q: &Queue) {
        let circuits = match q.parked_circuits().await {
            Ok(c) => c,
            Err(e) => {
                self.metrics.redis_error("parked");
                tracing::debug!(message = "Could not list parked circuits.", queue = %q.keys.name, error = %e.source);
                return;
            }
        };
        let states = match circuit::states(&q.redis, &self.global, &circuits, clock::now_ms()).await
        {
            Ok(s) => s,
            Err(e) => {
                self.metrics.redis_error("circuit");
                tracing::debug!(message = "Could not read the parked circuits.", queue = %q.keys.name, error = %e.source);
                return;
            }
        };
        for (c, state) in circuits.iter().zip(states) {
            let how = match state {
                State::Closed => Unpark::Closed,
                State::HalfOpen => Unpark::Probe,
                State::Open => continue,
            };
            if let Err(e) = q.unpark(c, how).await {
                self.metrics.redis_error("unpark");
                tracing::error!(message = "Unparking envelopes failed.", queue = %q.keys.name, connection = %c, error = %e.source);
            }
        }
    }
}
