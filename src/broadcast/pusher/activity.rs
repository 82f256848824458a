//! What the requests of one Pusher connection did, fleet-wide, for the dashboard's connections
//! panel: requests per minute by status, and the last few requests.
//!
//! Owns: counting each request in this process ([`RequestLog::record`], a lock held for a map
//! update), adding those counts to Redis once per heartbeat ([`RequestLog::flush`], one pipeline
//! for every connection's keys, so no request waits on it and every replica adds to the same
//! minute), and reading them back ([`read`]). Does not own: the Prometheus counter of the same
//! requests (`metrics`), the circuit (`circuit`).
//!
//! Keys: `GlobalKeys::pusher_activity` (a hash per minute, field = status, with a TTL) and
//! `GlobalKeys::pusher_recent` (a list of `<ms> <status>`, newest first, trimmed to [`RECENT`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::clock;
use crate::queue::activity::{TTL, minute_of};
use redis::Cmd;

use crate::queue::{GlobalKeys, NO_QUEUE, QueueError, Redis, Spread};

/// Requests kept in the recent list.
pub(crate) const RECENT: usize = 20;

/// One minute of one connection: requests by status (`200`, `429`, `503`, `timeout`,
/// `connect`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestMinute {
    /// The minute's first millisecond since the epoch.
    pub start_ms: u64,
    /// Requests per status.
    pub statuses: BTreeMap<String, u64>,
}

/// One recent request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecentRequest {
    /// When it was answered (or failed), ms since the epoch.
    pub at_ms: u64,
    /// Its status, or `timeout` / `connect`.
    pub status: String,
}

#[derive(Default)]
struct Pending {
    /// (minute, status) → requests not flushed yet.
    counts: BTreeMap<(u64, String), u64>,
    /// Newest last, at most [`RECENT`].
    recent: Vec<RecentRequest>,
}

/// The requests of one connection in this process since the last flush.
pub(crate) struct RequestLog {
    connection: String,
    pending: Mutex<Pending>,
}

impl RequestLog {
    pub(crate) fn new(connection: &str) -> RequestLog {
        RequestLog {
            connection: connection.to_string(),
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Counts one request that ended with `status`.
    pub(crate) fn record(&self, status: &str) {
        let now = clock::now_ms();
        let mut p = self
            .pending
            .lock()
            .expect("never poisoned: no panics inside");
        *p.counts
            .entry((minute_of(now), status.to_string()))
            .or_default() += 1;
        if p.recent.len() == RECENT {
            p.recent.remove(0);
        }
        p.recent.push(RecentRequest {
            at_ms: now,
            status: status.to_string(),
        });
    }

    /// Adds what was counted since the last flush to Redis. On an error the counts are dropped
    /// (they are statistics; nothing waits for them).
    pub(crate) async fn flush(&self, redis: &Redis, keys: &GlobalKeys) -> Result<(), QueueError> {
        let p = std::mem::take(&mut *self.pending.lock().expect("never poisoned"));
        if p.counts.is_empty() {
            return Ok(());
        }
        let ttl = TTL.as_millis() as i64;
        let mut spread = Spread::default();
        let mut minutes: Vec<u64> = Vec::new();
        for ((minute, status), n) in &p.counts {
            let key = keys.pusher_activity(&self.connection, *minute);
            spread.add(Cmd::hincr(&key, status, *n));
            if !minutes.contains(minute) {
                minutes.push(*minute);
                spread.add(Cmd::pexpire(&key, ttl));
            }
        }
        let recent = keys.pusher_recent(&self.connection);
        let entries: Vec<String> = (p.recent.iter())
            .map(|r| format!("{} {}", r.at_ms, r.status))
            .collect();
        spread.add(Cmd::lpush(&recent, entries));
        spread.add(Cmd::ltrim(&recent, 0, RECENT as isize - 1));
        spread.add(Cmd::pexpire(&recent, ttl));
        (redis.run_spread::<redis::Value>(NO_QUEUE, "pusher activity", &spread)).await?;
        Ok(())
    }
}

/// The last `minutes` minutes of `connection` up to `now_ms` (oldest first) and its recent
/// requests (newest first), as every replica flushed them. One round trip.
pub(crate) async fn read(
    redis: &Redis,
    keys: &GlobalKeys,
    connection: &str,
    now_ms: u64,
    minutes: u64,
) -> Result<(Vec<RequestMinute>, Vec<RecentRequest>), QueueError> {
    let last = minute_of(now_ms);
    let first = last.saturating_sub(minutes.saturating_sub(1));
    let mut spread = Spread::default();
    for m in first..=last {
        spread.add(Cmd::hgetall(keys.pusher_activity(connection, m)));
    }
    spread.add(Cmd::lrange(keys.pusher_recent(connection), 0, -1));
    let mut replies: Vec<redis::Value> = redis
        .run_spread(NO_QUEUE, "pusher activity", &spread)
        .await?;
    // Each reply is read on its own: one odd value (a key of another type) spoils only itself.
    let recent: Vec<String> =
        redis::from_redis_value(replies.pop().unwrap_or(redis::Value::Nil)).unwrap_or_default();
    let per_minute = (first..=last)
        .zip(replies)
        .map(|(m, v)| RequestMinute {
            start_ms: m * 60_000,
            statuses: redis::from_redis_value(v).unwrap_or_default(),
        })
        .collect();
    let recent = recent
        .iter()
        .filter_map(|r| {
            let (at, status) = r.split_once(' ')?;
            Some(RecentRequest {
                at_ms: at.parse().ok()?,
                status: status.to_string(),
            })
        })
        .collect();
    Ok((per_minute, recent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keeps_the_last_requests_in_order() {
        let log = RequestLog::new("pusher");
        for i in 0..RECENT + 5 {
            log.record(&format!("{}", 200 + i));
        }
        let p = log.pending.lock().unwrap();
        assert_eq!(p.recent.len(), RECENT);
        assert_eq!(
            p.recent.last().unwrap().status,
            format!("{}", 200 + RECENT + 4)
        );
        let total: u64 = p.counts.values().sum();
        assert_eq!(total, (RECENT + 5) as u64, "counts keep every request");
    }
}
