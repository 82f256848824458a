//! Which units of a multi-request event were already delivered, so a retry sends only the rest.
//!
//! Owns: one Redis set per envelope and connection, `<prefix>herald:pusher:<connection>:sent:<id>`,
//! holding the keys of the units that succeeded while others of the same event failed, with a
//! TTL of [`TTL`]. Does not own: deciding what a unit is (`batch`) or retries (`settle`).
//!
//! Only events split over several requests (more than `max_channels_per_request` channels, or
//! `private-encrypted-*` channels next to others) can partly succeed; a single-request event is
//! never looked up or written, so the common path costs nothing. If Redis fails here the units
//! are simply sent again: at least once, never lost.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::queue::{GlobalKeys, Redis};

/// How long the record is kept: longer than any retry schedule, so that `herald failed retry`
/// of a dead letter with a partly delivered event does not repeat the delivered part either.
pub(crate) const TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) struct Progress {
    redis: Redis,
    /// Everything before the envelope id.
    prefix: String,
}

impl Progress {
    pub(crate) fn new(redis: Redis, keys: &GlobalKeys, connection: &str) -> Progress {
        Progress {
            redis,
            prefix: keys.pusher_sent_prefix(connection),
        }
    }

    fn key(&self, envelope_id: &str) -> String {
        format!("{}{envelope_id}", self.prefix)
    }

    /// The unit keys already delivered, per message index, for `messages` (index, envelope id).
    pub(crate) async fn load(&self, messages: &[(usize, &str)]) -> HashMap<usize, HashSet<String>> {
        if messages.is_empty() {
            return HashMap::new();
        }
        let mut pipe = redis::pipe();
        for (_, id) in messages {
            pipe.cmd("SMEMBERS").arg(self.key(id));
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
                tracing::warn!(message = "Cannot read which Pusher units were already delivered; sending them all.", error = %e);
                HashMap::new()
            }
        }
    }

    /// Records `delivered` unit keys of envelopes that still have undelivered units, and forgets
    /// envelopes now complete (`complete`, only those that had a record).
    pub(crate) async fn save(&self, delivered: &[(&str, Vec<&str>)], complete: &[&str]) {
        if delivered.is_empty() && complete.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (id, keys) in delivered {
            let key = self.key(id);
            pipe.cmd("SADD").arg(&key).arg(keys).ignore();
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(TTL.as_millis() as u64)
                .ignore();
        }
        for id in complete {
            pipe.cmd("DEL").arg(self.key(id)).ignore();
        }
        let r: Result<(), redis::RedisError> = async {
            let mut c = self.redis.get().await?;
            pipe.query_async(&mut c).await
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(message = "Cannot record which Pusher units were delivered; a retry may send them again.", error = %e);
        }
    }
}
