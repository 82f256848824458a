//! `[broadcasting]`: the default connections and every broadcast connection by name, as in
//! Laravel's `config/broadcasting.php`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{PusherConfig, RedisUrl};

/// `[broadcasting]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BroadcastingConfig {
    /// Connections an event is broadcast on when neither it nor the registry says otherwise.
    /// Env: `BROADCAST_CONNECTION` (Laravel's variable; a comma list here).
    pub default: Vec<String>,
    /// Broadcast connections by name, as in Laravel's `config/broadcasting.php`.
    pub connections: BTreeMap<String, ConnectionConfig>,
}

impl Default for BroadcastingConfig {
    fn default() -> Self {
        BroadcastingConfig {
            default: vec!["redis".into()],
            connections: builtin_connections(),
        }
    }
}

/// The connections every config has unless it replaces one by name: `redis`, `log`, `null`.
pub(super) fn builtin_connections() -> BTreeMap<String, ConnectionConfig> {
    BTreeMap::from([
        (
            "redis".to_string(),
            ConnectionConfig::Redis(RedisConnectionConfig::default()),
        ),
        ("log".to_string(), ConnectionConfig::Log),
        ("null".to_string(), ConnectionConfig::Null),
    ])
}

/// One broadcast connection; `driver` picks the kind, as in `config/broadcasting.php`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase", deny_unknown_fields)]
pub enum ConnectionConfig {
    /// `PUBLISH` to Redis pub/sub in Laravel's RedisBroadcaster format.
    Redis(RedisConnectionConfig),
    /// Write each broadcast to the log (info level).
    Log,
    /// Accept and drop (Laravel's `null` driver).
    Null,
    /// The Pusher Channels HTTP API: Pusher itself, soketi, sockudo, Laravel Reverb.
    Pusher(Box<PusherConfig>),
}

/// A `driver = "redis"` connection.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConnectionConfig {
    /// Redis to publish on; defaults to `redis.url`.
    pub url: Option<RedisUrl>,
    /// Channel prefix; defaults to `redis.prefix` (Laravel publishes with the database prefix).
    pub prefix: Option<String>,
}
