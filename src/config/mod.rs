//! Configuration: `config/herald.toml` → `${VAR}` expansion → environment overrides → typed,
//! checked [`Config`].
//!
//! Owns: reading the file, turning it into typed values once (durations, addresses, channel
//! templates, secrets), the checks that span sections (every connection and listener a setting
//! names exists), errors that name the key (and the environment variable that set it), and the
//! masked view `check-config` prints. Does not own: acting on any of it (each stage reads its
//! own section).
//!
//! Files: one per section (`redis`, `worker`, `retry`, `limits`, `failed`, `admin` for
//! `[metrics]` and `[admin]`, `broadcasting` with `pusher`, `listeners`, `events`), each with its
//! own checks;
//! `env` (`${VAR}` and the overrides), `de` (serde helpers), `secret` (values that never print).
//!
//! Order of precedence, lowest first: built-in defaults, the file, `${VAR}` expansion inside the
//! file, the environment overrides listed in [`ENV_OVERRIDES`].

mod admin;
mod broadcasting;
mod de;
mod env;
mod events;
mod failed;
mod limits;
mod listeners;
mod pusher;
mod redis;
mod retry;
mod secret;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use admin::{AdminConfig, MetricsConfig};
pub use broadcasting::{BroadcastingConfig, ConnectionConfig, RedisConnectionConfig};
pub use env::{ENV_OVERRIDES, EnvOverride};
pub use events::EventConfig;
pub use failed::FailedConfig;
pub use limits::LimitsConfig;
pub use listeners::{ForwardConfig, ListenerConfig, WebhookConfig};
pub(crate) use pusher::AppsSource;
pub use pusher::PusherConfig;
pub use redis::{RedisConfig, RedisMode};
pub use retry::{RetryConfig, RetryOverride};
pub use secret::{RedisUrl, Secret, mask_url_password};
pub use worker::{UnknownEvents, WorkerConfig};

/// Default config file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/herald.toml";

/// Why the configuration cannot be used. Each names the file, key or variable involved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the TOML parser said, with the line.
        message: String,
    },
    /// A setting has a value herald cannot use.
    #[error("{key}: {message}")]
    Invalid {
        /// The setting, e.g. `worker.concurrency` or `events."E".channels[0]`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// An environment variable set a value herald cannot use.
    #[error("{var} ({key}): {message}")]
    Env {
        /// The variable, e.g. `HERALD_CONCURRENCY`.
        var: &'static str,
        /// The setting it sets.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The key of registry entry `event`, quoted because event names hold `\` and `.`.
fn event_key(event: &str) -> String {
    format!("events.{event:?}")
}

/// The whole configuration, typed and checked. Field docs are the reference for
/// `config/herald.toml`. `Debug` and `Serialize` show secrets as `****`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[redis]`: where the queues live.
    pub redis: RedisConfig,
    /// `[worker]`: queues, tasks, batches, timeouts.
    pub worker: WorkerConfig,
    /// `[limits]`: input limits.
    pub limits: LimitsConfig,
    /// `[retry]`: the retry policy.
    pub retry: RetryConfig,
    /// `[failed]`: the dead-letter store.
    pub failed: FailedConfig,
    /// `[metrics]`: the operator HTTP endpoint.
    pub metrics: MetricsConfig,
    /// `[admin]`: the dashboard and admin API on the metrics address.
    pub admin: AdminConfig,
    /// `[broadcasting]`: broadcast connections.
    pub broadcasting: BroadcastingConfig,
    /// Listeners by name, referenced from `events.*.listeners`.
    pub listeners: BTreeMap<String, ListenerConfig>,
    /// The registry (Laravel's `$listen`): event name or `*` pattern → what happens to it.
    pub events: BTreeMap<String, EventConfig>,
}

impl Config {
    /// Reads `path`, expands `${VAR}`, applies the environment overrides and checks.
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
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        env::expand_table(&mut table, "", env)?;
        let from_env = env::apply_overrides(&mut table, env)?;
        let mut config = typed(table).map_err(|e| from_env.blame(e))?;
        // The built-in connections (redis, log, null) stay available when a file declares only
        // its own (say, pusher); a connection of the same name replaces the built-in one.
        for (name, c) in broadcasting::builtin_connections() {
            config.broadcasting.connections.entry(name).or_insert(c);
        }
        config.check().map_err(|e| from_env.blame(e))?;
        Ok(config)
    }

    /// Checks everything that can be checked without connecting anywhere.
    pub fn check(&self) -> Result<(), ConfigError> {
        let prefix = &self.redis.prefix;
        if !crate::queue::QueueKeys::new(prefix, "q").is_cluster_safe() {
            return Err(invalid(
                "redis.prefix",
                format!("{prefix:?}: a `}}` outside a `{{tag}}` cannot share a hash slot"),
            ));
        }
        self.redis.check()?;
        self.worker.check(prefix)?;
        self.retry.check("retry")?;
        self.limits.check()?;
        self.admin.check()?;
        self.check_connections()?;
        for (name, l) in &self.listeners {
            l.check(name, &self.worker.queues)?;
        }
        for (event, e) in &self.events {
            e.check(event, &self.retry)?;
        }
        Ok(())
    }

    /// Every connection a setting names exists; every Pusher connection is usable, with its
    /// credentials when something routes events to it.
    fn check_connections(&self) -> Result<(), ConfigError> {
        self.check_known_connections(&self.broadcasting.default, "broadcasting.default")?;
        for (event, e) in &self.events {
            if let Some(c) = &e.connections {
                let key = format!("{}.connections", event_key(event));
                self.check_known_connections(c, &key)?;
            }
        }
        for (name, c) in &self.broadcasting.connections {
            if let ConnectionConfig::Pusher(p) = c {
                let key = format!("broadcasting.connections.{name}");
                p.check(&key, self.used_by(name).as_deref())?;
            }
        }
        Ok(())
    }

    fn check_known_connections(&self, names: &[String], key: &str) -> Result<(), ConfigError> {
        let connections = &self.broadcasting.connections;
        match names.iter().find(|n| !connections.contains_key(*n)) {
            None => Ok(()),
            Some(n) => Err(invalid(
                key,
                format!(
                    "unknown broadcast connection {n:?} (configured: {})",
                    list(connections.keys())
                ),
            )),
        }
    }

    /// A setting that routes events to connection `name`, if any.
    pub(crate) fn used_by(&self, name: &str) -> Option<String> {
        if self.broadcasting.default.iter().any(|d| d == name) {
            return Some("broadcasting.default".to_string());
        }
        self.events
            .iter()
            .find(|(_, e)| e.connections.iter().flatten().any(|c| c == name))
            .map(|(event, _)| format!("{}.connections", event_key(event)))
    }

    /// Checks that every listener the registry names exists, among the configured ones and
    /// `extra` (listeners a program embedding herald registered in code).
    pub fn check_listener_names(&self, extra: &[&str]) -> Result<(), ConfigError> {
        for (event, e) in &self.events {
            for l in &e.listeners {
                if !self.listeners.contains_key(l) && !extra.contains(&l.as_str()) {
                    return Err(self.unknown_listener(event, l, extra));
                }
            }
        }
        Ok(())
    }

    /// The error for listener `name`, named by entry `event` but configured nowhere.
    pub(crate) fn unknown_listener(&self, event: &str, name: &str, extra: &[&str]) -> ConfigError {
        let mut names: Vec<&str> = self.listeners.keys().map(String::as_str).collect();
        names.extend(extra);
        invalid(
            format!("{}.listeners", event_key(event)),
            format!("unknown listener {name:?} (configured: {})", list(names)),
        )
    }

    /// The effective configuration as TOML, every secret shown as `****`.
    pub fn to_masked_toml(&self) -> String {
        let mut v = toml::Value::try_from(self).expect("config serializes");
        mask_url_passwords(&mut v);
        toml::to_string_pretty(&v).expect("config serializes")
    }
}

/// The file's table as a [`Config`], an error naming the key it is about.
fn typed(table: toml::Table) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = key_of(e.path());
        invalid(
            if key.is_empty() { "config" } else { &key },
            e.inner().message(),
        )
    })
}

/// A serde path as a config key: `worker.concurrency`, `events."E".channels[0]`.
fn key_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let mut after_events = false;
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                if after_events {
                    out.push_str(&format!("{key:?}"));
                } else {
                    out.push_str(key);
                }
                after_events = out == "events";
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// URL passwords anywhere in the masked view (a webhook URL with credentials).
fn mask_url_passwords(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| mask_url_passwords(v)),
        toml::Value::Array(a) => a.iter_mut().for_each(mask_url_passwords),
        toml::Value::String(s) => *s = mask_url_password(s),
        _ => {}
    }
}

fn list<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> String {
    let v: Vec<String> = names.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
