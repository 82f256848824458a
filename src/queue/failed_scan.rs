//! Finding dead letters: which ones a filter matches, newest first, a page at a time.
//!
//! Owns: [`Filter`] (reason, delivery, event name, time) and the one rule of what it matches,
//! the [`Cursor`] that continues a listing where a page ended, and the scan over the time index
//! that never reads more than a bounded number of entries per call. Does not own: what is done
//! with what was found (`failed`, `ops`).
//!
//! A time filter narrows the index range itself (`ZREVRANGEBYSCORE`); the other filters need the
//! entries, so they are read in chunks (`HMGET`) and matched here, never all at once.

use serde::{Deserialize, Serialize};

use super::{DeadLetter, Queue, QueueError};

/// Entries read per round trip while scanning.
const CHUNK: usize = 200;

/// Which dead letters to look at. Every part that is set must match; an empty filter matches
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    /// The dead letter's code, exactly (`retries_exhausted`, `invalid_json`, `http_4xx`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// One of its failed deliveries: `broadcast:pusher`, `listener:audit`, or just the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// Text the event name contains, ignoring case (`OrderShipped` finds
    /// `App\Events\OrderShipped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Failed at or after this time (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Failed at or before this time (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

impl Filter {
    /// Whether only the time index is needed to tell what matches.
    pub fn is_time_only(&self) -> bool {
        self.reason.is_none() && self.delivery.is_none() && self.event.is_none()
    }

    /// Whether `d` matches every part that is set.
    pub fn matches(&self, d: &DeadLetter) -> bool {
        let reason = self.reason.as_ref().is_none_or(|r| *r == d.code);
        let delivery = self.delivery.as_ref().is_none_or(|want| {
            d.deliveries.iter().any(|f| {
                f.delivery == *want || f.delivery.split_once(':').is_some_and(|(_, n)| n == want)
            })
        });
        let event = self.event.as_ref().is_none_or(|want| {
            let want = want.to_lowercase();
            d.event
                .as_ref()
                .is_some_and(|e| e.to_lowercase().contains(&want))
        });
        let since = self.since_ms.is_none_or(|t| d.failed_at >= t);
        let until = self.until_ms.is_none_or(|t| d.failed_at <= t);
        reason && delivery && event && since && until
    }

    /// `(max, min)` scores of the index range the time parts allow.
    fn range(&self) -> (String, String) {
        let max = self.until_ms.map_or("+inf".to_string(), |t| t.to_string());
        let min = self.since_ms.map_or("-inf".to_string(), |t| t.to_string());
        (max, min)
    }
}

/// Where a newest-first listing goes on: the time of the last entry passed, and how many entries
/// of exactly that time were passed (dead letters of one batch share a millisecond). Printed and
/// parsed as `<ms>-<count>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The time (ms) of the last entry passed.
    pub at_ms: u64,
    /// Entries of exactly `at_ms` already passed.
    pub passed: usize,
}

impl Cursor {
    fn after(at_ms: u64, prev: Option<Cursor>) -> Cursor {
        match prev {
            Some(c) if c.at_ms == at_ms => Cursor {
                at_ms,
                passed: c.passed + 1,
            },
            _ => Cursor { at_ms, passed: 1 },
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.at_ms, self.passed)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Cursor, String> {
        let bad = || format!("{s:?} is not a cursor (`<ms>-<count>`, from a listing's `next`)");
        let (at, passed) = s.split_once('-').ok_or_else(bad)?;
        Ok(Cursor {
            at_ms: at.parse().map_err(|_| bad())?,
            passed: passed.parse().map_err(|_| bad())?,
        })
    }
}

/// One page of a scan.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Matching dead letters, newest first: `(id, entry)`.
    pub(crate) entries: Vec<(String, DeadLetter)>,
    /// Where to go on, when the index holds more after what this scan passed.
    pub(crate) next: Option<Cursor>,
}

impl Queue {
    /// Up to `limit` dead letters matching `filter`, newest first, after `after` (from the
    /// newest when `None`). Reads at most about `budget` entries: a scan that passes that many
    /// without filling the page stops early, with `next` set, so a filter that matches little
    /// costs a bounded amount per call.
    pub(crate) async fn failed_scan(
        &self,
        filter: &Filter,
        after: Option<Cursor>,
        limit: usize,
        budget: usize,
    ) -> Result<Scan, QueueError> {
        let (until, min) = filter.range();
        let mut cursor = after;
        let mut scan = Scan::default();
        let mut read = 0;
        loop {
            let (max, skip) = match cursor {
                Some(c) => (c.at_ms.to_string(), c.passed),
                None => (until.clone(), 0),
            };
            let mut range = redis::cmd("ZREVRANGEBYSCORE");
            range
                .arg(&self.keys.failed_index)
                .arg(&max)
                .arg(&min)
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(skip)
                .arg(CHUNK);
            let rows: Vec<(String, f64)> = self.run("failed list", &range).await?;
            if rows.is_empty() {
                return Ok(scan);
            }
            let mut get = redis::cmd("HMGET");
            get.arg(&self.keys.failed);
            for (id, _) in &rows {
                get.arg(id);
            }
            let entries: Vec<Option<String>> = self.run("failed list", &get).await?;
            let full = rows.len() == CHUNK;
            for ((id, score), entry) in rows.into_iter().zip(entries) {
                cursor = Some(Cursor::after(score as u64, cursor));
                read += 1;
                let Some(entry) = entry.and_then(|e| serde_json::from_str::<DeadLetter>(&e).ok())
                else {
                    continue;
                };
                if filter.matches(&entry) {
                    scan.entries.push((id, entry));
                    if scan.entries.len() >= limit {
                        scan.next = cursor;
                        return Ok(scan);
                    }
                }
            }
            if !full {
                return Ok(scan);
            }
            if read >= budget {
                scan.next = cursor;
                return Ok(scan);
            }
        }
    }

    /// How many dead letters the time parts of `filter` allow (one command).
    pub(crate) async fn failed_count_in_range(&self, filter: &Filter) -> Result<u64, QueueError> {
        let (max, min) = filter.range();
        let mut cmd = redis::cmd("ZCOUNT");
        cmd.arg(&self.keys.failed_index).arg(min).arg(max);
        self.run("failed count", &cmd).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::FailedDelivery;

    fn entry(code: &str, event: Option<&str>, deliveries: &[&str], at: u64) -> DeadLetter {
        DeadLetter {
            envelope_id: None,
            queue: "q".into(),
            event: event.map(String::from),
            code: code.into(),
            reason: "r".into(),
            deliveries: deliveries
                .iter()
                .map(|d| FailedDelivery {
                    delivery: d.to_string(),
                    code: code.into(),
                    error: "e".into(),
                    retryable: true,
                })
                .collect(),
            attempts: 1,
            failed_at: at,
            payload: DeadLetter::payload_of(b"{}"),
        }
    }

    #[track_caller]
    fn check(filter: Filter, d: &DeadLetter, expected: bool) {
        assert_eq!(filter.matches(d), expected, "{filter:?} on {d:?}");
    }

    #[test]
    fn every_part_that_is_set_must_match() {
        let d = entry(
            "retries_exhausted",
            Some(r"App\Events\OrderShipped"),
            &["broadcast:pusher", "listener:audit"],
            1000,
        );
        let f = Filter::default;
        check(f(), &d, true);
        let reason = |r: &str| Filter {
            reason: Some(r.into()),
            ..f()
        };
        check(reason("retries_exhausted"), &d, true);
        check(reason("retries"), &d, false);
        let delivery = |s: &str| Filter {
            delivery: Some(s.into()),
            ..f()
        };
        check(delivery("broadcast:pusher"), &d, true);
        check(delivery("audit"), &d, true);
        check(delivery("broadcast:redis"), &d, false);
        let event = |s: &str| Filter {
            event: Some(s.into()),
            ..f()
        };
        check(event("ordershipped"), &d, true);
        check(event("Refunded"), &d, false);
        check(event("x"), &entry("invalid_json", None, &[], 1), false);
        let time = |since: Option<u64>, until: Option<u64>| Filter {
            since_ms: since,
            until_ms: until,
            ..f()
        };
        check(time(Some(1000), Some(1000)), &d, true);
        check(time(Some(1001), None), &d, false);
        check(time(None, Some(999)), &d, false);
        let both = Filter {
            reason: Some("retries_exhausted".into()),
            delivery: Some("redis".into()),
            ..f()
        };
        check(both, &d, false);
    }

    #[test]
    fn cursors_print_and_parse() {
        let c = Cursor {
            at_ms: 1764268800123,
            passed: 3,
        };
        assert_eq!(c.to_string(), "1764268800123-3");
        assert_eq!("1764268800123-3".parse::<Cursor>(), Ok(c));
        assert!("soon".parse::<Cursor>().is_err());
        assert_eq!(
            Cursor::after(5, Some(c)),
            Cursor {
                at_ms: 5,
                passed: 1
            }
        );
        let same = Cursor::after(c.at_ms, Some(c));
        assert_eq!(same.passed, 4);
    }
}
