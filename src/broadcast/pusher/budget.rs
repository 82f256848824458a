//! Shared budgets: a token bucket per Pusher connection (`rate_per_second`, `rate_burst`) and an
//! optional `daily_quota` of messages, held in Redis and shared by every replica.
//!
//! Owns: taking a send's cost (one message per channel of every unit, as Pusher counts) in one
//! script (`lua/budget.lua`) before any request, the deferral when the budget is spent (a
//! retryable `Deferred`: no attempt used, the envelope waits in the delayed set), and the gauge
//! `herald_pusher_budget_tokens{connection}`. Does not own: retry timing (`settle`) or the
//! server's own 429 (`Retry-After` is honoured by the outcome of the request).
//!
//! If Redis cannot be asked, the send goes ahead (the server's own limit still applies): a
//! budget never loses an event.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::Script;

use crate::delivery::DeliveryError;
use crate::metrics::Metrics;
use crate::queue::{GlobalKeys, Redis};

const DAY_MS: u64 = 24 * 3600 * 1000;

fn script() -> &'static Script {
    static S: OnceLock<Script> = OnceLock::new();
    S.get_or_init(|| Script::new(include_str!("lua/budget.lua")))
}

/// A connection's budget; `None` from [`Budget::new`] when it has neither rate nor quota.
pub(crate) struct Budget {
    redis: Redis,
    /// The connection, or `<connection>:app:<app>` (one app of a multi-app connection).
    connection: String,
    /// The gauge's `connection` label (bounded: see `apps::Labels`).
    label: String,
    keys: GlobalKeys,
    rate: u32,
    burst: u32,
    daily_quota: u64,
    metrics: Arc<Metrics>,
}

impl Budget {
    pub(crate) fn new(
        redis: Redis,
        keys: &GlobalKeys,
        (connection, label): (&str, &str),
        (rate, burst, daily_quota): (u32, u32, u64),
        metrics: &Arc<Metrics>,
    ) -> Option<Budget> {
        (rate > 0 || daily_quota > 0).then(|| Budget {
            redis,
            connection: connection.to_string(),
            label: label.to_string(),
            keys: keys.clone(),
            rate,
            burst: if burst == 0 { rate.max(1) } else { burst },
            daily_quota,
            metrics: metrics.clone(),
        })
    }

    /// Takes `cost` messages at `now_ms`; the deferral to report when the budget is spent.
    pub(crate) async fn take(&self, cost: u64, now_ms: u64) -> Option<DeliveryError> {
        let day = now_ms / DAY_MS;
        let mut inv = script().prepare_invoke();
        inv.key(self.keys.pusher_budget(&self.connection))
            .key(self.keys.pusher_quota(&self.connection, day))
            .arg(now_ms)
            .arg(self.rate)
            .arg(self.burst)
            .arg(cost)
            .arg(self.daily_quota)
            .arg(DAY_MS - now_ms % DAY_MS);
        let answer: Result<(i64, i64, i64, i64), redis::RedisError> = async {
            let mut c = self.redis.get().await?;
            inv.invoke_async(&mut c).await
        }
        .await;
        let (granted, wait_ms, tokens, quota_left) = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(message = "Cannot read the shared Pusher budget; sending anyway.", connection = %self.connection, error = %e);
                return None;
            }
        };
        self.metrics
            .set_pusher_budget(&self.label, tokens, quota_left);
        (granted == 0).then(|| {
            let what = if self.daily_quota > 0 && quota_left < cost as i64 {
                format!("daily_quota of {} messages is spent", self.daily_quota)
            } else {
                format!("rate_per_second of {} is spent", self.rate)
            };
            DeliveryError::Deferred {
                reason: format!(
                    "connection {:?}'s shared budget: {what}; {cost} messages wait",
                    self.connection
                ),
                retry_after: Some(Duration::from_millis(wait_ms.max(1) as u64)),
                circuit: None,
            }
        })
    }
}
