//! Which units of a multi-request event were already delivered, so a retry sends only the rest.
//!
//! Owns: one Redis set per envelope, [`QueueKeys::pusher_sent`] (`{K}:pusher:sent:<id>`, in the
//! queue's hash slot), holding the keys of the units that succeeded, written as each request
//! succeeds (not after the whole batch), with a TTL of [`TTL`]; deleted when the event
//! completes, and with its dead letter (eviction in settle.lua, `herald failed forget` and
//! `flush`). Does not own: deciding what a unit is (`batch`) or retries (`settle`).
//!
//! Only events split over several requests (more than `max_channels_per_request` channels, or
//! `private-encrypted-*` channels next to others) can partly succeed; a single-request event is
//! never looked up or written, so the common path costs nothing. If Redis fails here the units
//! are simply sent again: at least once, never lost.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::queue::{QueueKeys, Redis};

/// How long the record is kept: longer than any retry schedule, so that `herald failed retry`
/// of a dead letter with a partly delivered event does not repeat the delivered part either.
pub(crate) const TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) struct Progress {
    redis: Redis,
    prefix: String,
}

impl Progress {
    pub(crate) fn new(redis: Redis, prefix: &str) -> Progress {
        Progress {
            redis,
            prefix: prefix.to_string(),
        }
    }

    fn key(&self, queue: &str, envelope_id: &str) -> String {
        QueueKeys::new(&self.prefix, queue).pusher_sent(envelope_id)
    }

    /// The unit keys already delivered, per message index, for `messages` (index, envelope id)
    /// of `queue`.
    pub(crate) async fn load(
        &self,
        queue: &str,
        messages: &[(usize, &str)],
    ) -> HashMap<usize, HashSet<String>> {
        if messages.is_empty() {
            return HashMap::new();
        }
        let mut pipe = redis::pipe();
        for (_, id) in messages {
            pipe.cmd("SMEMBERS").arg(self.key(queue, id));
        }
        let sets: Result<Vec<HashSet<String>>, redis::RedisError> = async {
            let mut c = self.redis.get().await?;
            pipe.query_async(&mut c).await
        }
        .await;
        match sets {
            Ok(sets) => messages
                .iter()
                .map(|(i, _)| *i)
                .zip(sets)
                .filter(|(_, s)| !s.is_empty())
                .collect(),
            Err(e) => {
                tracing::warn!(message = "Cannot read which Pusher units were already delivered; sending them all.", queue = %queue, error = %e);
                HashMap::new()
            }
        }
    }

    /// Records `delivered` unit keys per envelope id, the moment their request succeeded.
    pub(crate) async fn delivered(&self, queue: &str, delivered: &[(&str, Vec<&str>)]) {
        let mut pipe = redis::pipe();
        for (id, keys) in delivered {
            let key = self.key(queue, id);
            pipe.cmd("SADD").arg(&key).arg(keys).ignore();
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(TTL.as_millis() as u64)
                .ignore();
        }
        self.run(
            queue,
            pipe,
            "record which Pusher units were delivered; a retry may send them again",
        )
        .await;
    }

    /// Forgets the record of envelopes whose every unit is now delivered.
    pub(crate) async fn complete(&self, queue: &str, ids: &[&str]) {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("DEL").arg(self.key(queue, id)).ignore();
        }
        self.run(
            queue,
            pipe,
            "forget a completed Pusher delivery record; it expires by itself",
        )
        .await;
    }

    async fn run(&self, queue: &str, pipe: redis::Pipeline, what: &str) {
        if pipe.cmd_iter().next().is_none() {
            return;
        }
        let r: Result<(), redis::RedisError> = async {
            let mut c = self.redis.get().await?;
            pipe.query_async(&mut c).await
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(message = "Cannot update the Pusher delivery record.", queue = %queue, consequence = %what, error = %e);
        }
    }
}
