//! `[redis]`: where the queues live.

use serde::{Deserialize, Serialize};

use super::RedisUrl;

/// `[redis]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (`rediss://` for TLS). Env: `REDIS_URL`.
    pub url: RedisUrl,
    /// Put in front of every key and every published channel, as Laravel's
    /// `database.redis.options.prefix` does. Env: `REDIS_PREFIX`.
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: RedisUrl::parse("redis://127.0.0.1:6379").expect("a valid default"),
            prefix: String::new(),
        }
    }
}
