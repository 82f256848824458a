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

use crate::config::{Config, RetryConfig, UnknownEvents};
use crate::delivery::DeliveryId;
use crate::envelope::{Envelope, Rejection, validate_channel};

/// A channel template: literal text and `{path.to.field}` holes filled from `data`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Literal(String),
    Field(Vec<String>),
}

impl Template {
    /// Parses `orders.{order_id}` or `user.{customer.id}`.
    pub(crate) fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or("unclosed `{`")?;
            let path = &after[..close];
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(format!(
                    "`{{{path}}}` is not a field path like `{{order_id}}`"
                ));
            }
            parts.push(Part::Field(path.split('.').map(String::from).collect()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err("`}` without `{`".into());
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    fn has_fields(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// Fills the holes from `data`. Strings and numbers are allowed; anything else is an error.
    pub(crate) fn render(&self, data: &Value) -> Result<String, Rejection> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Field(path) => {
                    let mut v = data;
                    for seg in path {
                        v = v.get(seg).ok_or_else(|| Rejection::Template {
                            template: self.source.clone(),
                            reason: format!("data has no field `{}`", path.join(".")),
                        })?;
                    }
                    match v {
                        Value::String(s) => out.push_str(s),
                        Value::Number(n) => out.push_str(&n.to_string()),
                        other => {
                            return Err(Rejection::Template {
                                template: self.source.clone(),
                                reason: format!(
                                    "field `{}` is {}, not a string or number",
                                    path.join("."),
                                    kind(other)
                                ),
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
    }
}

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
    listeners: Vec<usize>,
    connections: Option<Vec<usize>>,
    templates: Vec<Template>,
    broadcast_as: Option<String>,
    retry: Option<Arc<RetryConfig>>,
}

/// What to do for one envelope.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// The name to broadcast under: `broadcast_as`, or the event name.
    pub name: String,
    /// Every channel: the envelope's, then the registry's rendered templates, without repeats.
    pub channels: Vec<String>,
    /// Listeners to run (indexes into the worker's listener table).
    pub listeners: Vec<usize>,
    /// Broadcast connections to use (indexes into the worker's broadcaster table); empty when
    /// there are no channels.
    pub connections: Vec<usize>,
    /// Retry policy for these deliveries.
    pub retry: Arc<RetryConfig>,
    /// Whether the registry had an entry for the event (a metric label only when it did).
    pub known: bool,
}

impl Plan {
    /// Every delivery of the plan, listeners first.
    pub(crate) fn deliveries<'a>(
        &'a self,
        listeners: &'a [String],
        connections: &'a [String],
    ) -> impl Iterator<Item = DeliveryId> + 'a {
        self.listeners
            .iter()
            .map(|&i| DeliveryId::Listener(listeners[i].clone()))
            .chain(
                self.connections
                    .iter()
                    .map(|&i| DeliveryId::Broadcast(connections[i].clone())),
            )
    }
}

/// The event registry. Built once at start-up; immutable afterwards.
#[derive(Debug)]
pub(crate) struct Registry {
    exact: HashMap<String, usize>,
    /// Patterns, most specific (longest) first.
    patterns: Vec<(String, usize)>,
    entries: Vec<Entry>,
    listener_names: Vec<String>,
    connection_names: Vec<String>,
    default_connections: Vec<usize>,
    default_retry: Arc<RetryConfig>,
    unknown: UnknownEvents,
    max_channel_name: usize,
}

impl Registry {
    /// Resolves the config's registry. `listener_names` and `connection_names` are the tables
    /// the worker indexes; every name the config uses must be in them (`Config` validated that).
    pub(crate) fn new(
        config: &Config,
        listener_names: Vec<String>,
        connection_names: Vec<String>,
    ) -> Self {
        let conn_index = |n: &String| {
            connection_names
                .iter()
                .position(|c| c == n)
                .expect("validated: connection exists")
        };
        let listener_index = |n: &String| {
            listener_names
                .iter()
                .position(|c| c == n)
                .expect("validated: listener exists")
        };
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        let mut entries = Vec::new();
        for (name, e) in &config.events {
            let idx = entries.len();
            entries.push(Entry {
                listeners: e.listeners.iter().map(listener_index).collect(),
                connections: e
                    .connections
                    .as_ref()
                    .map(|c| c.iter().map(conn_index).collect()),
                templates: e
                    .channels
                    .iter()
                    .map(|t| Template::parse(t).expect("validated template"))
                    .collect(),
                broadcast_as: e.broadcast_as.clone(),
                retry: e.retry.as_ref().map(|r| Arc::new(config.retry.with(r))),
            });
            if name.contains('*') {
                patterns.push((name.clone(), idx));
            } else {
                exact.insert(name.clone(), idx);
            }
        }
        patterns.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Registry {
            exact,
            patterns,
            entries,
            default_connections: config.broadcasting.default.iter().map(conn_index).collect(),
            listener_names,
            connection_names,
            default_retry: Arc::new(config.retry.clone()),
            unknown: config.worker.unknown_events,
            max_channel_name: config.limits.max_channel_name,
        }
    }

    /// Listener names, by the indexes plans use.
    pub(crate) fn listener_names(&self) -> &[String] {
        &self.listener_names
    }

    /// Connection names, by the indexes plans use.
    pub(crate) fn connection_names(&self) -> &[String] {
        &self.connection_names
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

        let mut listeners: Vec<usize> = Vec::new();
        for &l in matched.iter().flat_map(|e| &e.listeners) {
            if !listeners.contains(&l) {
                listeners.push(l);
            }
        }

        let mut connections: Vec<usize> = match &env.connections {
            Some(names) => names
                .iter()
                .map(|n| {
                    self.connection_names
                        .iter()
                        .position(|c| c == n)
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
            listeners.retain(|&i| {
                pending.contains(&DeliveryId::Listener(self.listener_names[i].clone()))
            });
            connections.retain(|&i| {
                pending.contains(&DeliveryId::Broadcast(self.connection_names[i].clone()))
            });
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
        let listeners = config.listeners.keys().cloned().collect();
        let connections = config.broadcasting.connections.keys().cloned().collect();
        Registry::new(&config, listeners, connections)
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
        let names: Vec<_> = p
            .deliveries(r.listener_names(), r.connection_names())
            .map(|d| d.to_string())
            .collect();
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
        assert_eq!(
            p.connections,
            [r.connection_names()
                .iter()
                .position(|c| c == "redis")
                .unwrap()]
        );
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
        let names: Vec<_> = p
            .deliveries(r.listener_names(), r.connection_names())
            .map(|d| d.to_string())
            .collect();
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

    #[test]
    fn template_syntax() {
        assert!(Template::parse("orders.{order_id}").is_ok());
        assert!(Template::parse("plain").is_ok());
        assert!(Template::parse("a.{").is_err());
        assert!(Template::parse("a.{}").is_err());
        assert!(Template::parse("a.{x..y}").is_err());
        assert!(Template::parse("a}").is_err());
    }
}
