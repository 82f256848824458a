//! `[redis]`: where the queues live, and how herald reaches them (one server, a Redis Cluster,
//! or a primary found through Sentinel).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, RedisUrl, Secret, invalid};

/// How herald reaches Redis. Env: `REDIS_MODE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One server at `redis.url`.
    #[default]
    Standalone,
    /// A Redis Cluster, seeded by `redis.nodes`.
    Cluster,
    /// A primary named `redis.master_name`, found through the sentinels in `redis.nodes`.
    Sentinel,
}

/// `[redis]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `standalone` (default), `cluster` or `sentinel`. Env: `REDIS_MODE`.
    pub mode: RedisMode,
    /// `redis://[user:password@]host:port[/db]` (`rediss://` for TLS). Env: `REDIS_URL`.
    /// Standalone mode only.
    pub url: RedisUrl,
    /// The cluster's seed nodes, or the sentinels' addresses in sentinel mode. Env:
    /// `REDIS_NODES` (comma-separated URLs).
    pub nodes: Vec<RedisUrl>,
    /// The primary's name as the sentinels know it (sentinel mode). Env:
    /// `REDIS_SENTINEL_MASTER`.
    pub master_name: String,
    /// The data nodes' ACL user, in every mode (over any in the URLs). In sentinel mode the
    /// sentinels' own credentials are in their URLs. Env: `REDIS_USERNAME`.
    pub username: String,
    /// The data nodes' password, in every mode (over any in the URLs). Env: `REDIS_PASSWORD`.
    pub password: Secret,
    /// After each reserve and each settle, wait until this many replicas acknowledged it
    /// (`WAIT`), so a failover cannot undo a move herald has acted on. 0 (default): don't wait.
    pub wait_replicas: u32,
    /// How long one `WAIT` may take; when it ends short, herald warns, counts it
    /// (`herald_redis_wait_short_total`) and carries on.
    #[serde(with = "super::de::duration")]
    pub wait_timeout: Duration,
    /// Put in front of every key and every published channel, as Laravel's
    /// `database.redis.options.prefix` does. Env: `REDIS_PREFIX`.
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            mode: RedisMode::Standalone,
            url: RedisUrl::parse("redis://127.0.0.1:6379").expect("a valid default"),
            nodes: Vec::new(),
            master_name: String::new(),
            username: String::new(),
            password: Secret::new(""),
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
            prefix: String::new(),
        }
    }
}

impl RedisConfig {
    /// Where herald looks for Redis in this mode, passwords masked, and the setting that says
    /// so: for an error an operator reads.
    pub fn target(&self) -> String {
        let nodes = || {
            let n: Vec<String> = self.nodes.iter().map(ToString::to_string).collect();
            n.join(", ")
        };
        match self.mode {
            RedisMode::Standalone => format!("{} (redis.url / REDIS_URL)", self.url),
            RedisMode::Cluster => format!(
                "the cluster seeded by {} (redis.nodes / REDIS_NODES)",
                nodes()
            ),
            RedisMode::Sentinel => format!(
                "the primary {:?} of the sentinels {} (redis.master_name, redis.nodes)",
                self.master_name,
                nodes()
            ),
        }
    }

    /// The settings of the chosen mode are there, and no setting of another mode is.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        match self.mode {
            RedisMode::Standalone => {
                if !self.nodes.is_empty() {
                    return Err(invalid(
                        "redis.nodes",
                        "is read only in cluster or sentinel mode (set redis.mode)",
                    ));
                }
            }
            RedisMode::Cluster | RedisMode::Sentinel => {
                if self.nodes.is_empty() {
                    return Err(invalid(
                        "redis.nodes",
                        "needs at least one URL in cluster or sentinel mode",
                    ));
                }
                if self
                    .nodes
                    .iter()
                    .any(|n| n.is_tls() != self.nodes[0].is_tls())
                {
                    // One scheme decides TLS for every node, and in sentinel mode for the data
                    // nodes the sentinels name too.
                    return Err(invalid(
                        "redis.nodes",
                        "mixes redis:// and rediss:// URLs; use rediss:// for all (TLS) or none",
                    ));
                }
            }
        }
        for (key, value) in [
            ("redis.username", self.username.as_str()),
            ("redis.password", self.password.expose()),
        ] {
            if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                // A stray newline from a secret file; the value itself is never shown.
                return Err(invalid(
                    key,
                    "must not contain spaces or control characters",
                ));
            }
        }
        if self.wait_replicas > 0 && self.wait_timeout.is_zero() {
            // WAIT with 0 blocks for ever: a worker would hang on a lost replica.
            return Err(invalid(
                "redis.wait_timeout",
                "must be above 0 when wait_replicas is set",
            ));
        }
        let sentinel = self.mode == RedisMode::Sentinel;
        if sentinel && self.master_name.trim().is_empty() {
            return Err(invalid("redis.master_name", "is needed in sentinel mode"));
        }
        if !sentinel && !self.master_name.is_empty() {
            return Err(invalid(
                "redis.master_name",
                "is read only in sentinel mode (set redis.mode = \"sentinel\")",
            ));
        }
        Ok(())
    }
}
