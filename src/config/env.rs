//! The environment: `${VAR}` and `${VAR:-default}` inside the file, and the variables that
//! override single settings ([`ENV_OVERRIDES`]).
//!
//! Owns: expansion (a string that is exactly one `${…}` takes its key's type), reading each
//! override's value as its setting's kind, and the errors that name the variable and the key it
//! sets (`HERALD_CONCURRENCY (worker.concurrency): expected a positive integer, got "abc"`).
//! Does not own: what a setting means (its section).

use super::secret::{is_secret_key, mask_url_password};
use super::{Config, ConfigError, RedisUrl, invalid};

/// How an override's value is read.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Any text.
    Text,
    /// Any text, never shown in an error (the setting checks it).
    Secret,
    /// A Redis URL.
    RedisUrl,
    /// A comma-separated list of names.
    List,
    /// A comma-separated list of Redis URLs.
    RedisUrls,
    /// A comma-separated list of broadcast connections. `herald` is left out: it is what a
    /// Laravel 11+ app sharing herald's `.env` sets (`BROADCAST_CONNECTION=herald`, its own
    /// driver), and herald has no connection of that name; a list of nothing else sets nothing.
    Connections,
    /// An integer of at least 1.
    Count,
    /// `"500ms"`, `"25s"`, `"5m"`, or a number of seconds.
    Duration,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// `host:port`, or empty for none.
    Addr,
}

/// An environment variable that overrides one setting.
#[derive(Debug)]
pub struct EnvOverride {
    /// The variable, e.g. `HERALD_CONCURRENCY`.
    pub var: &'static str,
    /// The setting it replaces, e.g. `worker.concurrency`.
    pub key: &'static str,
    /// What it is for, for humans.
    pub meaning: &'static str,
    kind: Kind,
}

const fn env(
    var: &'static str,
    key: &'static str,
    kind: Kind,
    meaning: &'static str,
) -> EnvOverride {
    EnvOverride {
        var,
        key,
        meaning,
        kind,
    }
}

/// Environment variables that override single settings, applied after the file.
pub const ENV_OVERRIDES: &[EnvOverride] = &[
    env(
        "REDIS_URL",
        "redis.url",
        Kind::RedisUrl,
        "Redis to consume from",
    ),
    env(
        "REDIS_MODE",
        "redis.mode",
        Kind::Choice(&["standalone", "cluster", "sentinel"]),
        "standalone | cluster | sentinel",
    ),
    env(
        "REDIS_NODES",
        "redis.nodes",
        Kind::RedisUrls,
        "cluster seed nodes, or sentinels, comma-separated URLs",
    ),
    env(
        "REDIS_SENTINEL_MASTER",
        "redis.master_name",
        Kind::Text,
        "the primary's name as the sentinels know it",
    ),
    env(
        "REDIS_USERNAME",
        "redis.username",
        Kind::Text,
        "the data nodes' ACL user (every mode)",
    ),
    env(
        "REDIS_PASSWORD",
        "redis.password",
        Kind::Secret,
        "the data nodes' password (every mode)",
    ),
    env(
        "REDIS_PREFIX",
        "redis.prefix",
        Kind::Text,
        "prefix for every key and published channel",
    ),
    env(
        "HERALD_QUEUE",
        "worker.queues",
        Kind::List,
        "queue list key(s), comma-separated",
    ),
    env(
        "HERALD_CONCURRENCY",
        "worker.concurrency",
        Kind::Count,
        "worker tasks per queue",
    ),
    env(
        "HERALD_BATCH_SIZE",
        "worker.batch_size",
        Kind::Count,
        "envelopes reserved per round trip",
    ),
    env(
        "HERALD_SHUTDOWN_TIMEOUT",
        "worker.shutdown_timeout",
        Kind::Duration,
        "drain time on SIGTERM",
    ),
    env(
        "HERALD_UNKNOWN_EVENTS",
        "worker.unknown_events",
        Kind::Choice(&["broadcast", "reject"]),
        "broadcast | reject",
    ),
    env(
        "HERALD_MAX_ATTEMPTS",
        "retry.max_attempts",
        Kind::Count,
        "attempts per delivery",
    ),
    env(
        "HERALD_METRICS_ADDR",
        "metrics.addr",
        Kind::Addr,
        "address of /metrics, /healthz, /readyz, the dashboard and the admin API",
    ),
    env(
        "HERALD_ADMIN_TOKEN",
        "admin.token",
        Kind::Secret,
        "bearer token of the dashboard and admin API",
    ),
    env(
        "BROADCAST_CONNECTION",
        "broadcasting.default",
        Kind::Connections,
        "default connection(s), comma-separated",
    ),
];

/// The settings the environment set, to name the variable in a later error about them.
#[derive(Default)]
pub(super) struct FromEnv(Vec<&'static EnvOverride>);

impl FromEnv {
    /// `err`, naming the variable when its key was set by one.
    pub(super) fn blame(&self, err: ConfigError) -> ConfigError {
        let ConfigError::Invalid { key, message } = err else {
            return err;
        };
        let sets = |o: &&&EnvOverride| key == o.key || key.starts_with(&format!("{}.", o.key));
        match self.0.iter().find(sets) {
            Some(o) => ConfigError::Env {
                var: o.var,
                key,
                message,
            },
            None => ConfigError::Invalid { key, message },
        }
    }
}

/// Applies every override that `env` has a value for, each read as its setting's kind.
pub(super) fn apply_overrides(
    table: &mut toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<FromEnv, ConfigError> {
    let mut from = FromEnv::default();
    for o in ENV_OVERRIDES {
        let Some(raw) = env(o.var) else { continue };
        let only_laravel = names(&raw).next().is_some() && names(&raw).all(|n| n == LARAVEL_DRIVER);
        if matches!(o.kind, Kind::Connections) && only_laravel {
            continue;
        }
        let value = read(o.kind, &raw).map_err(|message| ConfigError::Env {
            var: o.var,
            key: o.key.to_string(),
            message,
        })?;
        set_path(table, o.key, value);
        from.0.push(o);
    }
    Ok(from)
}

/// The name of herald's driver in a Laravel app's `BROADCAST_CONNECTION`.
const LARAVEL_DRIVER: &str = "herald";

/// The names of a comma-separated list, trimmed, empty ones left out.
fn names(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `raw` as a TOML value of `kind`, or what was expected instead.
fn read(kind: Kind, raw: &str) -> Result<toml::Value, String> {
    let text = raw.trim();
    let got = |expected: &str| format!("expected {expected}, got {raw:?}");
    Ok(match kind {
        Kind::Text | Kind::Secret => toml::Value::String(raw.to_string()),
        Kind::RedisUrl => match RedisUrl::parse(text) {
            Ok(_) => toml::Value::String(text.to_string()),
            Err(_) => {
                return Err(format!(
                    "expected a redis:// or rediss:// URL, got {:?}",
                    mask_url_password(raw)
                ));
            }
        },
        Kind::List => toml::Value::Array(names(raw).map(toml::Value::from).collect()),
        Kind::RedisUrls => {
            let mut urls = Vec::new();
            for url in names(raw) {
                read(Kind::RedisUrl, url)?;
                urls.push(toml::Value::from(url));
            }
            toml::Value::Array(urls)
        }
        Kind::Connections => toml::Value::Array(
            names(raw)
                .filter(|n| *n != LARAVEL_DRIVER)
                .map(toml::Value::from)
                .collect(),
        ),
        Kind::Count => match text.parse::<i64>() {
            Ok(n) if n >= 1 => toml::Value::Integer(n),
            _ => return Err(got("a positive integer")),
        },
        Kind::Duration => {
            let secs = text.parse::<u64>().is_ok();
            if !secs && humantime::parse_duration(text).is_err() {
                return Err(got("a duration like \"25s\" or \"500ms\""));
            }
            toml::Value::String(text.to_string())
        }
        Kind::Choice(words) => {
            if !words.contains(&text) {
                return Err(got(&format!("one of {}", words.join(", "))));
            }
            toml::Value::String(text.to_string())
        }
        Kind::Addr => match super::de::addr::parse(text) {
            Ok(_) => toml::Value::String(text.to_string()),
            Err(_) => return Err(got("an address like 127.0.0.1:9477, or empty to disable")),
        },
    })
}

/// Expands `${VAR}` / `${VAR:-default}` in every string of the table. A string that is exactly
/// one expansion takes the type its key has (see [`typed_for`]), so
/// `concurrency = "${HERALD_CONCURRENCY:-4}"` works and `secret = "${SECRET}"` stays the exact
/// string even when the secret is `0123`.
pub(super) fn expand_table(
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
                let secret = is_secret_key(key);
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
pub(super) fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
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

pub(super) fn set_path(t: &mut toml::Table, path: &str, v: toml::Value) {
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
