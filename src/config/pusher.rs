//! A `driver = "pusher"` connection: the Pusher Channels HTTP API (Pusher, soketi, sockudo,
//! Laravel Reverb), its endpoint, credentials and limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, invalid};

/// Smallest non-zero `max_request_bytes`.
const MIN_REQUEST_BYTES: usize = 2048;

/// A Pusher Channels HTTP API connection (`driver = "pusher"`). The shipped config reads
/// Laravel's own variables (`PUSHER_APP_ID`, `PUSHER_APP_KEY`, `PUSHER_APP_SECRET`,
/// `PUSHER_APP_CLUSTER`, `PUSHER_HOST`, `PUSHER_PORT`, `PUSHER_SCHEME`); docs/pusher.md has
/// set-ups for Pusher, soketi, sockudo and Reverb.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PusherConfig {
    /// `PUSHER_APP_ID`. Required when the connection is used.
    #[serde(deserialize_with = "super::de::lenient::string")]
    pub app_id: String,
    /// `PUSHER_APP_KEY` (public). Required when the connection is used.
    #[serde(deserialize_with = "super::de::lenient::string")]
    pub key: String,
    /// `PUSHER_APP_SECRET`: signs every request; never printed. Required when used.
    pub secret: Secret,
    /// `PUSHER_APP_CLUSTER`: with no `host`, requests go to `api-{cluster}.pusher.com`.
    #[serde(deserialize_with = "super::de::lenient::string")]
    pub cluster: String,
    /// `PUSHER_HOST`: a host name or address (no scheme, no path) for soketi, sockudo, Reverb.
    #[serde(deserialize_with = "super::de::lenient::string")]
    pub host: String,
    /// `PUSHER_PORT`; empty means the scheme's default.
    #[serde(with = "super::de::lenient::port")]
    pub port: Option<u16>,
    /// `PUSHER_SCHEME`: `https` (default) or `http`.
    #[serde(deserialize_with = "super::de::lenient::string")]
    pub scheme: String,
    /// 32 bytes, base64: enables `private-encrypted-*` channels (end-to-end encryption).
    pub encryption_master_key_base64: Secret,
    /// Time bound of one HTTP request, connecting included.
    #[serde(with = "super::de::duration")]
    pub timeout: Duration,
    /// Time bound of opening a connection.
    #[serde(with = "super::de::duration")]
    pub connect_timeout: Duration,
    /// Requests in flight at once on this connection, across all worker tasks of the process.
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub max_concurrent_requests: usize,
    /// Largest `data` string per event, in bytes (Pusher: 10 KB; soketi and sockudo: 100 KB).
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub max_data_bytes: usize,
    /// Largest whole HTTP request, request line and headers included, in bytes; events are
    /// packed into `/batch_events` under it, and one that alone cannot fit is dead-lettered
    /// before any request (`request_too_large`). 0: no limit. Laravel Reverb: 10000 (its
    /// `max_request_size`); Pusher, soketi, sockudo: 0 (docs/pusher.md has the presets).
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub max_request_bytes: usize,
    /// Channels per `/events` request (Pusher: 100); events with more are sent in chunks.
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub max_channels_per_request: usize,
    /// Events per `/batch_events` request (Pusher: 10).
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub max_batch_size: usize,
    /// Longest channel name, in characters (Pusher: 164; soketi 200; sockudo 100).
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub max_channel_name: usize,
    /// Longest event name, in characters (Pusher: 200).
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub max_event_name: usize,
    /// Consecutive failing requests (5xx, 429, timeouts, connection errors) that open the
    /// circuit shared by every replica; 0 disables the circuit.
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub circuit_failures: u32,
    /// How long an open circuit defers deliveries before one probe request may close it.
    #[serde(with = "super::de::duration")]
    pub circuit_open_for: Duration,
    /// Pusher messages (one per channel of an event) per second for this connection across
    /// every replica, a token bucket in Redis; beyond it deliveries are deferred (no attempt
    /// used), never dropped. 0: no rate.
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub rate_per_second: u32,
    /// The bucket's size (messages that may go at once); 0: `rate_per_second`.
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub rate_burst: u32,
    /// Messages per UTC day across every replica (a Pusher plan's cap); beyond it deliveries
    /// wait for the next day. 0: no quota.
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub daily_quota: u64,
    /// Send an `idempotency_key` per event, so servers that honour it (sockudo) drop a retried
    /// duplicate; others ignore the field.
    #[serde(deserialize_with = "super::de::lenient::boolean")]
    pub idempotency: bool,
    /// `"redis"`: a multi-app connection whose apps' credentials are read from the Redis hash
    /// `<redis.prefix>herald:pusher:apps:<connection>` (field: the app's name, value:
    /// `{"app_id":…,"key":…,"secret":…}`); an envelope names its app with `"app"`. Adding an
    /// app is one `HSET`, no restart. Empty (default): one app, `app_id`/`key`/`secret` here.
    #[serde(deserialize_with = "super::de::lenient::string")]
    pub apps: String,
    /// A directory holding one file per app, `<app>.toml` or `<app>.json`, each with `app_id`,
    /// `key` and `secret`: the file-based alternative to `apps = "redis"`.
    #[serde(deserialize_with = "super::de::lenient::string")]
    pub apps_dir: String,
    /// How long an app's credentials are used before they are read again (so a rotated secret
    /// applies without a restart).
    #[serde(with = "super::de::duration")]
    pub apps_refresh: Duration,
    /// Metrics of a multi-app connection: the first `apps_metrics_top` apps this process sends
    /// for are labelled `<connection>:<app>`, every other `<connection>:other`.
    #[serde(deserialize_with = "super::de::lenient::number")]
    pub apps_metrics_top: usize,
}

/// Where a multi-app connection reads its apps' credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AppsSource {
    /// The hash `GlobalKeys::pusher_apps(connection)`.
    Redis,
    /// One `<app>.toml` / `<app>.json` per app.
    Dir(std::path::PathBuf),
}

impl Default for PusherConfig {
    fn default() -> Self {
        PusherConfig {
            app_id: String::new(),
            key: String::new(),
            secret: Secret::default(),
            cluster: "mt1".into(),
            host: String::new(),
            port: None,
            scheme: "https".into(),
            encryption_master_key_base64: Secret::default(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_concurrent_requests: 16,
            max_data_bytes: 10 * 1024,
            max_request_bytes: 0,
            max_channels_per_request: 100,
            max_batch_size: 10,
            max_channel_name: 164,
            max_event_name: 200,
            circuit_failures: 5,
            circuit_open_for: Duration::from_secs(15),
            idempotency: true,
            rate_per_second: 0,
            rate_burst: 0,
            daily_quota: 0,
            apps: String::new(),
            apps_dir: String::new(),
            apps_refresh: Duration::from_secs(30),
            apps_metrics_top: 20,
        }
    }
}

impl PusherConfig {
    /// Where the apps of a multi-app connection come from; `None`: a single-app connection.
    pub(crate) fn apps_source(&self) -> Option<AppsSource> {
        if !self.apps_dir.is_empty() {
            Some(AppsSource::Dir(self.apps_dir.clone().into()))
        } else if self.apps == "redis" {
            Some(AppsSource::Redis)
        } else {
            None
        }
    }

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
    pub(super) fn check(&self, key: &str, used_by: Option<&str>) -> Result<(), ConfigError> {
        self.check_apps(key)?;
        if let Some(used_by) = used_by
            && self.apps_source().is_none()
        {
            self.check_credentials(key, used_by)?;
        }
        self.check_names(key)?;
        self.check_endpoint(key)?;
        self.check_encryption(key)?;
        self.check_limits(key)
    }

    /// A multi-app connection takes its credentials from its apps only, so one cannot sign for
    /// another by falling back to the template's.
    fn check_apps(&self, key: &str) -> Result<(), ConfigError> {
        if !self.apps.is_empty() && self.apps != "redis" {
            return Err(invalid(
                format!("{key}.apps"),
                format!(
                    "{:?} is not a source of apps: use \"redis\", or apps_dir for files",
                    self.apps
                ),
            ));
        }
        if !self.apps.is_empty() && !self.apps_dir.is_empty() {
            return Err(invalid(
                format!("{key}.apps_dir"),
                "set either apps = \"redis\" or apps_dir, not both",
            ));
        }
        if self.apps_source().is_none() {
            return Ok(());
        }
        for (field, empty) in [
            ("app_id", self.app_id.is_empty()),
            ("key", self.key.is_empty()),
            ("secret", self.secret.is_empty()),
        ] {
            if !empty {
                return Err(invalid(
                    format!("{key}.{field}"),
                    "must be empty on a multi-app connection (apps or apps_dir): each app's \
                     credentials come from its own entry",
                ));
            }
        }
        if self.apps_refresh.is_zero() {
            return Err(invalid(format!("{key}.apps_refresh"), "must be above zero"));
        }
        Ok(())
    }

    fn check_credentials(&self, key: &str, used_by: &str) -> Result<(), ConfigError> {
        for (field, empty, var) in [
            ("app_id", self.app_id.is_empty(), "PUSHER_APP_ID"),
            ("key", self.key.is_empty(), "PUSHER_APP_KEY"),
            ("secret", self.secret.is_empty(), "PUSHER_APP_SECRET"),
        ] {
            if empty {
                return Err(invalid(
                    format!("{key}.{field}"),
                    format!(
                        "must be set ({var} in the shipped config) because {used_by} uses this connection"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// app_id and key go into the URL and the signed query unescaped, as the official libraries
    /// send them.
    fn check_names(&self, key: &str) -> Result<(), ConfigError> {
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
        Ok(())
    }

    fn check_endpoint(&self, key: &str) -> Result<(), ConfigError> {
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
        Ok(())
    }

    fn check_encryption(&self, key: &str) -> Result<(), ConfigError> {
        if self.encryption_master_key_base64.is_empty() {
            return Ok(());
        }
        use base64::Engine as _;
        let len = base64::engine::general_purpose::STANDARD
            .decode(self.encryption_master_key_base64.expose().trim())
            .map(|k| k.len());
        if len != Ok(32) {
            return Err(invalid(
                format!("{key}.encryption_master_key_base64"),
                "must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)",
            ));
        }
        Ok(())
    }

    fn check_limits(&self, key: &str) -> Result<(), ConfigError> {
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
        if self.max_request_bytes > 0 && self.max_request_bytes < MIN_REQUEST_BYTES {
            return Err(invalid(
                format!("{key}.max_request_bytes"),
                format!(
                    "must be 0 (no limit) or at least {MIN_REQUEST_BYTES}: the request line and \
                     headers alone take several hundred bytes"
                ),
            ));
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
