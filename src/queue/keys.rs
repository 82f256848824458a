//! Every Redis key name herald uses, written once.
//!
//! Owns: the mapping from a configured queue (prefix + list key) to its derived keys, and the
//! global keys (`herald:processes`, `herald:schema`, the Pusher circuit and activity). Does not own: what is stored under them
//! (see `queue`, `failed`, `reaper`).
//!
//! Every key of one queue shares the list key's hash slot, so every Lua script and `MULTI` on a
//! queue touches one slot and works on Redis Cluster. If the list key has a `{tag}` its derived
//! keys are `K:…`; otherwise they are `{K}:…`, which hashes exactly like `K`.

/// The keys of one queue. Cheap to clone; built once per queue at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueueKeys {
    /// The configured list key without the prefix (`herald:default`); used in labels and logs.
    pub name: String,
    /// The list producers `LPUSH` onto (prefix applied).
    pub list: String,
    /// `…:delayed`: zset of envelopes waiting for their due time (score = ms since epoch).
    pub delayed: String,
    /// `…:failed`: hash of dead letters by id.
    pub failed: String,
    /// `…:failed:index`: zset of dead-letter ids by time (ms), for listing and capping.
    pub failed_index: String,
    /// `…:workers`: set of the processing lists currently registered for this queue.
    pub workers: String,
    base: String,
}

impl QueueKeys {
    /// Keys for the queue list `name` under `prefix` (Laravel's `REDIS_PREFIX`, may be empty).
    pub(crate) fn new(prefix: &str, name: &str) -> Self {
        let list = format!("{prefix}{name}");
        let base = if has_hash_tag(&list) {
            list.clone()
        } else {
            format!("{{{list}}}")
        };
        QueueKeys {
            name: name.to_string(),
            delayed: format!("{base}:delayed"),
            failed: format!("{base}:failed"),
            failed_index: format!("{base}:failed:index"),
            workers: format!("{base}:workers"),
            list,
            base,
        }
    }

    /// Whether the derived keys can share the list key's slot. A `}` outside a valid `{tag}`
    /// makes that impossible (a tag cannot contain `}`), so config validation refuses such names.
    pub(crate) fn is_cluster_safe(&self) -> bool {
        has_hash_tag(&self.list) || !self.list.contains('}')
    }

    /// The processing list owned by worker task `task` of process `process`.
    pub(crate) fn processing(&self, process: &str, task: usize) -> String {
        format!("{}:processing:{process}:{task}", self.base)
    }

    /// hash with a TTL: what every replica settled in minute `minute` (since the epoch); see
    /// `queue::activity`.
    pub(crate) fn activity(&self, minute: u64) -> String {
        format!("{}:activity:{minute}", self.base)
    }

    /// zset: envelopes parked until circuit `circuit` closes (score = the envelope's age stamp,
    /// ms), so they come back oldest first; see `queue::parked`.
    pub(crate) fn parked(&self, circuit: &str) -> String {
        format!("{}{circuit}", self.parked_prefix())
    }

    /// [`Self::parked`] without the circuit, for the scripts to append a circuit name to.
    pub(crate) fn parked_prefix(&self) -> String {
        format!("{}:parked:on:", self.base)
    }

    /// set: the circuits this queue has parked envelopes for.
    pub(crate) fn parked_index(&self) -> String {
        format!("{}:parked:index", self.base)
    }

    /// set: the circuits among [`Self::parked_index`] seen closed, whose parked envelopes
    /// reserve hands out before the list's.
    pub(crate) fn parked_ready(&self) -> String {
        format!("{}:parked:ready", self.base)
    }

    /// string: set while the queue is paused (who paused it, and when); workers reserve nothing
    /// from a paused queue.
    pub(crate) fn paused(&self) -> String {
        format!("{}:paused", self.base)
    }

    /// set with a TTL: the units of envelope `id`'s Pusher deliveries (every connection: a unit
    /// key names its connection) already delivered while other parts of the same event were
    /// not, so a retry does not resend them (`broadcast::pusher::progress`). In the queue's
    /// slot, so dead-letter eviction (settle.lua) and `failed forget` delete it with the dead
    /// letter.
    pub(crate) fn pusher_sent(&self, id: &str) -> String {
        format!("{}{id}", self.pusher_sent_prefix())
    }

    /// [`Self::pusher_sent`] without the id, for settle.lua to append dead-letter ids to.
    pub(crate) fn pusher_sent_prefix(&self) -> String {
        format!("{}:pusher:sent:", self.base)
    }

    /// The process id inside a processing list key, if `key` is one of this queue's.
    pub(crate) fn process_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let rest = key.strip_prefix(&self.base)?.strip_prefix(":processing:")?;
        let (process, _task) = rest.rsplit_once(':')?;
        Some(process)
    }
}

/// Keys that are not tied to one queue.
#[derive(Clone, Debug)]
pub(crate) struct GlobalKeys {
    /// zset: live process ids, score = last heartbeat (ms).
    pub processes: String,
    /// hash: applied keyspace migrations.
    pub schema: String,
    prefix: String,
}

impl GlobalKeys {
    pub(crate) fn new(prefix: &str) -> Self {
        GlobalKeys {
            processes: format!("{prefix}herald:processes"),
            schema: format!("{prefix}herald:schema"),
            prefix: prefix.to_string(),
        }
    }

    /// string with a TTL: an open circuit for broadcast connection `connection` (shared by every
    /// task and replica; see the Pusher broadcaster).
    pub(crate) fn circuit(&self, connection: &str) -> String {
        format!("{}herald:circuit:{connection}", self.prefix)
    }

    /// string with a TTL: claimed (`SET NX`) by the one request allowed to probe a half-open
    /// circuit of `connection`.
    pub(crate) fn circuit_probe(&self, connection: &str) -> String {
        format!("{}:probe", self.circuit(connection))
    }

    /// hash with a TTL: the shared token bucket (`tokens`, `ts`) of Pusher `connection`'s
    /// `rate_per_second`; the `{connection}` tag keeps it in the slot of the quota counter.
    pub(crate) fn pusher_budget(&self, connection: &str) -> String {
        format!("{}herald:pusher:{{{connection}}}:budget", self.prefix)
    }

    /// string with a TTL: Pusher messages `connection` sent on UTC day `day` (days since the
    /// epoch), against its `daily_quota`.
    pub(crate) fn pusher_quota(&self, connection: &str, day: u64) -> String {
        format!("{}herald:pusher:{{{connection}}}:quota:{day}", self.prefix)
    }

    /// hash with a TTL: the Pusher requests of every replica on `connection` in minute
    /// `minute` (since the epoch), counted by status (`200`, `503`, `timeout`, `connect`).
    pub(crate) fn pusher_activity(&self, connection: &str, minute: u64) -> String {
        format!(
            "{}herald:pusher:{connection}:activity:{minute}",
            self.prefix
        )
    }

    /// list with a TTL: the last requests on `connection`, newest first, as `<ms> <status>`.
    pub(crate) fn pusher_recent(&self, connection: &str) -> String {
        format!("{}herald:pusher:{connection}:recent", self.prefix)
    }

    /// hash: the apps of multi-app Pusher connection `connection` (`apps = "redis"`): field =
    /// app name, value = `{"app_id":…,"key":…,"secret":…}`. Written by operators (`HSET`).
    pub(crate) fn pusher_apps(&self, connection: &str) -> String {
        format!("{}herald:pusher:apps:{connection}", self.prefix)
    }

    /// The name app `app` of multi-app connection `connection` goes by wherever a connection
    /// name goes in a key ([`Self::circuit`], [`Self::pusher_budget`], [`Self::pusher_quota`]),
    /// so each app has its own circuit and budget. App names cannot contain `:`.
    pub(crate) fn pusher_app_scope(connection: &str, app: &str) -> String {
        format!("{connection}:app:{app}")
    }

    /// hash: what a live process reports about itself (host, pid, queues, started), with a TTL.
    pub(crate) fn process_info(&self, process: &str) -> String {
        format!("{}herald:process:{process}", self.prefix)
    }
}

/// Whether Redis Cluster would hash `key` by a `{tag}` rather than the whole key: the first `{`
/// is followed, later, by a `}` with at least one byte between them.
fn has_hash_tag(key: &str) -> bool {
    match key.find('{') {
        Some(open) => key[open + 1..].find('}').is_some_and(|close| close > 0),
        None => false,
    }
}

/// The slot-determining part of a key, as Redis Cluster computes it.
#[cfg(test)]
fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(close) = key[open + 1..].find('}')
        && close > 0
    {
        return &key[open + 1..open + 1 + close];
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_same_slot(keys: &QueueKeys) {
        let tag = hash_tag(&keys.list);
        for k in [
            &keys.delayed,
            &keys.failed,
            &keys.failed_index,
            &keys.workers,
            &keys.processing("p", 0),
            &keys.activity(29_404_480),
            &keys.paused(),
            &keys.parked("pusher:app:1"),
            &keys.parked_index(),
            &keys.parked_ready(),
        ] {
            assert_eq!(hash_tag(k), tag, "{k} must hash like {}", keys.list);
        }
    }

    #[test]
    fn untagged_queue_wraps_the_list_key_in_braces() {
        let keys = QueueKeys::new("", "herald:default");
        assert_eq!(keys.list, "herald:default");
        assert_eq!(keys.delayed, "{herald:default}:delayed");
        assert_eq!(
            keys.processing("h-1", 3),
            "{herald:default}:processing:h-1:3"
        );
        check_same_slot(&keys);
    }

    #[test]
    fn tagged_queue_keeps_its_tag() {
        let keys = QueueKeys::new("", "{broadcasts}");
        assert_eq!(keys.delayed, "{broadcasts}:delayed");
        check_same_slot(&keys);
    }

    #[test]
    fn prefix_applies_to_every_key() {
        let keys = QueueKeys::new("laravel-database-", "herald:default");
        assert_eq!(keys.list, "laravel-database-herald:default");
        assert_eq!(keys.failed, "{laravel-database-herald:default}:failed");
        check_same_slot(&keys);
        let global = GlobalKeys::new("laravel-database-");
        assert_eq!(global.processes, "laravel-database-herald:processes");
        assert_eq!(
            global.pusher_apps("tenants"),
            "laravel-database-herald:pusher:apps:tenants"
        );
        let scope = GlobalKeys::pusher_app_scope("tenants", "acme");
        assert_eq!(
            global.circuit(&scope),
            "laravel-database-herald:circuit:tenants:app:acme"
        );
    }

    #[test]
    fn a_brace_without_a_tag_cannot_share_a_slot() {
        assert!(!QueueKeys::new("", "q{}").is_cluster_safe());
        assert!(QueueKeys::new("", "q{").is_cluster_safe());
        check_same_slot(&QueueKeys::new("", "q{"));
    }

    #[test]
    fn process_of_reads_back_the_process_id() {
        let keys = QueueKeys::new("", "herald:default");
        let k = keys.processing("host:12:ab", 7);
        assert_eq!(keys.process_of(&k), Some("host:12:ab"));
        assert_eq!(keys.process_of("{other}:processing:x:1"), None);
    }
}
