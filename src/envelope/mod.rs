//! The inbound wire format: bytes a producer pushed → [`Envelope`] or [`Rejection`].
//!
//! Owns: decoding and validating envelopes (DESIGN.md "Envelope", `config/envelope.schema.json`),
//! the input limits, channel-name rules, and re-encoding an envelope when herald puts it back on
//! a queue (`attempts`, `pending`). Does not own: routing (`registry`), the outgoing wire formats
//! (`broadcast`), or where envelopes live (`queue`).
//!
//! `data` is kept as the producer's exact JSON text ([`RawValue`]) from the queue to every sink,
//! and a re-encoded envelope copies every member it does not own byte for byte, so unknown fields,
//! key order and number spellings survive retries.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::delivery::DeliveryId;

/// Input limits, checked before anything is delivered.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest envelope accepted, in bytes (default 1 MiB).
    pub max_bytes: usize,
    /// Longest event name, in characters (default 200, Pusher's limit).
    pub max_event_name: usize,
    /// Longest channel name, in characters (default 164, Pusher's documented limit).
    pub max_channel_name: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024,
            max_event_name: 200,
            max_channel_name: 164,
        }
    }
}

/// Why an envelope (or its route) cannot be processed. Always fatal: the envelope goes to the
/// dead-letter store with its original bytes, and the worker carries on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// Over `limits.max_envelope_bytes`; not parsed at all.
    #[error("envelope is {size} bytes, over the limit of {max}")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON (the parser's message).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object with unique members.
    #[error("envelope must be a JSON object: {0}")]
    NotAnObject(String),
    /// `event` or `data` is missing.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A member has the wrong type or value.
    #[error("field `{field}`: {reason}")]
    InvalidField {
        /// The member.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `event` is over `limits.max_event_name` characters.
    #[error("event name is {len} characters, over the limit of {max}")]
    EventNameTooLong {
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A channel breaks Pusher's naming rules.
    #[error("bad channel name {channel:?}: {reason}")]
    BadChannel {
        /// The channel (cut short when very long).
        channel: String,
        /// Which rule.
        reason: String,
    },
    /// No registry entry, and `unknown_events = "reject"`.
    #[error("event {0:?} is not in the registry and unknown events are rejected")]
    UnknownEvent(String),
    /// `connections` names a connection that is not configured.
    #[error("connection {0:?} is not a configured broadcast connection")]
    UnknownConnection(String),
    /// A registry channel template cannot be filled from `data`.
    #[error("channel template {template:?}: {reason}")]
    Template {
        /// The template.
        template: String,
        /// Why it cannot be filled.
        reason: String,
    },
    /// No channels and no listener: nothing would happen to it.
    #[error("nothing to deliver: the event names no channels and no listener handles it")]
    NoRoute,
}

impl Rejection {
    /// A short, stable code for metric labels and dead letters.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::TooLarge { .. } => "payload_too_large",
            Rejection::InvalidJson(_) => "invalid_json",
            Rejection::NotAnObject(_) => "not_an_object",
            Rejection::MissingField(_) => "missing_field",
            Rejection::InvalidField { .. } => "invalid_field",
            Rejection::EventNameTooLong { .. } => "event_name_too_long",
            Rejection::BadChannel { .. } => "bad_channel",
            Rejection::UnknownEvent(_) => "unknown_event",
            Rejection::UnknownConnection(_) => "unknown_connection",
            Rejection::Template { .. } => "bad_template",
            Rejection::NoRoute => "no_route",
        }
    }
}

/// A decoded envelope. Built only by [`decode`]; keeps the bytes it came from.
#[derive(Clone)]
pub struct Envelope {
    /// The producer's `id`, or a UUID v4 herald assigned (see [`Envelope::id_assigned`]).
    pub id: String,
    /// The event name, e.g. `App\Events\OrderShipped`.
    pub event: String,
    /// Channels the producer named (the registry may add more).
    pub channels: Vec<String>,
    /// The payload, a JSON object, exactly as the producer wrote it.
    pub data: Box<RawValue>,
    /// Socket id to exclude (Laravel's `X-Socket-ID`, `->toOthers()`).
    pub socket: Option<String>,
    /// Subset of broadcast connections to use instead of the registry's.
    pub connections: Option<Vec<String>>,
    /// The app of every multi-app Pusher connection the event goes to (`"app": "acme"`);
    /// single-app connections ignore it.
    pub app: Option<String>,
    /// Overrides the retry policy's attempt limit for this envelope.
    pub max_attempts: Option<u32>,
    /// Attempts already made (0 for a fresh envelope; counts crashes too).
    pub attempts: u32,
    /// Deliveries still to do; `None` means all of them.
    pub pending: Option<Vec<DeliveryId>>,
    /// When the producer created the event, in seconds since the epoch.
    pub created_at: Option<f64>,
    /// `data` is the final broadcast payload (`"final_payload": true`, set by the Laravel
    /// driver): herald adds no `socket` member to it. `data` may then also be `[]`, PHP's empty
    /// array.
    pub final_payload: bool,
    id_assigned: bool,
    raw: Bytes,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("event", &self.event)
            .field("channels", &self.channels)
            .field("attempts", &self.attempts)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// Top-level members of an envelope, each kept as raw JSON until it is checked.
#[derive(Default)]
struct Members<'a> {
    id: Option<&'a RawValue>,
    event: Option<&'a RawValue>,
    channels: Option<&'a RawValue>,
    data: Option<&'a RawValue>,
    socket: Option<&'a RawValue>,
    connections: Option<&'a RawValue>,
    app: Option<&'a RawValue>,
    max_attempts: Option<&'a RawValue>,
    /// Usually zero or one; two when a reaper counted a crash in front of a producer's own value.
    attempts: Vec<&'a RawValue>,
    pending: Option<&'a RawValue>,
    created_at: Option<&'a RawValue>,
    final_payload: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut m = Members::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "attempts" => {
                            m.attempts.push(map.next_value()?);
                            continue;
                        }
                        "id" => &mut m.id,
                        "event" => &mut m.event,
                        "channels" => &mut m.channels,
                        "data" => &mut m.data,
                        "socket" => &mut m.socket,
                        "connections" => &mut m.connections,
                        "app" => &mut m.app,
                        "max_attempts" => &mut m.max_attempts,
                        "pending" => &mut m.pending,
                        "created_at" => &mut m.created_at,
                        "final_payload" => &mut m.final_payload,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    *slot = Some(map.next_value()?);
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

/// Decodes and validates one envelope. Never panics; every problem is a [`Rejection`].
pub fn decode(raw: Bytes, limits: &Limits) -> Result<Envelope, Rejection> {
    if raw.len() > limits.max_bytes {
        return Err(Rejection::TooLarge {
            size: raw.len(),
            max: limits.max_bytes,
        });
    }
    let m: Members = serde_json::from_slice(&raw).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            Rejection::InvalidJson(e.to_string())
        } else {
            Rejection::NotAnObject(e.to_string())
        }
    })?;

    let event = string(m.event, "event")?.ok_or(Rejection::MissingField("event"))?;
    if event.is_empty() {
        return Err(invalid("event", "must not be empty"));
    }
    let len = event.chars().count();
    if len > limits.max_event_name {
        return Err(Rejection::EventNameTooLong {
            len,
            max: limits.max_event_name,
        });
    }

    let final_payload = field::<bool>(m.final_payload, "final_payload")?.unwrap_or(false);
    let data = m.data.ok_or(Rejection::MissingField("data"))?;
    let empty_php_array = final_payload && is_empty_array(data.get());
    if !data.get().starts_with('{') && !empty_php_array {
        return Err(invalid(
            "data",
            "must be a JSON object (or `[]` with final_payload)",
        ));
    }

    let channels = strings(m.channels, "channels")?.unwrap_or_default();
    for c in &channels {
        validate_channel(c, limits.max_channel_name)?;
    }

    let (id, id_assigned) = id(m.id)?;

    let mut attempts = 0u32;
    for a in m.attempts {
        let n: u32 = serde_json::from_str(a.get())
            .map_err(|_| invalid("attempts", "must be a non-negative integer"))?;
        attempts = attempts.saturating_add(n);
    }

    let max_attempts: Option<u32> = field(m.max_attempts, "max_attempts")?;
    if max_attempts == Some(0) {
        return Err(invalid("max_attempts", "must be at least 1"));
    }

    let pending = pending(m.pending)?;

    Ok(Envelope {
        id,
        event,
        channels,
        data: data.to_owned(),
        socket: field::<Option<String>>(m.socket, "socket")?.flatten(),
        connections: field(m.connections, "connections")?,
        app: app(m.app)?,
        max_attempts,
        attempts,
        pending,
        created_at: match m.created_at.map(|r| r.get().parse::<f64>()) {
            // A JSON number is also Rust float syntax; `null` and the rest go to serde.
            Some(Ok(t)) => Some(t),
            _ => field(m.created_at, "created_at")?,
        },
        final_payload,
        id_assigned,
        raw,
    })
}

/// The producer's `id` as text, or a new UUID v4 (`true`: herald assigned it).
fn id(raw: Option<&RawValue>) -> Result<(String, bool), Rejection> {
    let bad = || invalid("id", "must be a non-empty string or an integer");
    match raw.map(RawValue::get) {
        None | Some("null") => Ok((new_id(), true)),
        // Decided by the first byte rather than an untagged enum, which would buffer the value
        // through serde's `Content` on every envelope.
        Some(text) if text.starts_with('"') => match string(raw, "id") {
            Ok(Some(s)) if !s.is_empty() => Ok((s, false)),
            _ => Err(bad()),
        },
        Some(text) => text
            .parse::<i64>()
            .map(|n| (n.to_string(), false))
            .map_err(|_| bad()),
    }
}

/// Longest app name.
const MAX_APP_NAME: usize = 100;

/// The `app` member: a name of A-Z a-z 0-9 `-` `_` `.`, not starting with `.` (it names a
/// Redis hash field and a file in `apps_dir`), or `null`.
fn app(raw: Option<&RawValue>) -> Result<Option<String>, Rejection> {
    let Some(name) = field::<Option<String>>(raw, "app")?.flatten() else {
        return Ok(None);
    };
    if !is_app_name(&name) {
        return Err(invalid(
            "app",
            &format!(
                "must be 1-{MAX_APP_NAME} characters of A-Z a-z 0-9 - _ . and not start with ."
            ),
        ));
    }
    Ok(Some(name))
}

/// Whether `name` may name an app of a multi-app Pusher connection.
pub(crate) fn is_app_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_APP_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// herald's own `pending` list of a re-queued envelope.
fn pending(raw: Option<&RawValue>) -> Result<Option<Vec<DeliveryId>>, Rejection> {
    let Some(list) = field::<Vec<String>>(raw, "pending")? else {
        return Ok(None);
    };
    list.iter()
        .map(|s| {
            DeliveryId::parse(s).ok_or_else(|| {
                invalid(
                    "pending",
                    &format!("{s:?} is not `listener:<name>` or `broadcast:<connection>`"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `[]`, with any whitespace inside: what PHP's `json_encode` writes for an empty payload.
fn is_empty_array(text: &str) -> bool {
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .is_some_and(|inner| inner.trim().is_empty())
}

fn field<T: for<'a> Deserialize<'a>>(
    raw: Option<&RawValue>,
    name: &'static str,
) -> Result<Option<T>, Rejection> {
    raw.map(|r| {
        serde_json::from_str(r.get()).map_err(|e| Rejection::InvalidField {
            field: name,
            reason: e.to_string(),
        })
    })
    .transpose()
}

/// A JSON string member as text, without serde for the common cases: a `RawValue` is valid
/// JSON, so between its quotes are only characters and escapes; the one-character escapes are
/// undone here (`App\\Events\\…` has them in every Laravel event name), `\u` goes to serde.
/// Byte loops, not `str::find`: these strings are short, and a searcher's set-up costs more
/// than the scan.
fn string(raw: Option<&RawValue>, name: &'static str) -> Result<Option<String>, Rejection> {
    let Some(text) = raw.map(RawValue::get) else {
        return Ok(None);
    };
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return field(raw, name);
    };
    let b = inner.as_bytes();
    if !b.contains(&b'\\') {
        return Ok(Some(inner.to_owned()));
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        out.push(match b.get(i + 1) {
            Some(b'\\') => b'\\',
            Some(b'"') => b'"',
            Some(b'/') => b'/',
            Some(b'b') => 8,
            Some(b'f') => 12,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            _ => return field(raw, name),
        });
        i += 2;
    }
    // Only ASCII bytes were replaced, at ASCII positions: still UTF-8.
    String::from_utf8(out).map_or_else(|_| field(raw, name), |s| Ok(Some(s)))
}

/// A JSON array of strings, without serde when no string has an escape (channel names never
/// do): the text is valid JSON, so every quote opens or closes a string. Anything else goes to
/// serde, which also words the errors.
fn strings(raw: Option<&RawValue>, name: &'static str) -> Result<Option<Vec<String>>, Rejection> {
    let Some(text) = raw.map(RawValue::get) else {
        return Ok(None);
    };
    let simple = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    match simple.and_then(plain_strings) {
        Some(list) => Ok(Some(list)),
        None => field(raw, name),
    }
}

/// `"a", "b"` (the inside of a valid JSON array) as strings; `None` when an element is not a
/// string or has an escape.
fn plain_strings(inner: &str) -> Option<Vec<String>> {
    let b = inner.as_bytes();
    let mut out = Vec::with_capacity(1);
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    while i < b.len() {
        if b[i] != b'"' {
            return None;
        }
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end] != b'"' {
            if b[end] == b'\\' {
                return None;
            }
            end += 1;
        }
        out.push(inner.get(start..end)?.to_owned());
        i = skip_ws(end + 1);
        if i < b.len() {
            if b[i] != b',' {
                return None;
            }
            i = skip_ws(i + 1);
        }
    }
    Some(out)
}

fn invalid(field: &'static str, reason: &str) -> Rejection {
    Rejection::InvalidField {
        field,
        reason: reason.to_string(),
    }
}

/// The `created_at` of envelope bytes, without validating the rest (the oldest-waiting gauge
/// reads it off the queue's head).
pub(crate) fn created_at(raw: &[u8]) -> Option<f64> {
    #[derive(Deserialize)]
    struct Created {
        created_at: Option<f64>,
    }
    serde_json::from_slice::<Created>(raw).ok()?.created_at
}

/// The `id` of bytes that are a JSON object with a string `id` but failed validation otherwise.
pub(crate) fn lenient_id(raw: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    serde_json::from_slice::<IdOnly>(raw)
        .ok()?
        .id
        .filter(|s| !s.is_empty())
}

/// A UUID v4. Uses a userspace generator: this runs once per id-less envelope on the hot path.
fn new_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string()
}

/// Checks a channel name against Pusher's rules: `[A-Za-z0-9_\-=@,.;]`, an optional leading `#`,
/// not empty, at most `max` characters.
pub(crate) fn validate_channel(name: &str, max: usize) -> Result<(), Rejection> {
    let bad = |reason: String| Rejection::BadChannel {
        channel: name.chars().take(max + 8).collect(),
        reason,
    };
    let body = name.strip_prefix('#').unwrap_or(name);
    if body.is_empty() {
        return Err(bad("must not be empty".into()));
    }
    if name.len() > max {
        return Err(bad(format!(
            "{} characters, over the limit of {max}",
            name.chars().count()
        )));
    }
    if let Some(c) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-=@,.;".contains(*c)))
    {
        return Err(bad(format!(
            "character {c:?} is not allowed (allowed: A-Z a-z 0-9 _ - = @ , . ;)"
        )));
    }
    Ok(())
}

impl Envelope {
    /// The bytes this envelope was reserved as.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Whether herald made up the id because the producer sent none.
    pub fn id_assigned(&self) -> bool {
        self.id_assigned
    }

    /// The envelope to put back on a queue for another attempt: `attempts` first (the reaper
    /// counts crashes by raising that leading member), then `pending`, `id` and `created_at`
    /// when herald knows them, then every other member of the original, byte for byte.
    /// `pending: None` means every delivery (used when a dead letter is retried whole).
    pub(crate) fn encode_requeue(
        &self,
        attempts: u32,
        pending: Option<&[DeliveryId]>,
        first_seen: f64,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + 96);
        out.extend_from_slice(format!("{{\"attempts\":{attempts}").as_bytes());
        if let Some(pending) = pending {
            out.extend_from_slice(b",\"pending\":");
            let names: Vec<String> = pending.iter().map(ToString::to_string).collect();
            serde_json::to_writer(&mut out, &names).expect("strings serialize");
        }
        self.write_members(&mut out, &["attempts", "pending"], first_seen);
        out.push(b'}');
        out
    }

    /// The envelope as a producer would have pushed it, for handing to another queue: herald's
    /// own bookkeeping (`attempts`, `pending`) removed, `id` and `created_at` filled in.
    pub(crate) fn encode_forward(&self, first_seen: f64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + 64);
        out.push(b'{');
        let start = out.len();
        self.write_members(&mut out, &["attempts", "pending"], first_seen);
        // write_members starts every member with a comma; drop the first one.
        if out.len() > start {
            out.remove(start);
        }
        out.push(b'}');
        out
    }

    /// Writes `,"id":…`, `,"created_at":…` (when absent) and every member of the original except
    /// `skip`, each preceded by a comma.
    fn write_members(&self, out: &mut Vec<u8>, skip: &[&str], first_seen: f64) {
        out.extend_from_slice(b",\"id\":");
        serde_json::to_writer(&mut *out, &self.id).expect("strings serialize");
        if self.created_at.is_none() {
            out.extend_from_slice(format!(",\"created_at\":{first_seen:.3}").as_bytes());
        }
        let members = object_members(std::str::from_utf8(&self.raw).unwrap_or("{}"))
            .expect("decode accepted these bytes as a JSON object");
        for (key, value) in members {
            if key == "id" || skip.contains(&key.as_ref()) {
                continue;
            }
            out.push(b',');
            serde_json::to_writer(&mut *out, key.as_ref()).expect("strings serialize");
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
    }
}

/// The members of a JSON object, in order, each value as its exact text.
pub(crate) fn object_members(json: &str) -> serde_json::Result<Vec<(Cow<'_, str>, &RawValue)>> {
    struct Ordered<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);
    impl<'de> Deserialize<'de> for Ordered<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Ordered<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Ordered<'de>, A::Error> {
                    let mut v = Vec::new();
                    while let Some(e) = map.next_entry()? {
                        v.push(e);
                    }
                    Ok(Ordered(v))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Ordered>(json).map(|o| o.0)
}

#[cfg(test)]
mod tests;
