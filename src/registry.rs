//! Routing: which deliveries an envelope gets (Laravel's `$listen`, in config).
//!
//! Owns: matching an event name against exact names and `*` patterns, channel templates over
//! `data` (`orders.{order_id}`), `broadcast_as`, per-event connections and retry policy, the
//! unknown-event policy, and filtering by an envelope's `pending` list. Produces a [`Plan`].
//! Does not own: running deliveries (`listeners`, `broadcast`) or decoding (`envelope`).
//!
//! When several entries match, listeners and channels add up (the exact name first, then
//! patterns from the most specific); `broadcast_as`, `connections` and `retry` come from the most
//! specific entry that sets them, where the exact name beats every pattern and a longer pattern
//! beats a shorter one.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::config::{Config, ConfigError, RetryConfig, UnknownEvents};
use crate::delivery::DeliveryId;
use crate::envelope::{Envelope, Rejection, validate_channel};
use crate::template::Template;

/// A listener of the process's delivery table, by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ListenerIx(pub(crate) usize);

/// A broadcast connection of the process's delivery table, by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConnectionIx(pub(crate) usize);

/// `*` matches any run of characters (Laravel's `Str::is`).
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*` at all: exact
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One registry entry, resolved against the configured listeners and connections.
#[derive(Debug)]
struct Entry {
    listeners: Vec<ListenerIx>,
    connections: Option<Vec<ConnectionIx>>,
    templates: Vec<Template>,
    broadcast_as: Option<String>,
    retry: Option<Arc<RetryConfig>>,
}

/// What to do for one envelope.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// The name to broadcast under: `broadcast_as`, or the event name.
    pub(crate) name: String,
    /// Every channel: the envelope's, then the registry's rendered templates, without repeats.
    pub(crate) channels: Vec<String>,
    /// Listeners to run.
    pub(crate) listeners: Vec<ListenerIx>,
    /// Broadcast connections to use; empty when there are no channels.
    pub(crate) connections: Vec<ConnectionIx>,
    /// Retry policy for these deliveries.
    pub(crate) retry: Arc<RetryConfig>,
    /// Whether the registry had an entry for the event (a metric label only when it did).
    pub(crate) known: bool,
}

/// The event registry. Built once at start-up from the delivery table's ids (so plans index
/// that table); immutable afterwards.
#[derive(Debug)]
pub(crate) struct Registry {
    exact: HashMap<String, usize>,
    /// Patterns, most specific (longest) first.
    patterns: Vec<(String, usize)>,
    entries: Vec<Entry>,
    listeners: Vec<DeliveryId>,
    connections: Vec<DeliveryId>,
    default_connections: Vec<ConnectionIx>,
    default_retry: Arc<RetryConfig>,
    unknown: UnknownEvents,
    max_channel_name: usize,
}

impl Registry {
    /// Resolves the config's registry against the deliveries a process has: `listeners` and
    /// `connections` are the delivery table's ids, in its order.
    pub(crate) fn new(
        config: &Config,
        listeners: Vec<DeliveryId>,
        connections: Vec<DeliveryId>,
    ) -> Result<Registry, ConfigError> {
        let mut registry = Registry {
            exact: HashMap::new(),
            patterns: Vec::new(),
            entries: Vec::new(),
            default_connections: Vec::new(),
            listeners,
            connections,
            default_retry: Arc::new(config.retry.clone()),
            unknown: config.worker.unknown_events,
            max_channel_name: config.limits.max_channel_name,
        };
        registry.default_connections = config
            .broadcasting
            .default
            .iter()
            .map(|n| registry.connection(n, "broadcasting.default"))
            .collect::<Result<_, _>>()?;
        for (name, e) in &config.events {
            let entry = registry.entry(config, name, e)?;
            let idx = registry.entries.len();
            registry.entries.push(entry);
            if name.contains('*') {
                registry.patterns.push((name.clone(), idx));
            } else {
                registry.exact.insert(name.clone(), idx);
            }
        }
        registry
            .patterns
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Ok(registry)
    }

    fn entry(
        &self,
        config: &Config,
        name: &str,
        e: &crate::config::EventConfig,
    ) -> Result<Entry, ConfigError> {
        let listener = |n: &String| {
            self.listener_ix(n).ok_or_else(|| {
                let extra: Vec<&str> = self.listeners.iter().map(DeliveryId::name).collect();
                config.unknown_listener(name, n, &extra)
            })
        };
        let key = format!("events.{name:?}.connections");
        Ok(Entry {
            listeners: e.listeners.iter().map(listener).collect::<Result<_, _>>()?,
            connections: match &e.connections {
                Some(c) => Some(
                    c.iter()
                        .map(|n| self.connection(n, &key))
                        .collect::<Result<_, _>>()?,
                ),
                None => None,
            },
            templates: e.channels.clone(),
            broadcast_as: e.broadcast_as.clone(),
            retry: e.retry.as_ref().map(|r| Arc::new(config.retry.with(r))),
        })
    }

    fn listener_ix(&self, name: &str) -> Option<ListenerIx> {
        self.listeners
            .iter()
            .position(|d| d.name() == name)
            .map(ListenerIx)
    }

    fn connection_ix(&self, name: &str) -> Option<ConnectionIx> {
        self.connections
            .iter()
            .position(|d| d.name() == name)
            .map(ConnectionIx)
    }

    fn connection(&self, name: &str, key: &str) -> Result<ConnectionIx, ConfigError> {
        self.connection_ix(name)
            .ok_or_else(|| ConfigError::Invalid {
                key: key.to_string(),
                message: format!("unknown broadcast connection {name:?}"),
            })
    }

    /// Every delivery of `plan`, listeners first.
    pub(crate) fn deliveries<'a>(
        &'a self,
        plan: &'a Plan,
    ) -> impl Iterator<Item = DeliveryId> + 'a {
        let listeners = plan.listeners.iter().map(|l| self.listeners[l.0].clone());
        let connections = plan
            .connections
            .iter()
            .map(|c| self.connections[c.0].clone());
        listeners.chain(connections)
    }

    /// Decides the deliveries for `env`, restricted to its `pending` list when it has one.
    pub(crate) fn plan(&self, env: &Envelope) -> Result<Plan, Rejection> {
        let matched: Vec<&Entry> = self
            .exact
            .get(&env.event)
            .into_iter()
            .chain(
                self.patterns
                    .iter()
                    .filter(|(p, _)| glob_match(p, &env.event))
                    .map(|(_, i)| i),
            )
            .map(|&i| &self.entries[i])
            .collect();
        let known = !matched.is_empty();
        if !known && self.unknown == UnknownEvents::Reject {
            return Err(Rejection::UnknownEvent(env.event.clone()));
        }

        let mut channels = env.channels.clone();
        if matched.iter().any(|e| !e.templates.is_empty()) {
            let data: Value = if matched
                .iter()
                .any(|e| e.templates.iter().any(Template::has_fields))
            {
                serde_json::from_str(env.data.get()).unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            for t in matched.iter().flat_map(|e| &e.templates) {
                let c = t.render(&data)?;
                validate_channel(&c, self.max_channel_name)?;
                if !channels.contains(&c) {
                    channels.push(c);
                }
            }
        }

        let mut listeners: Vec<ListenerIx> = Vec::new();
        for &l in matched.iter().flat_map(|e| &e.listeners) {
            if !listeners.contains(&l) {
                listeners.push(l);
            }
        }

        let mut connections: Vec<ConnectionIx> = match &env.connections {
            Some(names) => names
                .iter()
                .map(|n| {
                    self.connection_ix(n)
                        .ok_or_else(|| Rejection::UnknownConnection(n.clone()))
                })
                .collect::<Result<_, _>>()?,
            None => matched
                .iter()
                .find_map(|e| e.connections.clone())
                .unwrap_or_else(|| self.default_connections.clone()),
        };
        if channels.is_empty() {
            connections.clear();
        }

        if let Some(pending) = &env.pending {
            listeners.retain(|l| pending.contains(&self.listeners[l.0]));
            connections.retain(|c| pending.contains(&self.connections[c.0]));
        } else if listeners.is_empty() && connections.is_empty() && !known {
            return Err(Rejection::NoRoute);
        }

        Ok(Plan {
            name: matched
                .iter()
                .find_map(|e| e.broadcast_as.clone())
                .unwrap_or_else(|| env.event.clone()),
            channels,
            listeners,
            connections,
            retry: matched
                .iter()
                .find_map(|e| e.retry.clone())
                .unwrap_or_else(|| self.default_retry.clone()),
            known,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Limits, decode};
    use bytes::Bytes;

    fn registry(toml: &str) -> Registry {
        let config = Config::parse(toml, "t", &|_| None).unwrap();
        let listeners = config.listeners.keys().cloned().map(DeliveryId::Listener);
        let connections = config.broadcasting.connections.keys().cloned();
        let connections = connections.map(DeliveryId::Broadcast).collect();
        Registry::new(&config, listeners.collect(), connections).unwrap()
    }

    fn env(json: &str) -> Envelope {
        decode(Bytes::copy_from_slice(json.as_bytes()), &Limits::default()).unwrap()
    }

    const TOML: &str = r#"
        [listeners.audit]
        type = "log"
        [listeners.hook]
        type = "webhook"
        url = "http://127.0.0.1:1/hook"

        [events."App\\Events\\OrderShipped"]
        listeners = ["audit"]
        channels = ["orders.{order_id}", "user.{customer.id}"]
        broadcast_as = "order.shipped"
        [events."App\\Events\\OrderShipped".retry]
        max_attempts = 3

        [events."App\\Events\\*"]
        listeners = ["hook", "audit"]
        connections = ["redis", "log"]

        [events."Quiet"]
        connections = []
    "#;

    #[test]
    fn templates_and_patterns_add_up() {
        let r = registry(TOML);
        let p = r
            .plan(&env(r#"{"event":"App\\Events\\OrderShipped","channels":["a"],"data":{"order_id":42,"customer":{"id":"c7"}}}"#))
            .unwrap();
        assert_eq!(p.name, "order.shipped");
        assert_eq!(p.channels, ["a", "orders.42", "user.c7"]);
        let names: Vec<_> = r.deliveries(&p).map(|d| d.to_string()).collect();
        assert_eq!(
            names,
            [
                "listener:audit",
                "listener:hook",
                "broadcast:redis",
                "broadcast:log"
            ]
        );
        assert_eq!(p.retry.max_attempts, 3);
        assert!(p.known);
    }

    #[test]
    fn unknown_event_broadcasts_on_its_own_channels_by_default() {
        let r = registry(TOML);
        let p = r
            .plan(&env(r#"{"event":"Other","channels":["c"],"data":{}}"#))
            .unwrap();
        assert_eq!(p.name, "Other");
        assert_eq!(p.connections, [r.connection_ix("redis").unwrap()]);
        assert!(!p.known);
        let err = r.plan(&env(r#"{"event":"Other","data":{}}"#)).unwrap_err();
        assert_eq!(err.code(), "no_route");
    }

    #[test]
    fn unknown_event_rejected_when_configured() {
        let r = registry("[worker]\nunknown_events = \"reject\"\n");
        let err = r
            .plan(&env(r#"{"event":"Other","channels":["c"],"data":{}}"#))
            .unwrap_err();
        assert_eq!(err.code(), "unknown_event");
    }

    #[test]
    fn known_event_with_nothing_to_do_is_a_plan_not_an_error() {
        let r = registry(TOML);
        let p = r
            .plan(&env(r#"{"event":"Quiet","channels":["c"],"data":{}}"#))
            .unwrap();
        assert!(p.listeners.is_empty() && p.connections.is_empty());
    }

    #[test]
    fn pending_restricts_the_plan() {
        let r = registry(TOML);
        let p = r
            .plan(&env(r#"{"event":"App\\Events\\X","channels":["c"],"data":{},"pending":["listener:hook","broadcast:log"]}"#))
            .unwrap();
        let names: Vec<_> = r.deliveries(&p).map(|d| d.to_string()).collect();
        assert_eq!(names, ["listener:hook", "broadcast:log"]);
    }

    #[test]
    fn bad_template_values_and_connections_are_rejected() {
        let r = registry(TOML);
        let missing = r.plan(&env(
            r#"{"event":"App\\Events\\OrderShipped","data":{"customer":{"id":1}}}"#,
        ));
        assert_eq!(missing.unwrap_err().code(), "bad_template");
        let object = r.plan(&env(
            r#"{"event":"App\\Events\\OrderShipped","data":{"order_id":{},"customer":{"id":1}}}"#,
        ));
        assert_eq!(object.unwrap_err().code(), "bad_template");
        let bad_char = r.plan(&env(r#"{"event":"App\\Events\\OrderShipped","data":{"order_id":"a b","customer":{"id":1}}}"#));
        assert_eq!(bad_char.unwrap_err().code(), "bad_channel");
        let conn = r.plan(&env(
            r#"{"event":"E","channels":["c"],"connections":["nope"],"data":{}}"#,
        ));
        assert_eq!(conn.unwrap_err().code(), "unknown_connection");
    }

    #[test]
    fn glob() {
        assert!(glob_match("App\\Events\\*", "App\\Events\\X"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXbY"));
        assert!(glob_match("*.created", "order.created"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("ab*ab", "abab"));
        assert!(!glob_match("ab*ab", "aba"));
    }
}
