//! Configuration: `config/herald.toml` → environment → validated [`Config`].
//!
//! Owns: the file schema (every key documented here and in `config/herald.toml`), `${VAR}` and
//! `${VAR:-default}` expansion, the environment overrides (`REDIS_URL`, `HERALD_QUEUE`, …),
//! validation with the offending key named, and the masked view printed by `check-config`.
//! Does not own: acting on any of it (each stage reads its own section).
//!
//! Order of precedence, lowest first: built-in defaults, the file, `${VAR}` expansion inside the
//! file, the environment overrides listed in [`ENV_OVERRIDES`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::envelope::Limits;

/// Default config file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/herald.toml";

/// Environment variables that override single settings: (variable, config key, meaning).
pub const ENV_OVERRIDES: &[(&str, &str, &str)] = &[
    ("REDIS_URL", "redis.url", "Redis to consume from"),
    (
        "REDIS_PREFIX",
        "redis.prefix",
        "prefix for every key and published channel",
    ),
    (
        "HERALD_QUEUE",
        "worker.queues",
        "queue list key(s), comma-separated",
    ),
    (
        "HERALD_CONCURRENCY",
        "worker.concurrency",
        "worker tasks per queue",
    ),
    (
        "HERALD_BATCH_SIZE",
        "worker.batch_size",
        "envelopes reserved per round trip",
    ),
    (
        "HERALD_SHUTDOWN_TIMEOUT",
        "worker.shutdown_timeout",
        "drain time on SIGTERM",
    ),
    (
        "HERALD_UNKNOWN_EVENTS",
        "worker.unknown_events",
        "broadcast | reject",
    ),
    (
        "HERALD_MAX_ATTEMPTS",
        "retry.max_attempts",
        "attempts per delivery",
    ),
    (
        "HERALD_METRICS_ADDR",
        "metrics.addr",
        "address of /metrics, /healthz, /readyz",
    ),
    (
        "BROADCAST_CONNECTION",
        "broadcasting.default",
        "default connection(s), comma-separated",
    ),
];

/// Settings whose value is a list; their override is split on commas.
const LIST_KEYS: &[&str] = &["worker.queues", "broadcasting.default"];

/// Why the configuration cannot be used. Each names the file or key involved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole configuration, validated. Field docs are the reference for `config/herald.toml`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub redis: RedisConfig,
    pub worker: WorkerConfig,
    pub limits: LimitsConfig,
    pub retry: RetryConfig,
    pub failed: FailedConfig,
    pub metrics: MetricsConfig,
    pub broadcasting: BroadcastingConfig,
    /// Listeners by name, referenced from `events.*.listeners`.
    pub listeners: BTreeMap<String, ListenerConfig>,
    /// The registry (Laravel's `$listen`): event name or `*` pattern → what happens to it.
    pub events: BTreeMap<String, EventConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (`rediss://` for TLS). Env: `REDIS_URL`.
    pub url: String,
    /// Put in front of every key and every published channel, as Laravel's
    /// `database.redis.options.prefix` does. Env: `REDIS_PREFIX`.
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            prefix: String::new(),
        }
    }
}

/// What to do with an event the registry has no entry for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownEvents {
    /// Broadcast it on the channels it names, over the default connections.
    #[default]
    Broadcast,
    /// Dead-letter it with code `unknown_event`.
    Reject,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Queue list keys to consume (before the prefix). Env: `HERALD_QUEUE`.
    pub queues: Vec<String>,
    /// Worker tasks per queue; each owns one processing list. Env: `HERALD_CONCURRENCY`.
    pub concurrency: usize,
    /// Most envelopes reserved in one round trip (1–1000). Env: `HERALD_BATCH_SIZE`.
    pub batch_size: usize,
    /// How long an idle worker blocks on the queue before checking for shutdown.
    #[serde(with = "duration")]
    pub block_timeout: Duration,
    /// On SIGTERM, how long in-flight deliveries may take before what is left goes back to the
    /// queue. Env: `HERALD_SHUTDOWN_TIMEOUT`.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// How often this process proves it is alive, and looks for dead ones.
    #[serde(with = "duration")]
    pub heartbeat_interval: Duration,
    /// A process silent this long is dead: its processing lists go back to the queue.
    #[serde(with = "duration")]
    pub process_timeout: Duration,
    /// How often due delayed envelopes (retries) are moved back onto their queue.
    #[serde(with = "duration")]
    pub promote_interval: Duration,
    /// `broadcast` (default) or `reject`. Env: `HERALD_UNKNOWN_EVENTS`.
    pub unknown_events: UnknownEvents,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            queues: vec!["herald:default".into()],
            concurrency: 4,
            batch_size: 100,
            block_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(25),
            heartbeat_interval: Duration::from_secs(2),
            process_timeout: Duration::from_secs(20),
            promote_interval: Duration::from_millis(500),
            unknown_events: UnknownEvents::Broadcast,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest envelope accepted, in bytes; larger ones are dead-lettered unread.
    pub max_envelope_bytes: usize,
    /// Longest event name (characters).
    pub max_event_name: usize,
    /// Longest channel name (characters); Pusher documents 164.
    pub max_channel_name: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_envelope_bytes: l.max_bytes,
            max_event_name: l.max_event_name,
            max_channel_name: l.max_channel_name,
        }
    }
}

impl LimitsConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.max_envelope_bytes,
            max_event_name: self.max_event_name,
            max_channel_name: self.max_channel_name,
        }
    }
}

/// Retry policy for failed deliveries; `events.<name>.retry` overrides it per event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per delivery, the first included. Env: `HERALD_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// First delay of the exponential schedule (doubles each attempt, full jitter).
    #[serde(with = "duration")]
    pub base: Duration,
    /// Longest delay of the exponential schedule.
    #[serde(with = "duration")]
    pub cap: Duration,
    /// Explicit delays instead of the exponential schedule; the last one repeats.
    #[serde(with = "duration::list")]
    pub delays: Vec<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 10,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            delays: Vec::new(),
        }
    }
}

/// Per-event retry override: any key left out keeps the global value.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOverride {
    pub max_attempts: Option<u32>,
    #[serde(with = "duration::option")]
    pub base: Option<Duration>,
    #[serde(with = "duration::option")]
    pub cap: Option<Duration>,
    #[serde(with = "duration::option_list")]
    pub delays: Option<Vec<Duration>>,
}

impl RetryConfig {
    /// This policy with `o`'s keys applied.
    pub fn with(&self, o: &RetryOverride) -> RetryConfig {
        RetryConfig {
            max_attempts: o.max_attempts.unwrap_or(self.max_attempts),
            base: o.base.unwrap_or(self.base),
            cap: o.cap.unwrap_or(self.cap),
            delays: o.delays.clone().unwrap_or_else(|| self.delays.clone()),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailedConfig {
    /// Most dead letters kept per queue; the oldest are evicted beyond it (0 = no cap).
    pub max_entries: usize,
}

impl Default for FailedConfig {
    fn default() -> Self {
        FailedConfig {
            max_entries: 10_000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`; empty disables the server.
    /// Env: `HERALD_METRICS_ADDR`.
    pub addr: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            addr: "127.0.0.1:9477".into(),
        }
    }
}

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
        let mut connections = BTreeMap::new();
        connections.insert(
            "redis".to_string(),
            ConnectionConfig::Redis(RedisConnectionConfig::default()),
        );
        connections.insert("log".to_string(), ConnectionConfig::Log);
        connections.insert("null".to_string(), ConnectionConfig::Null);
        BroadcastingConfig {
            default: vec!["redis".into()],
            connections,
        }
    }
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

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConnectionConfig {
    /// Redis to publish on; defaults to `redis.url`.
    pub url: Option<String>,
    /// Channel prefix; defaults to `redis.prefix` (Laravel publishes with the database prefix).
    pub prefix: Option<String>,
}

/// A Pusher Channels HTTP API connection (`driver = "pusher"`). The shipped config reads
/// Laravel's own variables (`PUSHER_APP_ID`, `PUSHER_APP_KEY`, `PUSHER_APP_SECRET`,
/// `PUSHER_APP_CLUSTER`, `PUSHER_HOST`, `PUSHER_PORT`, `PUSHER_SCHEME`); docs/pusher.md has
/// set-ups for Pusher, soketi, sockudo and Reverb.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PusherConfig {
    /// `PUSHER_APP_ID`. Required when the connection is used.
    #[serde(deserialize_with = "lenient::string")]
    pub app_id: String,
    /// `PUSHER_APP_KEY` (public). Required when the connection is used.
    #[serde(deserialize_with = "lenient::string")]
    pub key: String,
    /// `PUSHER_APP_SECRET`: signs every request; never printed. Required when used.
    #[serde(deserialize_with = "lenient::string")]
    pub secret: String,
    /// `PUSHER_APP_CLUSTER`: with no `host`, requests go to `api-{cluster}.pusher.com`.
    #[serde(deserialize_with = "lenient::string")]
    pub cluster: String,
    /// `PUSHER_HOST`: a host name or address (no scheme, no path) for soketi, sockudo, Reverb.
    #[serde(deserialize_with = "lenient::string")]
    pub host: String,
    /// `PUSHER_PORT`; empty means the scheme's default.
    #[serde(with = "lenient::port")]
    pub port: Option<u16>,
    /// `PUSHER_SCHEME`: `https` (default) or `http`.
    #[serde(deserialize_with = "lenient::string")]
    pub scheme: String,
    /// 32 bytes, base64: enables `private-encrypted-*` channels (end-to-end encryption).
    #[serde(deserialize_with = "lenient::string")]
    pub encryption_master_key_base64: String,
    /// Time bound of one HTTP request, connecting included.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Time bound of opening a connection.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Requests in flight at once on this connection, across all worker tasks of the process.
    #[serde(deserialize_with = "lenient::number")]
    pub max_concurrent_requests: usize,
    /// Largest `data` string per event, in bytes (Pusher: 10 KB; soketi and sockudo: 100 KB).
    #[serde(deserialize_with = "lenient::number")]
    pub max_data_bytes: usize,
    /// Channels per `/events` request (Pusher: 100); events with more are sent in chunks.
    #[serde(deserialize_with = "lenient::number")]
    pub max_channels_per_request: usize,
    /// Events per `/batch_events` request (Pusher: 10).
    #[serde(deserialize_with = "lenient::number")]
    pub max_batch_size: usize,
    /// Longest channel name, in characters (Pusher: 164; soketi 200; sockudo 100).
    #[serde(deserialize_with = "lenient::number")]
    pub max_channel_name: usize,
    /// Longest event name, in characters (Pusher: 200).
    #[serde(deserialize_with = "lenient::number")]
    pub max_event_name: usize,
    /// Consecutive failing requests (5xx, 429, timeouts, connection errors) that open the
    /// circuit shared by every replica; 0 disables the circuit.
    #[serde(deserialize_with = "lenient::number")]
    pub circuit_failures: u32,
    /// How long an open circuit defers deliveries before one probe request may close it.
    #[serde(with = "duration")]
    pub circuit_open_for: Duration,
    /// Send an `idempotency_key` per event, so servers that honour it (sockudo) drop a retried
    /// duplicate; others ignore the field.
    #[serde(deserialize_with = "lenient::boolean")]
    pub idempotency: bool,
}

impl Default for PusherConfig {
    fn default() -> Self {
        PusherConfig {
            app_id: String::new(),
            key: String::new(),
            secret: String::new(),
            cluster: "mt1".into(),
            host: String::new(),
            port: None,
            scheme: "https".into(),
            encryption_master_key_base64: String::new(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_concurrent_requests: 16,
            max_data_bytes: 10 * 1024,
            max_channels_per_request: 100,
            max_batch_size: 10,
            max_channel_name: 164,
            max_event_name: 200,
            circuit_failures: 5,
            circuit_open_for: Duration::from_secs(15),
            idempotency: true,
        }
    }
}

impl PusherConfig {
    /// The host requests go to: `host`, or `api-{cluster}.pusher.com`.
    pub fn effective_host(&self) -> String {
        if self.host.is_empty() {
            format!("api-{}.pusher.com", self.cluster)
        } else {
            self.host.clone()
        }
    }

    /// `scheme://host[:port]`, without a trailing slash.
    pub fn base_url(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{port}", self.scheme, self.effective_host()),
            None => format!("{}://{}", self.scheme, self.effective_host()),
        }
    }

    /// Checks the connection at `key`; `used_by` names a setting that routes events to it, in
    /// which case the credentials are required.
    fn validate(&self, key: &str, used_by: Option<&str>) -> Result<(), ConfigError> {
        if let Some(used_by) = used_by {
            for (field, value, var) in [
                ("app_id", &self.app_id, "PUSHER_APP_ID"),
                ("key", &self.key, "PUSHER_APP_KEY"),
                ("secret", &self.secret, "PUSHER_APP_SECRET"),
            ] {
                if value.is_empty() {
                    return Err(invalid(
                        format!("{key}.{field}"),
                        format!(
                            "must be set ({var} in the shipped config) because {used_by} uses this connection"
                        ),
                    ));
                }
            }
        }
        // Both go into the URL and the signed query unescaped, as the official libraries send them.
        for (field, value) in [("app_id", &self.app_id), ("key", &self.key)] {
            if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(invalid(
                    format!("{key}.{field}"),
                    "may only contain A-Z a-z 0-9 - _ .",
                ));
            }
        }
        if self.scheme != "http" && self.scheme != "https" {
            return Err(invalid(
                format!("{key}.scheme"),
                format!("{:?} is not http or https", self.scheme),
            ));
        }
        if self.host.contains("://") || self.host.contains('/') {
            return Err(invalid(
                format!("{key}.host"),
                format!(
                    "{:?} must be a host name only; put the scheme in `scheme` and the port in `port`",
                    self.host
                ),
            ));
        }
        if self.host.is_empty() && self.cluster.is_empty() {
            return Err(invalid(
                format!("{key}.cluster"),
                "set either host or cluster",
            ));
        }
        if self.port == Some(0) {
            return Err(invalid(format!("{key}.port"), "must be 1-65535"));
        }
        if reqwest::Url::parse(&self.base_url()).is_err() {
            return Err(invalid(
                format!("{key}.host"),
                format!("{:?} does not make a valid URL", self.base_url()),
            ));
        }
        if !self.encryption_master_key_base64.is_empty() {
            use base64::Engine as _;
            let len = base64::engine::general_purpose::STANDARD
                .decode(self.encryption_master_key_base64.trim())
                .map(|k| k.len());
            if len != Ok(32) {
                return Err(invalid(
                    format!("{key}.encryption_master_key_base64"),
                    "must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)",
                ));
            }
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(invalid(
                format!("{key}.timeout"),
                "timeout and connect_timeout must be above zero",
            ));
        }
        for (field, v) in [
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("max_data_bytes", self.max_data_bytes),
            ("max_channels_per_request", self.max_channels_per_request),
            ("max_batch_size", self.max_batch_size),
            ("max_channel_name", self.max_channel_name),
            ("max_event_name", self.max_event_name),
        ] {
            if v == 0 {
                return Err(invalid(format!("{key}.{field}"), "must be at least 1"));
            }
        }
        if self.circuit_failures > 0 && self.circuit_open_for < Duration::from_millis(100) {
            return Err(invalid(
                format!("{key}.circuit_open_for"),
                "must be at least 100ms",
            ));
        }
        Ok(())
    }
}

/// Values that `${VAR}` expansion may have turned into numbers or left empty.
mod lenient {
    use serde::{Deserialize, Deserializer, Serializer, de};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Str(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }

    /// A string, also accepting what `${VAR}` expansion typed as a number or boolean
    /// (`PUSHER_APP_ID=12345` becomes the integer 12345).
    pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match Scalar::deserialize(d)? {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        })
    }

    /// A number, also given as a numeric string (`${VAR}` inside a user-named table is text).
    pub(super) fn number<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: std::str::FromStr + TryFrom<i64>,
    {
        let v = Scalar::deserialize(d)?;
        let parsed = match &v {
            Scalar::Int(i) => T::try_from(*i).ok(),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| match v {
            Scalar::Str(s) => de::Error::custom(format!("{s:?} is not a valid number here")),
            Scalar::Int(i) => de::Error::custom(format!("{i} is out of range here")),
            _ => de::Error::custom("expected a number"),
        })
    }

    /// `true`/`false`, also given as text.
    pub(super) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Bool(b) => Ok(b),
            Scalar::Str(s) => s
                .trim()
                .parse()
                .map_err(|_| de::Error::custom(format!("{s:?} is not true or false"))),
            _ => Err(de::Error::custom("expected true or false")),
        }
    }

    /// A port: an integer, a numeric string, or empty (`PUSHER_PORT` unset) for none.
    pub(super) mod port {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(p: &Option<u16>, s: S) -> Result<S::Ok, S::Error> {
            match p {
                Some(p) => s.serialize_u16(*p),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<u16>, D::Error> {
            let bad = |v: &dyn std::fmt::Display| {
                de::Error::custom(format!(
                    "port {v} is not a number from 1 to 65535 (or empty)"
                ))
            };
            match Option::<Scalar>::deserialize(d)? {
                None => Ok(None),
                Some(Scalar::Str(s)) if s.trim().is_empty() => Ok(None),
                Some(Scalar::Str(s)) => s.trim().parse().map(Some).map_err(|_| bad(&s)),
                Some(Scalar::Int(i)) => u16::try_from(i).map(Some).map_err(|_| bad(&i)),
                Some(Scalar::Float(f)) => Err(bad(&f)),
                Some(Scalar::Bool(b)) => Err(bad(&b)),
            }
        }
    }
}

/// One listener; `type` picks the kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ListenerConfig {
    /// Write the event to the log.
    Log,
    /// POST the event as JSON.
    Webhook(WebhookConfig),
    /// Push the envelope onto another queue list key (prefix applied).
    Forward(ForwardConfig),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL to POST to.
    pub url: String,
    /// When set, `X-Herald-Signature: sha256=<hex HMAC-SHA256 of the body>` is sent.
    #[serde(default)]
    pub secret: Option<String>,
    /// Time bound for one call.
    #[serde(default = "default_webhook_timeout", with = "duration")]
    pub timeout: Duration,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Queue list key to push onto (before the prefix).
    pub queue: String,
}

/// One registry entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventConfig {
    /// Listener names to run.
    pub listeners: Vec<String>,
    /// Broadcast connections; unset means `broadcasting.default`, `[]` means none.
    pub connections: Option<Vec<String>>,
    /// Extra channels, templates over `data`: `orders.{order_id}`, `user.{customer.id}`.
    pub channels: Vec<String>,
    /// Broadcast under this name instead of the event's (Laravel's `broadcastAs`).
    pub broadcast_as: Option<String>,
    /// Retry policy for this event's deliveries.
    pub retry: Option<RetryOverride>,
}

impl Config {
    /// Reads `path`, expands `${VAR}`, applies the environment overrides and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string(), &|k| {
            std::env::var(k).ok()
        })
    }

    /// [`Config::load`] on text already read; `env` looks variables up.
    pub fn parse(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: origin.to_string(),
            message,
        };
        let mut value: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        expand_table(&mut value, "", env)?;
        for (var, key, _) in ENV_OVERRIDES {
            if let Some(v) = env(var) {
                let v = if LIST_KEYS.contains(key) {
                    toml::Value::Array(
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(|s| toml::Value::String(s.to_string()))
                            .collect(),
                    )
                } else {
                    typed_for(key, v)
                };
                set_path(&mut value, key, v);
            }
        }
        let mut config: Config = toml::Value::Table(value)
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(e.message().to_string()))?;
        // The built-in connections (redis, log, null) stay available when a file declares only
        // its own (say, pusher); a connection of the same name replaces the built-in one.
        for (name, c) in BroadcastingConfig::default().connections {
            config.broadcasting.connections.entry(name).or_insert(c);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks everything that can be checked without connecting anywhere.
    pub fn validate(&self) -> Result<(), ConfigError> {
        redis::parse_redis_url(&self.redis.url)
            .ok_or_else(|| invalid("redis.url", "not a redis:// or rediss:// URL"))?;
        let w = &self.worker;
        if w.queues.is_empty() {
            return Err(invalid("worker.queues", "at least one queue is needed"));
        }
        for q in &w.queues {
            if q.is_empty() {
                return Err(invalid("worker.queues", "a queue name is empty"));
            }
            if !crate::queue::QueueKeys::new(&self.redis.prefix, q).is_cluster_safe() {
                return Err(invalid(
                    "worker.queues",
                    format!("{q:?}: a `}}` outside a `{{tag}}` cannot share a hash slot"),
                ));
            }
        }
        if w.concurrency == 0 || w.concurrency > 1024 {
            return Err(invalid("worker.concurrency", "must be between 1 and 1024"));
        }
        if w.batch_size == 0 || w.batch_size > 1000 {
            return Err(invalid("worker.batch_size", "must be between 1 and 1000"));
        }
        if w.block_timeout < Duration::from_millis(10) {
            return Err(invalid("worker.block_timeout", "must be at least 10ms"));
        }
        if w.process_timeout <= w.heartbeat_interval * 2 {
            return Err(invalid(
                "worker.process_timeout",
                "must be more than twice worker.heartbeat_interval",
            ));
        }
        if w.heartbeat_interval.is_zero() || w.promote_interval.is_zero() {
            return Err(invalid("worker", "intervals must be above zero"));
        }
        check_retry("retry", &self.retry)?;
        if self.limits.max_envelope_bytes < 64 {
            return Err(invalid("limits.max_envelope_bytes", "must be at least 64"));
        }
        if !self.metrics.addr.is_empty() && self.metrics.addr.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "metrics.addr",
                "not an address like 127.0.0.1:9477",
            ));
        }

        let connections = &self.broadcasting.connections;
        let known = |names: &[String], key: &str| -> Result<(), ConfigError> {
            for n in names {
                if !connections.contains_key(n) {
                    return Err(invalid(
                        key,
                        format!(
                            "unknown broadcast connection {n:?} (configured: {})",
                            list(connections.keys())
                        ),
                    ));
                }
            }
            Ok(())
        };
        known(&self.broadcasting.default, "broadcasting.default")?;
        for (name, c) in connections {
            if let ConnectionConfig::Redis(r) = c
                && let Some(url) = &r.url
            {
                redis::parse_redis_url(url).ok_or_else(|| {
                    invalid(
                        format!("broadcasting.connections.{name}.url"),
                        "not a redis:// URL",
                    )
                })?;
            }
            if let ConnectionConfig::Pusher(p) = c {
                let used_by = if self.broadcasting.default.contains(name) {
                    Some("broadcasting.default".to_string())
                } else {
                    self.events
                        .iter()
                        .find(|(_, e)| e.connections.as_ref().is_some_and(|c| c.contains(name)))
                        .map(|(event, _)| format!("events.{event:?}.connections"))
                };
                p.validate(
                    &format!("broadcasting.connections.{name}"),
                    used_by.as_deref(),
                )?;
            }
        }
        for (name, l) in &self.listeners {
            let key = format!("listeners.{name}");
            match l {
                ListenerConfig::Webhook(h) => {
                    let ok = reqwest::Url::parse(&h.url)
                        .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                    if !ok {
                        return Err(invalid(format!("{key}.url"), "not an http(s) URL"));
                    }
                }
                ListenerConfig::Forward(f) => {
                    if f.queue.is_empty() {
                        return Err(invalid(format!("{key}.queue"), "must not be empty"));
                    }
                    if w.queues.contains(&f.queue) {
                        return Err(invalid(
                            format!("{key}.queue"),
                            "forwarding to a queue this worker consumes would loop",
                        ));
                    }
                }
                ListenerConfig::Log => {}
            }
        }
        for (event, e) in &self.events {
            let key = format!("events.{event:?}");
            if let Some(c) = &e.connections {
                known(c, &format!("{key}.connections"))?;
            }
            for t in &e.channels {
                crate::registry::Template::parse(t)
                    .map_err(|m| invalid(format!("{key}.channels"), format!("{t:?}: {m}")))?;
            }
            if let Some(r) = &e.retry {
                check_retry(&format!("{key}.retry"), &self.retry.with(r))?;
            }
            if e.broadcast_as.as_deref() == Some("") {
                return Err(invalid(format!("{key}.broadcast_as"), "must not be empty"));
            }
        }
        Ok(())
    }

    /// Checks that every listener the registry names exists, among the configured ones and
    /// `extra` (listeners a program embedding herald registered in code).
    pub fn check_listener_names(&self, extra: &[&str]) -> Result<(), ConfigError> {
        for (event, e) in &self.events {
            for l in &e.listeners {
                if !self.listeners.contains_key(l) && !extra.contains(&l.as_str()) {
                    let mut names: Vec<&str> = self.listeners.keys().map(String::as_str).collect();
                    names.extend(extra);
                    return Err(invalid(
                        format!("events.{event:?}.listeners"),
                        format!("unknown listener {l:?} (configured: {})", list(names)),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML, with every secret replaced by `****`.
    pub fn to_masked_toml(&self) -> String {
        let mut v = toml::Value::try_from(self).expect("config serializes");
        mask(&mut v, "");
        toml::to_string_pretty(&v).expect("config serializes")
    }
}

fn check_retry(key: &str, r: &RetryConfig) -> Result<(), ConfigError> {
    if r.max_attempts == 0 {
        return Err(invalid(format!("{key}.max_attempts"), "must be at least 1"));
    }
    if r.base.is_zero() || r.cap < r.base {
        return Err(invalid(key, "need 0 < base <= cap"));
    }
    Ok(())
}

fn list<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> String {
    let v: Vec<String> = names.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "password",
    "token",
    "encryption_master_key_base64",
];

fn mask(v: &mut toml::Value, key: &str) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                mask(v, k);
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(|v| mask(v, key)),
        toml::Value::String(s) => {
            if SECRET_KEYS.contains(&key) && !s.is_empty() {
                *s = "****".into();
            } else {
                *s = mask_url_password(s);
            }
        }
        _ => {}
    }
}

/// `scheme://user:password@host` → `scheme://user:****@host`; anything else unchanged.
pub fn mask_url_password(s: &str) -> String {
    if let Ok(mut u) = reqwest::Url::parse(s)
        && u.password().is_some()
        && u.set_password(Some("****")).is_ok()
    {
        return u.to_string();
    }
    s.to_string()
}

/// Expands `${VAR}` / `${VAR:-default}` in every string of the table. A string that is exactly
/// one expansion takes the type its key has (see [`typed_for`]), so
/// `concurrency = "${HERALD_CONCURRENCY:-4}"` works and `secret = "${SECRET}"` stays the exact
/// string even when the secret is `0123`.
fn expand_table(
    t: &mut toml::Table,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (k, v) in t.iter_mut() {
        let key = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        expand_value(v, &key, env)?;
    }
    Ok(())
}

fn expand_value(
    v: &mut toml::Value,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match v {
        toml::Value::String(s) if s.contains("${") => {
            let whole = s.starts_with("${") && s.find('}') == Some(s.len() - 1);
            let expanded = expand(s, env).map_err(|m| {
                // The message quotes the value; a secret's value must not reach the terminal.
                let secret = SECRET_KEYS.contains(&key.rsplit('.').next().unwrap_or(key));
                invalid(
                    key,
                    if secret {
                        "bad `${…}` in a secret (value not shown)".into()
                    } else {
                        m
                    },
                )
            })?;
            *v = if whole {
                typed_for(key, expanded)
            } else {
                toml::Value::String(expanded)
            };
        }
        toml::Value::Table(t) => expand_table(t, key, env)?,
        toml::Value::Array(a) => {
            for v in a {
                expand_value(v, key, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A string from the environment as the value key `path` takes: a number or boolean where the
/// built-in defaults have one at that path, a string everywhere else. Keys the defaults do not
/// know (inside user-named listeners and connections) stay strings; their numeric settings
/// accept numeric strings (`lenient`). Typing by the value's look instead would turn a secret
/// `0123` into the number 123.
fn typed_for(path: &str, s: String) -> toml::Value {
    static DEFAULTS: std::sync::OnceLock<toml::Value> = std::sync::OnceLock::new();
    let defaults = DEFAULTS
        .get_or_init(|| toml::Value::try_from(Config::default()).expect("defaults serialize"));
    let found = path
        .split('.')
        .try_fold(defaults, |v, part| v.as_table()?.get(part));
    let parsed = match found {
        Some(toml::Value::Integer(_)) => s.trim().parse().ok().map(toml::Value::Integer),
        Some(toml::Value::Float(_)) => s.trim().parse().ok().map(toml::Value::Float),
        Some(toml::Value::Boolean(_)) => s.trim().parse().ok().map(toml::Value::Boolean),
        _ => None,
    };
    // Unparsable input stays a string, so the error names the key and shows the value.
    parsed.unwrap_or(toml::Value::String(s))
}

/// Expands `${VAR}` and `${VAR:-default}` (default used when VAR is unset or empty).
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{expr}}}` is not a variable name"));
        }
        match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write ${{{name}:-default}} to allow that)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn set_path(t: &mut toml::Table, path: &str, v: toml::Value) {
    let (head, last) = match path.rsplit_once('.') {
        Some((h, l)) => (Some(h), l),
        None => (None, path),
    };
    let mut cur = t;
    if let Some(head) = head {
        for part in head.split('.') {
            let entry = cur
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            cur = entry.as_table_mut().expect("just made a table");
        }
    }
    cur.insert(last.to_string(), v);
}

/// Redis URL parsing without connecting.
mod redis {
    pub(super) fn parse_redis_url(url: &str) -> Option<()> {
        let u = reqwest::Url::parse(url).ok()?;
        matches!(u.scheme(), "redis" | "rediss" | "unix" | "redis+unix").then_some(())
    }
}

/// Durations as `"500ms"`, `"25s"`, `"5m"` (humantime), or a bare integer of seconds.
mod duration {
    use serde::{Deserialize, Deserializer, Serializer, de};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Secs(u64),
        Text(String),
    }

    fn from_repr<E: de::Error>(r: Repr) -> Result<Duration, E> {
        match r {
            Repr::Secs(s) => Ok(Duration::from_secs(s)),
            // A bare number of seconds also arrives as text through `${VAR}`.
            Repr::Text(t) if t.trim().parse::<u64>().is_ok() => {
                Ok(Duration::from_secs(t.trim().parse().expect("checked")))
            }
            Repr::Text(t) => humantime::parse_duration(&t).map_err(|e| {
                E::custom(format!(
                    "{t:?} is not a duration like \"500ms\" or \"25s\": {e}"
                ))
            }),
        }
    }

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_repr(Repr::deserialize(d)?)
    }

    pub(super) mod option {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<Repr>::deserialize(d)?.map(from_repr).transpose()
        }
    }

    pub(super) mod list {
        use super::*;
        use serde::ser::SerializeSeq;
        pub(crate) fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for d in v {
                seq.serialize_element(&humantime::format_duration(*d).to_string())?;
            }
            seq.end()
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Vec<Duration>, D::Error> {
            Vec::<Repr>::deserialize(d)?
                .into_iter()
                .map(from_repr)
                .collect()
        }
    }

    pub(super) mod option_list {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(
            v: &Option<Vec<Duration>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::list::serialize(v, s),
                None => s.serialize_none(),
            }
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Vec<Duration>>, D::Error> {
            Option::<Vec<Repr>>::deserialize(d)?
                .map(|v| v.into_iter().map(from_repr).collect())
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn parse(
        text: &str,
        env: &'static [(&'static str, &'static str)],
    ) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", &env_of(env))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(c.worker.queues, ["herald:default"]);
        assert_eq!(c.broadcasting.default, ["redis"]);
        assert_eq!(c.retry.max_attempts, 10);
        assert_eq!(c.worker.shutdown_timeout, Duration::from_secs(25));
    }

    #[test]
    fn shipped_config_file_is_valid() {
        let text = include_str!("../config/herald.toml");
        let c = parse(text, &[]).unwrap();
        assert!(c.broadcasting.connections.contains_key("redis"));
    }

    #[test]
    fn env_expansion_with_defaults_and_types() {
        let text = r#"
            [redis]
            url = "redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT}"
            [worker]
            concurrency = "${CONC:-3}"
        "#;
        let c = parse(text, &[("REDIS_PORT", "6390")]).unwrap();
        assert_eq!(c.redis.url, "redis://127.0.0.1:6390");
        assert_eq!(c.worker.concurrency, 3);
        let err = parse(text, &[]).unwrap_err().to_string();
        assert!(
            err.contains("redis.url") && err.contains("REDIS_PORT is not set"),
            "{err}"
        );
    }

    /// Regression: whole-string expansions were typed by how they looked, so a secret `0123`
    /// became the number 123 and REDIS_PREFIX=2024 failed as "expected a string".
    #[test]
    fn expansions_take_the_type_of_their_key_and_strings_stay_exact() {
        let text = r#"
            [worker]
            concurrency = "${CONC}"
            shutdown_timeout = "${GRACE}"
            [listeners.h]
            type = "webhook"
            url = "https://example.test/h"
            secret = "${HOOK_SECRET}"
            timeout = "${HOOK_TIMEOUT}"
            [broadcasting.connections.pusher]
            driver = "pusher"
            app_id = "${PUSHER_APP_ID}"
            secret = "${PUSHER_APP_SECRET}"
            max_batch_size = "${BATCH}"
            idempotency = "${IDEM}"
        "#;
        let c = parse(
            text,
            &[
                ("CONC", "6"),
                ("GRACE", "30"),
                ("HOOK_SECRET", "0123"),
                ("HOOK_TIMEOUT", "7"),
                ("PUSHER_APP_ID", "0042"),
                ("PUSHER_APP_SECRET", "1.50"),
                ("BATCH", "8"),
                ("IDEM", "false"),
                ("REDIS_PREFIX", "2024"),
            ],
        )
        .unwrap();
        assert_eq!(c.worker.concurrency, 6);
        assert_eq!(c.worker.shutdown_timeout, Duration::from_secs(30));
        // Declaring a connection keeps the built-in ones.
        assert!(c.broadcasting.connections.contains_key("redis"));
        assert_eq!(c.redis.prefix, "2024");
        let ListenerConfig::Webhook(h) = &c.listeners["h"] else {
            panic!("webhook")
        };
        assert_eq!(h.secret.as_deref(), Some("0123"));
        assert_eq!(h.timeout, Duration::from_secs(7));
        let ConnectionConfig::Pusher(p) = &c.broadcasting.connections["pusher"] else {
            panic!("pusher")
        };
        assert_eq!((p.app_id.as_str(), p.secret.as_str()), ("0042", "1.50"));
        assert_eq!(p.max_batch_size, 8);
        assert!(!p.idempotency);
        let err = parse("[worker]\nconcurrency = \"${CONC}\"\n", &[("CONC", "many")]).unwrap_err();
        assert!(err.to_string().contains("many"), "{err}");
    }

    #[test]
    fn environment_overrides_win() {
        let c = parse(
            "[worker]\nconcurrency = 2\nqueues = [\"a\"]\n",
            &[
                ("HERALD_CONCURRENCY", "7"),
                ("HERALD_QUEUE", "x, y"),
                ("REDIS_PREFIX", "laravel-database-"),
                ("BROADCAST_CONNECTION", "redis,log"),
                ("HERALD_SHUTDOWN_TIMEOUT", "3s"),
            ],
        )
        .unwrap();
        assert_eq!(c.worker.concurrency, 7);
        assert_eq!(c.worker.queues, ["x", "y"]);
        assert_eq!(c.redis.prefix, "laravel-database-");
        assert_eq!(c.broadcasting.default, ["redis", "log"]);
        assert_eq!(c.worker.shutdown_timeout, Duration::from_secs(3));
    }

    #[track_caller]
    fn check_error(text: &str, needles: &[&str]) {
        let err = parse(text, &[]).unwrap_err().to_string();
        for n in needles {
            assert!(err.contains(n), "{err:?} should mention {n:?}");
        }
    }

    #[test]
    fn errors_name_the_offending_key() {
        check_error("[worker]\nconcurency = 2\n", &["concurency"]);
        check_error("[worker]\nbatch_size = 0\n", &["worker.batch_size"]);
        check_error("[redis]\nurl = \"http://x\"\n", &["redis.url"]);
        check_error(
            "[broadcasting]\ndefault = [\"pusher\"]\n",
            &["broadcasting.default", "pusher"],
        );
        check_error(
            "[events.E]\nchannels = [\"orders.{order_id\"]\n",
            &["events.\"E\".channels", "orders.{order_id"],
        );
        check_error(
            "[listeners.h]\ntype = \"webhook\"\nurl = \"ftp://x\"\n",
            &["listeners.h.url"],
        );
        check_error("[worker]\nshutdown_timeout = \"soon\"\n", &["soon"]);
        let c = parse("[events.E]\nlisteners = [\"nope\"]\n", &[]).unwrap();
        let err = c.check_listener_names(&[]).unwrap_err().to_string();
        assert!(
            err.contains("events.\"E\".listeners") && err.contains("nope"),
            "{err}"
        );
    }

    const PUSHER_SECTION: &str = r#"
        [broadcasting.connections.redis]
        driver = "redis"
        [broadcasting.connections.pusher]
        driver = "pusher"
        app_id = "${PUSHER_APP_ID:-}"
        key = "${PUSHER_APP_KEY:-}"
        secret = "${PUSHER_APP_SECRET:-}"
        cluster = "${PUSHER_APP_CLUSTER:-mt1}"
        host = "${PUSHER_HOST:-}"
        port = "${PUSHER_PORT:-}"
        scheme = "${PUSHER_SCHEME:-https}"
        encryption_master_key_base64 = "${PUSHER_ENCRYPTION_MASTER_KEY_BASE64:-}"
    "#;

    fn pusher(c: &Config) -> &PusherConfig {
        match &c.broadcasting.connections["pusher"] {
            ConnectionConfig::Pusher(p) => p,
            other => panic!("not a pusher connection: {other:?}"),
        }
    }

    #[test]
    fn pusher_reads_laravels_variables_and_is_optional_until_used() {
        // Unset variables: valid, because nothing routes to the connection.
        let c = parse(PUSHER_SECTION, &[]).unwrap();
        let p = pusher(&c);
        assert_eq!((p.app_id.as_str(), p.port), ("", None));
        assert_eq!(p.base_url(), "https://api-mt1.pusher.com");
        assert_eq!(p.max_data_bytes, 10240);

        // Numeric variables come back as strings and ports.
        let c = parse(
            PUSHER_SECTION,
            &[
                ("PUSHER_APP_ID", "12345"),
                ("PUSHER_APP_KEY", "k"),
                ("PUSHER_APP_SECRET", "s"),
                ("PUSHER_HOST", "127.0.0.1"),
                ("PUSHER_PORT", "6001"),
                ("PUSHER_SCHEME", "http"),
                ("BROADCAST_CONNECTION", "redis,pusher"),
            ],
        )
        .unwrap();
        let p = pusher(&c);
        assert_eq!(p.app_id, "12345");
        assert_eq!(p.base_url(), "http://127.0.0.1:6001");

        // Used but without credentials: the error names the key, the variable and the user.
        let err = parse(PUSHER_SECTION, &[("BROADCAST_CONNECTION", "pusher")])
            .unwrap_err()
            .to_string();
        for needle in [
            "broadcasting.connections.pusher.app_id",
            "PUSHER_APP_ID",
            "broadcasting.default",
        ] {
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
        let text = format!("{PUSHER_SECTION}\n[events.E]\nconnections = [\"pusher\"]\n");
        let err = Config::parse(&text, "t", &env_of(&[("PUSHER_APP_ID", "1")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pusher.key") && err.contains("events.\"E\".connections"),
            "{err}"
        );
    }

    #[test]
    fn pusher_settings_are_checked() {
        let base =
            "[broadcasting]\ndefault = []\n[broadcasting.connections.p]\ndriver = \"pusher\"\n";
        check_error(
            &format!("{base}host = \"https://soketi.test\"\n"),
            &["broadcasting.connections.p.host", "scheme"],
        );
        check_error(
            &format!("{base}scheme = \"ws\"\n"),
            &["broadcasting.connections.p.scheme"],
        );
        check_error(&format!("{base}port = \"80a\"\n"), &["80a"]);
        check_error(&format!("{base}port = 70000\n"), &["70000"]);
        check_error(
            &format!("{base}encryption_master_key_base64 = \"c2hvcnQ=\"\n"),
            &["encryption_master_key_base64", "32 bytes"],
        );
        check_error(
            &format!("{base}max_batch_size = 0\n"),
            &["p.max_batch_size"],
        );
        check_error(&format!("{base}colour = 1\n"), &["colour"]);
    }

    #[test]
    fn check_config_masks_pusher_secrets() {
        let c = parse(
            PUSHER_SECTION,
            &[
                ("PUSHER_APP_SECRET", "pusher-s3cret"),
                (
                    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
                    "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
                ),
                ("PUSHER_PORT", "6001"),
            ],
        )
        .unwrap();
        let out = c.to_masked_toml();
        assert!(
            !out.contains("pusher-s3cret") && !out.contains("ICEiIyQl"),
            "{out}"
        );
        assert!(out.contains("port = 6001"), "{out}");
    }

    #[test]
    fn a_broken_expansion_in_a_secret_does_not_echo_it() {
        let err = parse(
            "[listeners.h]\ntype = \"webhook\"\nurl = \"https://x.test/\"\nsecret = \"top${secret\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("listeners.h.secret") && !err.contains("top"),
            "{err}"
        );
    }

    #[test]
    fn check_config_masks_secrets() {
        let c = parse(
            r#"
            [redis]
            url = "redis://:hunter2@127.0.0.1:6379"
            [listeners.h]
            type = "webhook"
            url = "https://example.test/hook"
            secret = "s3cr3t"
            "#,
            &[],
        )
        .unwrap();
        let out = c.to_masked_toml();
        assert!(!out.contains("hunter2") && !out.contains("s3cr3t"), "{out}");
        assert!(out.contains("redis://:****@127.0.0.1:6379"), "{out}");
    }
}
