//! The dead-letter actions on one queue: list (filtered, a page at a time), show, retry, forget,
//! flush. `herald failed …` and the admin API call exactly these.
//!
//! Owns: what a selection is ([`Selection`]: ids, or everything a filter matches), the order
//! retries are pushed in (oldest first, so a replay keeps the original order), and the log line
//! of each action. Does not own: the store (`queue::failed`) or matching (`queue::Filter`).

use super::{Actor, OpsError, QueueOps, log_action};
use crate::queue::{Cursor, DeadLetter, Filter, QueueError};

/// Most entries one listing call reads while looking for matches (see `Queue::failed_scan`).
const SCAN_BUDGET: usize = 5000;
/// Most entries a page holds.
pub const MAX_PAGE: usize = 500;

/// Which dead letters an action is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Selection {
    /// These ids.
    Ids(Vec<String>),
    /// Every dead letter the filter matches when the action starts (an empty filter: all).
    Matching(Filter),
}

impl Selection {
    fn describe(&self) -> String {
        match self {
            Selection::Ids(ids) if ids.len() <= 10 => format!("ids {}", ids.join(",")),
            Selection::Ids(ids) => format!("{} ids from {}", ids.len(), ids[0]),
            Selection::Matching(f) if *f == Filter::default() => "all".into(),
            Selection::Matching(f) => format!(
                "matching {}",
                serde_json::to_string(f).expect("filters serialize")
            ),
        }
    }
}

/// What an action did: the ids it acted on, and those that were gone by then.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Done {
    /// Retried (or forgotten), oldest first.
    pub done: Vec<String>,
    /// Named but not there (already retried or forgotten, or never existed).
    pub missing: Vec<String>,
}

/// One page of a dead-letter listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    /// Newest first: `(id, entry)`.
    pub entries: Vec<(String, DeadLetter)>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next: Option<String>,
    /// How many match in all, when that costs one command (no reason, delivery or event
    /// filter); `None` otherwise.
    pub total: Option<u64>,
}

impl QueueOps {
    /// Up to `limit` (at most [`MAX_PAGE`]) dead letters matching `filter`, newest first, after
    /// the cursor `after` (a previous page's `next`). A page may hold fewer than `limit` and
    /// still have a `next`: the scan stops after reading a bounded number of entries.
    pub async fn failed_page(
        &self,
        filter: &Filter,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Page, QueueError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let scan = self
            .queue
            .failed_scan(filter, after, limit, SCAN_BUDGET.max(limit))
            .await?;
        let total = if filter.is_time_only() {
            Some(self.queue.failed_count_in_range(filter).await?)
        } else {
            None
        };
        Ok(Page {
            entries: scan.entries,
            next: scan.next.map(|c| c.to_string()),
            total,
        })
    }

    /// Dead letters, newest first, skipping `offset`: `(id, entry)`.
    pub async fn failed_list(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, DeadLetter)>, QueueError> {
        let all = self.matching(&Filter::default(), offset + limit).await?;
        Ok(all.into_iter().skip(offset).collect())
    }

    /// One dead letter by id.
    pub async fn failed_get(&self, id: &str) -> Result<Option<DeadLetter>, QueueError> {
        self.queue.failed_get(id).await
    }

    /// Puts the selected dead letters back on the queue, oldest first, each with only the
    /// deliveries that failed pending and its attempts reset.
    pub async fn retry(&self, actor: &Actor, selection: &Selection) -> Result<Done, OpsError> {
        let ids = self.oldest_first(selection).await?;
        let done = self.queue.failed_retry(&ids).await?;
        let outcome = split(ids, done);
        log_action(
            actor,
            "retry",
            self.name(),
            &selection.describe(),
            &format!(
                "{} retried, {} missing",
                outcome.done.len(),
                outcome.missing.len()
            ),
        );
        Ok(outcome)
    }

    /// Deletes the selected dead letters.
    pub async fn forget(&self, actor: &Actor, selection: &Selection) -> Result<Done, OpsError> {
        let ids = self.oldest_first(selection).await?;
        let done = self.queue.failed_forget(&ids).await?;
        let outcome = split(ids, done);
        log_action(
            actor,
            "forget",
            self.name(),
            &selection.describe(),
            &format!(
                "{} forgotten, {} missing",
                outcome.done.len(),
                outcome.missing.len()
            ),
        );
        Ok(outcome)
    }

    /// Deletes every dead letter of the queue; how many there were.
    pub async fn flush(&self, actor: &Actor) -> Result<u64, OpsError> {
        let n = self.queue.failed_flush().await?;
        log_action(actor, "flush", self.name(), "all", &format!("{n} deleted"));
        Ok(n)
    }

    /// The ids of a selection, oldest first.
    async fn oldest_first(&self, selection: &Selection) -> Result<Vec<String>, QueueError> {
        let mut ids = match selection {
            Selection::Ids(ids) => return Ok(ids.clone()),
            Selection::Matching(filter) => self.matching(filter, usize::MAX).await?,
        }
        .into_iter()
        .map(|(id, _)| id)
        .collect::<Vec<_>>();
        ids.reverse();
        Ok(ids)
    }

    /// Up to `limit` dead letters matching `filter`, newest first, however many scans it takes.
    async fn matching(
        &self,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(String, DeadLetter)>, QueueError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let want = (limit - out.len()).min(MAX_PAGE);
            let scan = self
                .queue
                .failed_scan(filter, after, want, SCAN_BUDGET)
                .await?;
            out.extend(scan.entries);
            match scan.next {
                Some(next) if out.len() < limit => after = Some(next),
                _ => return Ok(out),
            }
        }
    }
}

/// Ids split by whether the action found them.
fn split(ids: Vec<String>, done: Vec<bool>) -> Done {
    let mut out = Done::default();
    for (id, found) in ids.into_iter().zip(done) {
        if found {
            out.done.push(id);
        } else {
            out.missing.push(id);
        }
    }
    out
}
