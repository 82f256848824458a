//! Per-minute activity of a queue, fleet-wide: what the settles of every replica add up to.
//!
//! Owns: the fields of the `…:activity:<minute>` hashes (`QueueKeys::activity`), what one
//! settle adds to them ([`Tally`]), reading the last minutes back ([`Minute`]) and the age
//! percentiles read off their histograms. Does not own: writing them, which settle.lua does in
//! the same script as the acknowledgement (no extra round trip, and a settle that applies
//! nothing counts nothing), or the Prometheus metrics of one process (`metrics`).
//!
//! A hash lives [`TTL`] after its minute's first settle. Fields:
//!
//! | field | counts |
//! |---|---|
//! | `settled` | envelopes settled: acknowledged, put back for a retry, or dead-lettered |
//! | `retried` | of those, envelopes put in the delayed set for a retry |
//! | `dead` | dead letters written |
//! | `failed` | deliveries that failed (retried or dead-lettered; deferrals by an open circuit are not failures) |
//! | `age:<delivery>:<b>` | successful deliveries whose event age (created → delivered) fell in bucket `b` of [`AGE_BUCKETS`] (`b` = its length: above the last) |

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Queue, QueueError};
pub(crate) use crate::metrics::AGE_BUCKETS;

/// How long a minute's counters are kept: the last hour, and some slack for clocks.
pub(crate) const TTL: Duration = Duration::from_secs(90 * 60);

/// The minute (since the epoch) that `ms` falls in.
pub(crate) fn minute_of(ms: u64) -> u64 {
    ms / 60_000
}

/// The bucket of [`AGE_BUCKETS`] that an age of `seconds` falls in.
pub(crate) fn age_bucket(seconds: f64) -> usize {
    AGE_BUCKETS
        .iter()
        .position(|&b| seconds <= b)
        .unwrap_or(AGE_BUCKETS.len())
}

/// What one settle adds to its minute.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) settled: u64,
    pub(crate) retried: u64,
    pub(crate) dead: u64,
    pub(crate) failed: u64,
    /// (delivery, age bucket) → successful deliveries.
    pub(crate) ages: BTreeMap<(String, usize), u64>,
}

impl Tally {
    /// The `(field, increment)` pairs besides `settled`, zeros left out.
    pub(crate) fn fields(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = [
            ("retried", self.retried),
            ("dead", self.dead),
            ("failed", self.failed),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(f, n)| (f.to_string(), n))
        .collect();
        for ((delivery, b), n) in &self.ages {
            out.push((format!("age:{delivery}:{b}"), *n));
        }
        out
    }
}

/// One minute of one queue, as every replica counted it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Minute {
    /// Its first millisecond since the epoch.
    pub start_ms: u64,
    /// Envelopes settled (any outcome).
    pub settled: u64,
    /// Envelopes put back for a retry.
    pub retried: u64,
    /// Dead letters written.
    pub dead: u64,
    /// Deliveries that failed.
    pub failed: u64,
    /// Per delivery: successful deliveries per age bucket (see [`Minute::age_bounds`]).
    pub ages: BTreeMap<String, Vec<u64>>,
}

impl Minute {
    /// The upper bounds (seconds) of the age buckets; the last bucket is everything above.
    pub fn age_bounds() -> &'static [f64] {
        AGE_BUCKETS
    }

    fn from_fields(start_ms: u64, fields: BTreeMap<String, u64>) -> Minute {
        let mut m = Minute {
            start_ms,
            ..Minute::default()
        };
        for (field, n) in fields {
            match field.as_str() {
                "settled" => m.settled = n,
                "retried" => m.retried = n,
                "dead" => m.dead = n,
                "failed" => m.failed = n,
                other => {
                    let Some((delivery, b)) = other
                        .strip_prefix("age:")
                        .and_then(|rest| rest.rsplit_once(':'))
                    else {
                        continue;
                    };
                    let Ok(b) = b.parse::<usize>() else { continue };
                    let buckets = m
                        .ages
                        .entry(delivery.to_string())
                        .or_insert_with(|| vec![0; AGE_BUCKETS.len() + 1]);
                    if let Some(slot) = buckets.get_mut(b) {
                        *slot += n;
                    }
                }
            }
        }
        m
    }
}

/// The `q` quantile (0–1) of a histogram over [`AGE_BUCKETS`], interpolated inside its bucket
/// as Prometheus' `histogram_quantile` does; `None` when it is empty. Above the last bound it
/// answers the last bound (the histogram knows no more).
pub(crate) fn quantile(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut seen = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (seen + n) as f64 >= rank {
            let Some(&upper) = AGE_BUCKETS.get(i) else {
                return AGE_BUCKETS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { AGE_BUCKETS[i - 1] };
            let within = (rank - seen as f64) / n as f64;
            return Some(lower + (upper - lower) * within);
        }
        seen += n;
    }
    AGE_BUCKETS.last().copied()
}

/// Adds `b` into `a`, bucket by bucket.
pub(crate) fn add_buckets(a: &mut Vec<u64>, b: &[u64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

impl Queue {
    /// The last `minutes` minutes up to the one holding `now_ms`, oldest first; minutes nothing
    /// was settled in are zeros. One round trip.
    pub(crate) async fn activity(
        &self,
        now_ms: u64,
        minutes: u64,
    ) -> Result<Vec<Minute>, QueueError> {
        let last = minute_of(now_ms);
        let first = last.saturating_sub(minutes.saturating_sub(1));
        let mut pipe = ::redis::pipe();
        for m in first..=last {
            pipe.hgetall(self.keys.activity(m));
        }
        let all: Vec<BTreeMap<String, u64>> = self.run("activity", &pipe).await?;
        Ok((first..=last)
            .zip(all)
            .map(|(m, fields)| Minute::from_fields(m * 60_000, fields))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_fall_in_the_first_bucket_that_holds_them() {
        assert_eq!(age_bucket(0.0), 0);
        assert_eq!(age_bucket(0.001), 0);
        assert_eq!(age_bucket(0.0011), 1);
        assert_eq!(age_bucket(1e9), AGE_BUCKETS.len());
    }

    #[test]
    fn fields_read_back_as_they_were_written() {
        let mut t = Tally {
            settled: 5,
            retried: 1,
            dead: 0,
            failed: 2,
            ..Tally::default()
        };
        t.ages.insert(("broadcast:redis".into(), 3), 4);
        t.ages.insert(("listener:a:b".into(), AGE_BUCKETS.len()), 1);
        let mut fields: BTreeMap<String, u64> = t.fields().into_iter().collect();
        assert!(!fields.contains_key("dead"), "zeros are not sent");
        fields.insert("settled".into(), 5);
        let m = Minute::from_fields(60_000, fields);
        assert_eq!((m.settled, m.retried, m.dead, m.failed), (5, 1, 0, 2));
        assert_eq!(m.ages["broadcast:redis"][3], 4);
        assert_eq!(
            m.ages["listener:a:b"][AGE_BUCKETS.len()],
            1,
            "a name with `:`"
        );
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let mut b = vec![0; AGE_BUCKETS.len() + 1];
        assert_eq!(quantile(&b, 0.5), None);
        b[0] = 10; // ten ages in (0, 1 ms]
        assert_eq!(quantile(&b, 0.5), Some(0.0005));
        b[1] = 10; // ten in (1 ms, 2.5 ms]
        let p99 = quantile(&b, 0.99).unwrap();
        assert!((p99 - (0.001 + 0.0015 * 0.98)).abs() < 1e-9, "{p99}");
        let mut over = vec![0; AGE_BUCKETS.len() + 1];
        over[AGE_BUCKETS.len()] = 1;
        assert_eq!(quantile(&over, 0.5), AGE_BUCKETS.last().copied());
    }
}
