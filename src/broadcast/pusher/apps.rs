//! Multi-app connections (`apps = "redis"` or `apps_dir`): one connection, many Pusher apps.
//!
//! Owns: reading one app's credentials (`app_id`, `key`, `secret`) from the Redis hash
//! `GlobalKeys::pusher_apps(connection)` or from `<apps_dir>/<app>.toml|json`, keeping them for
//! `apps_refresh` (so a rotated secret applies without a restart), the errors an envelope's app
//! can meet (`missing_app`, fatal; `unknown_app` and `bad_app`, retryable), and the one rule
//! that keeps metric labels bounded ([`Labels`]). Does not own: sending (`super`), which builds
//! one circuit and one budget per app and signs every request with exactly its app's secret.
//!
//! An app that is not (yet) in the hash or directory is retried with backoff: adding it is one
//! `HSET`, and the next retry after that delivers. Nothing is cached for an unknown app.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::size;
use crate::config::{AppsSource, Secret};
use crate::delivery::DeliveryError;
use crate::queue::{GlobalKeys, NO_QUEUE, Redis};

/// What signs and addresses one app's requests.
pub(crate) struct Creds {
    /// `/apps/<app_id>`.
    pub app_path: String,
    pub key: String,
    pub secret: Secret,
    /// Body bytes a request may carry under `max_request_bytes` ([`size::body_budget`]).
    pub body_budget: Option<usize>,
    /// app_id, key and secret are all set.
    pub configured: bool,
}

impl Creds {
    /// `host`: `host:port` as sent in the `Host` header (for the request-size budget).
    pub(crate) fn new(
        app_id: &str,
        key: &str,
        secret: Secret,
        host: &str,
        max_request_bytes: usize,
    ) -> Creds {
        let app_path = format!("/apps/{app_id}");
        let overhead = size::overhead(&app_path, key, host);
        Creds {
            body_budget: size::body_budget(max_request_bytes, overhead),
            configured: !app_id.is_empty() && !key.is_empty() && !secret.is_empty(),
            app_path,
            key: key.to_string(),
            secret,
        }
    }
}

/// One app's entry, in the hash (JSON) or a file (TOML or JSON).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    app_id: Id,
    key: String,
    secret: Secret,
}

/// Pusher app ids are numbers on Pusher and strings elsewhere: both are accepted.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

impl Id {
    fn text(self) -> String {
        match self {
            Id::Text(s) => s,
            Id::Number(n) => n.to_string(),
        }
    }
}

/// The fatal outcome of an envelope routed to a multi-app connection without `"app"`.
pub(crate) fn missing_app(connection: &str) -> DeliveryError {
    DeliveryError::Invalid {
        code: "missing_app",
        reason: format!(
            "connection {connection:?} serves many apps: the envelope must name one with \
             \"app\" (e.g. \"app\": \"acme\")"
        ),
    }
}

/// Where a multi-app connection's credentials are, and the ones read lately.
pub(crate) struct Directory {
    connection: String,
    source: Source,
    refresh: Duration,
    /// `host:port` (for the request-size budget) and `max_request_bytes`.
    host: String,
    max_request_bytes: usize,
    fresh: Mutex<HashMap<String, (Instant, Arc<Creds>)>>,
}

enum Source {
    /// `HGET <key> <app>`.
    Redis {
        redis: Redis,
        key: String,
    },
    Dir(PathBuf),
}

impl Directory {
    pub(crate) fn new(
        connection: &str,
        source: AppsSource,
        redis: Redis,
        keys: &GlobalKeys,
        refresh: Duration,
        (host, max_request_bytes): (&str, usize),
    ) -> Directory {
        Directory {
            connection: connection.to_string(),
            source: match source {
                AppsSource::Redis => Source::Redis {
                    redis,
                    key: keys.pusher_apps(connection),
                },
                AppsSource::Dir(dir) => Source::Dir(dir),
            },
            refresh,
            host: host.to_string(),
            max_request_bytes,
            fresh: Mutex::new(HashMap::new()),
        }
    }

    /// `app`'s credentials: kept ones younger than `apps_refresh`, else read now.
    pub(crate) async fn get(&self, app: &str) -> Result<Arc<Creds>, DeliveryError> {
        if let Some((at, creds)) = self.lock().get(app)
            && at.elapsed() < self.refresh
        {
            return Ok(creds.clone());
        }
        let entry = self.read(app).await;
        let mut fresh = self.lock();
        match entry {
            Ok(Some((app_id, key, secret))) => {
                let creds = Arc::new(Creds::new(
                    &app_id,
                    &key,
                    secret,
                    &self.host,
                    self.max_request_bytes,
                ));
                fresh.insert(app.to_string(), (Instant::now(), creds.clone()));
                Ok(creds)
            }
            Ok(None) => {
                // Removed (or never there): never keep signing with what it had.
                fresh.remove(app);
                Err(DeliveryError::Unavailable {
                    code: "unknown_app",
                    reason: format!(
                        "connection {:?} has no app {app:?} ({}); retried with backoff until \
                         it is added",
                        self.connection,
                        self.where_()
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<Creds>)>> {
        self.fresh.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn where_(&self) -> String {
        match &self.source {
            Source::Redis { key, .. } => format!("no field of that name in the hash {key}"),
            Source::Dir(dir) => format!("no .toml or .json of that name in {}", dir.display()),
        }
    }

    /// Reads `app`'s entry; `None` when there is none.
    async fn read(&self, app: &str) -> Result<Option<(String, String, Secret)>, DeliveryError> {
        let bad = |reason: String| DeliveryError::Unavailable {
            code: "bad_app",
            reason: format!("connection {:?}, app {app:?}: {reason}", self.connection),
        };
        let entry: Entry = match &self.source {
            Source::Redis { redis, key } => {
                let mut cmd = redis::cmd("HGET");
                cmd.arg(key).arg(app);
                let text: Option<String> = redis
                    .run(NO_QUEUE, "pusher_app", &cmd)
                    .await
                    .map_err(|e| DeliveryError::Redis(e.to_string()))?;
                let Some(text) = text else { return Ok(None) };
                // serde_json's message names the place, never the value.
                serde_json::from_str(&text).map_err(|e| {
                    bad(format!(
                        "the hash's value is not {{\"app_id\",\"key\",\"secret\"}}: {e}"
                    ))
                })?
            }
            Source::Dir(dir) => {
                let mut found = None;
                for ext in ["toml", "json"] {
                    let path = dir.join(format!("{app}.{ext}"));
                    // A small local file, read at most once per app per `apps_refresh`.
                    match std::fs::read_to_string(&path) {
                        Ok(text) => {
                            found = Some((ext, text, path));
                            break;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(bad(format!("{}: {e}", path.display()))),
                    }
                }
                let Some((ext, text, path)) = found else {
                    return Ok(None);
                };
                let parsed = if ext == "toml" {
                    toml::from_str(&text).map_err(|e| e.message().to_string())
                } else {
                    serde_json::from_str(&text).map_err(|e| e.to_string())
                };
                parsed.map_err(|e| bad(format!("{}: {e}", path.display())))?
            }
        };
        let Entry {
            app_id,
            key,
            secret,
        } = entry;
        let app_id = app_id.text();
        for (field, value) in [("app_id", &app_id), ("key", &key)] {
            let ok = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(bad(format!(
                    "{field} must be non-empty, of A-Z a-z 0-9 - _ ."
                )));
            }
        }
        if secret.is_empty() {
            return Err(bad("secret must not be empty".into()));
        }
        Ok(Some((app_id, key, secret)))
    }
}

/// The metric label of each app of one multi-app connection, bounded: the first `top` apps this
/// process sends for are `<connection>:<app>`, every later one `<connection>:other`. A label
/// once given is kept until the process stops, so a series never moves between labels (which
/// would break `rate()`) and a connection never has more than `top + 1` label values.
pub(crate) struct Labels {
    connection: String,
    top: usize,
    named: Mutex<HashSet<String>>,
}

impl Labels {
    pub(crate) fn new(connection: &str, top: usize) -> Labels {
        Labels {
            connection: connection.to_string(),
            top,
            named: Mutex::new(HashSet::new()),
        }
    }

    /// The label of `app`; called once per app (its state is kept with the label).
    pub(crate) fn label(&self, app: &str) -> String {
        let mut named = self.named.lock().unwrap_or_else(|p| p.into_inner());
        if named.contains(app) || named.len() < self.top && named.insert(app.to_string()) {
            format!("{}:{app}", self.connection)
        } else {
            format!("{}:other", self.connection)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded_and_stable() {
        let labels = Labels::new("tenants", 2);
        assert_eq!(labels.label("a"), "tenants:a");
        assert_eq!(labels.label("b"), "tenants:b");
        assert_eq!(labels.label("c"), "tenants:other");
        assert_eq!(labels.label("a"), "tenants:a");
        let all: HashSet<String> = (0..100).map(|i| labels.label(&format!("x{i}"))).collect();
        assert_eq!(all, HashSet::from(["tenants:other".to_string()]));
        assert_eq!(Labels::new("t", 0).label("a"), "t:other");
    }

    #[test]
    fn entries_take_numeric_app_ids_and_refuse_unknown_fields() {
        let e: Entry = serde_json::from_str(r#"{"app_id":42,"key":"k","secret":"s"}"#).unwrap();
        assert_eq!(e.app_id.text(), "42");
        assert!(
            serde_json::from_str::<Entry>(r#"{"app_id":"1","key":"k","secret":"s","x":1}"#)
                .is_err()
        );
        let e: Entry = toml::from_str("app_id = \"a\"\nkey = \"k\"\nsecret = \"s\"\n").unwrap();
        assert_eq!(e.app_id.text(), "a");
    }

    #[tokio::test]
    async fn a_directory_serves_toml_and_json_and_refuses_bad_entries() {
        let dir = std::env::temp_dir().join(format!("herald-apps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("a.toml"),
            "app_id = \"1\"\nkey = \"ka\"\nsecret = \"secret-of-a\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("b.json"),
            r#"{"app_id":2,"key":"kb","secret":"sb"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("c.json"),
            r#"{"app_id":"3","key":"bad key","secret":"s"}"#,
        )
        .unwrap();
        let redis = Redis::open_url("redis://127.0.0.1:1", 1).unwrap();
        let d = Directory::new(
            "tenants",
            AppsSource::Dir(dir.clone()),
            redis,
            &GlobalKeys::new(""),
            Duration::from_secs(30),
            ("h:80", 0),
        );
        let a = d.get("a").await.unwrap();
        assert_eq!((a.app_path.as_str(), a.key.as_str()), ("/apps/1", "ka"));
        assert_eq!(a.secret.expose(), "secret-of-a");
        assert_eq!(d.get("b").await.unwrap().app_path, "/apps/2");
        let e = d.get("c").await.err().unwrap();
        assert_eq!(e.code(), "bad_app");
        assert!(e.is_retryable());
        let e = d.get("nope").await.err().unwrap();
        assert_eq!(e.code(), "unknown_app");
        assert!(e.is_retryable());
        assert!(!e.to_string().contains("secret-of-a"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
