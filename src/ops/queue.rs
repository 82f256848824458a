//! One queue: its counts, its activity over the last minutes, pausing it, pushing onto it.
//!
//! Owns: [`QueueOps`] (the dead-letter actions on it are in `dead_letters`) and the views the
//! dashboard draws from the activity counters ([`QueueActivity`]). Does not own: the counters'
//! layout (`queue::activity`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Actor, OpsError, log_action};
use crate::clock;
use crate::queue::activity::{add_buckets, quantile};
use crate::queue::{Minute, Queue, QueueError, QueueStats};

/// The operations on one queue.
pub struct QueueOps {
    pub(super) queue: Queue,
}

/// A queue at a glance: its counts, whether it is paused, how old its oldest waiting envelope is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueOverview {
    /// Waiting, processing, delayed (and due), parked, failed.
    #[serde(flatten)]
    pub stats: QueueStats,
    /// Delayed envelopes not due yet (`delayed - delayed_due`).
    pub delayed_later: u64,
    /// Seconds since the oldest waiting envelope's `created_at`, when it has one.
    pub oldest_waiting_age_s: Option<f64>,
    /// Who paused it and when, while it is paused.
    pub paused: Option<String>,
}

/// Event age of one delivery over a window: p50 and p99 from the fleet's histograms.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryAge {
    /// `broadcast:<connection>` or `listener:<name>`.
    pub delivery: String,
    /// Successful deliveries in the window.
    pub delivered: u64,
    /// Median age in seconds (created → delivered).
    pub p50_s: Option<f64>,
    /// 99th percentile age in seconds.
    pub p99_s: Option<f64>,
    /// Per minute (same order as [`QueueActivity::minutes`]): p50 and p99, `None` when nothing
    /// was delivered that minute.
    pub per_minute: Vec<(Option<f64>, Option<f64>)>,
}

/// What every replica did with one queue over the last minutes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueActivity {
    /// The queue.
    pub queue: String,
    /// Oldest first, the current (partial) minute last.
    pub minutes: Vec<Minute>,
    /// Event age per delivery over the whole window.
    pub ages: Vec<DeliveryAge>,
}

impl QueueActivity {
    fn of(queue: &str, minutes: Vec<Minute>) -> QueueActivity {
        let mut whole: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for m in &minutes {
            for (d, b) in &m.ages {
                add_buckets(whole.entry(d).or_default(), b);
            }
        }
        let ages = whole
            .into_iter()
            .map(|(d, b)| DeliveryAge {
                delivery: d.to_string(),
                delivered: b.iter().sum(),
                p50_s: quantile(&b, 0.5),
                p99_s: quantile(&b, 0.99),
                per_minute: minutes
                    .iter()
                    .map(|m| match m.ages.get(d) {
                        Some(b) => (quantile(b, 0.5), quantile(b, 0.99)),
                        None => (None, None),
                    })
                    .collect(),
            })
            .collect();
        QueueActivity {
            queue: queue.to_string(),
            minutes,
            ages,
        }
    }
}

impl QueueOps {
    pub(super) fn new(queue: Queue) -> QueueOps {
        QueueOps { queue }
    }

    pub(super) fn into_queue(self) -> Queue {
        self.queue
    }

    /// The queue's name (list key before the prefix).
    pub fn name(&self) -> &str {
        &self.queue.keys.name
    }

    /// The list key producers push onto (prefix applied).
    pub fn list_key(&self) -> &str {
        &self.queue.keys.list
    }

    /// Waiting, processing, delayed, parked and failed counts.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.queue.stats(clock::now_ms()).await
    }

    /// Counts, pause state and the oldest waiting envelope's age.
    pub async fn overview(&self) -> Result<QueueOverview, QueueError> {
        let now = clock::now_ms();
        let stats = self.queue.stats(now).await?;
        Ok(QueueOverview {
            delayed_later: stats.delayed.saturating_sub(stats.delayed_due),
            stats,
            oldest_waiting_age_s: self.queue.oldest_waiting_age(now).await?,
            paused: self.queue.paused_by().await?,
        })
    }

    /// The last `minutes` minutes (at most a day) of activity, every replica counted.
    pub async fn activity(&self, minutes: u64) -> Result<QueueActivity, QueueError> {
        let minutes = self
            .queue
            .activity(clock::now_ms(), minutes.clamp(1, 1440))
            .await?;
        Ok(QueueActivity::of(self.name(), minutes))
    }

    /// Reserved envelopes per process id (the processing lists registered for this queue).
    pub(super) async fn held_by_process(&self) -> Result<BTreeMap<String, u64>, QueueError> {
        self.queue.held_by_process().await
    }

    /// Stops every replica from reserving from this queue (within a heartbeat); what is in
    /// flight finishes. `false` when it was paused already.
    pub async fn pause(&self, actor: &Actor) -> Result<bool, OpsError> {
        let by = format!("{} ({}) at {}", actor.who, actor.via, clock::now_ms());
        let done = self.queue.pause(&by).await?;
        let outcome = if done { "paused" } else { "already paused" };
        log_action(actor, "pause", self.name(), "queue", outcome);
        Ok(done)
    }

    /// Lets workers reserve from this queue again. `false` when it was not paused.
    pub async fn resume(&self, actor: &Actor) -> Result<bool, OpsError> {
        let done = self.queue.resume().await?;
        let outcome = if done { "resumed" } else { "was not paused" };
        log_action(actor, "resume", self.name(), "queue", outcome);
        Ok(done)
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
}
