//! Planning a batch of messages into Pusher API requests. Pure; no I/O.
//!
//! Owns: Laravel's Pusher mapping of one message (event name; `data` = the payload's JSON text
//! without `socket`; `socket_id` from the envelope's socket; channels unprefixed), the limits
//! checked before anything is sent, the *units* a message becomes, how units are packed into
//! requests, the request bodies, and combining unit outcomes into one outcome per message.
//! Does not own: sending, signing, retries or the circuit (`super`).
//!
//! A **unit** is one event object of a request body:
//! - a plain channel alone is a single-channel unit; single-channel units of the whole batch are
//!   packed into `/batch_events` requests of at most `max_batch_size` items;
//! - several plain channels of one message go to `/events` with `channels`, in chunks of at most
//!   `max_channels_per_request` (as Laravel's PusherBroadcaster chunks by 100);
//! - every `private-encrypted-*` channel is a single-channel unit of its own, encrypted with
//!   that channel's key (an encrypted event can only go to one channel per request).
//!
//! A message succeeds when all its units succeed.

use std::fmt::Write as _;

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::crypto::{self, MasterKey};
use crate::broadcast::Message;
use crate::delivery::{DeliveryError, DeliveryResult};
use crate::envelope::{object_members, validate_channel};
use crate::settle;

/// The limits and switches planning needs (from `PusherConfig`).
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The connection name, for error reasons and idempotency keys.
    pub connection: String,
    pub max_data_bytes: usize,
    pub max_channels_per_request: usize,
    pub max_batch_size: usize,
    pub max_channel_name: usize,
    pub max_event_name: usize,
    pub idempotency: bool,
}

impl Settings {
    /// Pusher's documented limits (10 KB data, 100 channels, 10 per batch, 164-character
    /// channel names, 200-character event names), idempotency off: what the tests assume.
    #[cfg(test)]
    pub(crate) fn documented(connection: &str) -> Settings {
        Settings {
            connection: connection.into(),
            max_data_bytes: 10240,
            max_channels_per_request: 100,
            max_batch_size: 10,
            max_channel_name: 164,
            max_event_name: 200,
            idempotency: false,
        }
    }
}

/// One event object of a request body.
#[derive(Debug, Clone)]
pub(crate) struct Unit<'a> {
    /// Index of the message in the batch.
    pub msg: usize,
    /// Envelope id.
    pub id: &'a str,
    pub name: &'a str,
    /// The `data` string as sent (encrypted for an encrypted channel).
    pub data: String,
    pub channels: Vec<&'a str>,
    pub socket_id: Option<&'a str>,
    /// Stable across attempts: the `idempotency_key`, and this unit's name in the record of
    /// units already delivered.
    pub key: String,
}

/// A batch, planned.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub units: Vec<Unit<'a>>,
    /// Per message: the indexes of its units, or why it cannot be sent at all.
    pub messages: Vec<Result<Vec<usize>, DeliveryError>>,
}

/// Supplies the nonce of an encrypted unit from the master key, the channel and the unit key
/// (`crypto::derived_nonce` in production).
pub(crate) type NonceFn<'n> = &'n mut dyn FnMut(&MasterKey, &str, &str) -> [u8; 24];

/// Plans `batch`. `nonce` supplies encryption nonces.
pub(crate) fn plan<'a>(
    batch: &[Message<'a>],
    s: &Settings,
    master: Option<&MasterKey>,
    nonce: NonceFn<'_>,
) -> Plan<'a> {
    let mut plan = Plan {
        units: Vec::new(),
        messages: Vec::with_capacity(batch.len()),
    };
    for (i, m) in batch.iter().enumerate() {
        let planned = plan_one(i, m, s, master, nonce).map(|units| {
            let first = plan.units.len();
            plan.units.extend(units);
            (first..plan.units.len()).collect()
        });
        plan.messages.push(planned);
    }
    plan
}

fn invalid(code: &'static str, reason: String) -> DeliveryError {
    DeliveryError::Invalid { code, reason }
}

fn plan_one<'a>(
    i: usize,
    m: &Message<'a>,
    s: &Settings,
    master: Option<&MasterKey>,
    nonce: NonceFn<'_>,
) -> Result<Vec<Unit<'a>>, DeliveryError> {
    check_name_and_socket(m, s)?;
    let channels = unique_channels(m, s)?;
    if channels.is_empty() {
        return Ok(Vec::new());
    }
    let data = pusher_data(m.data);
    let (encrypted, plain): (Vec<&str>, Vec<&str>) =
        channels.iter().partition(|c| crypto::is_encrypted(c));
    if !plain.is_empty() && data.len() > s.max_data_bytes {
        return Err(too_large(m, s, "data".into(), data.len()));
    }
    let mut units = Vec::new();
    if !encrypted.is_empty() {
        let Some(master) = master else {
            return Err(invalid(
                "no_encryption_key",
                format!(
                    "event {}: channel {:?} is end-to-end encrypted, but connection {:?} has \
                     no encryption_master_key_base64",
                    m.id, encrypted[0], s.connection
                ),
            ));
        };
        for c in &encrypted {
            let key = unit_key(&s.connection, m, &data, &[c]);
            let sealed = crypto::encrypt(master, c, data.as_bytes(), nonce(master, c, &key));
            if sealed.len() > s.max_data_bytes {
                let what = format!("the encrypted data for {c:?}");
                return Err(too_large(m, s, what, sealed.len()));
            }
            units.push(unit(i, m, key, sealed, vec![c]));
        }
    }
    for chunk in plain.chunks(s.max_channels_per_request) {
        let key = unit_key(&s.connection, m, &data, chunk);
        units.push(unit(i, m, key, data.clone(), chunk.to_vec()));
    }
    Ok(units)
}

fn unit<'a>(
    i: usize,
    m: &Message<'a>,
    key: String,
    data: String,
    channels: Vec<&'a str>,
) -> Unit<'a> {
    Unit {
        msg: i,
        id: m.id,
        name: m.name,
        key,
        data,
        channels,
        socket_id: m.socket,
    }
}

fn too_large(m: &Message<'_>, s: &Settings, what: String, len: usize) -> DeliveryError {
    invalid(
        "data_too_large",
        format!(
            "event {}: {what} is {len} bytes, over connection {:?}'s max_data_bytes of {}",
            m.id, s.connection, s.max_data_bytes
        ),
    )
}

/// The event name within the connection's limit, and a socket id Pusher can exclude.
fn check_name_and_socket(m: &Message<'_>, s: &Settings) -> Result<(), DeliveryError> {
    let (conn, id) = (&s.connection, m.id);
    // Bytes, the strictest of the servers' units (sockudo counts bytes, soketi UTF-16 units,
    // Pusher's libraries characters), so a name accepted here is accepted everywhere.
    let name_len = m.name.len();
    if name_len > s.max_event_name {
        return Err(invalid(
            "event_name_too_long",
            format!(
                "event {id}: name is {name_len} bytes, over connection {conn:?}'s \
                 max_event_name of {}",
                s.max_event_name
            ),
        ));
    }
    if let Some(socket) = m.socket
        && !is_socket_id(socket)
    {
        return Err(invalid(
            "bad_socket_id",
            format!(
                "event {id}: socket {socket:?} is not a Pusher socket id (digits.digits, \
                 e.g. \"123.456\"), so connection {conn:?} cannot exclude it"
            ),
        ));
    }
    Ok(())
}

/// The message's channels, each valid for the connection, without repeats, in order.
fn unique_channels<'a>(m: &Message<'a>, s: &Settings) -> Result<Vec<&'a str>, DeliveryError> {
    let mut channels: Vec<&'a str> = Vec::with_capacity(m.channels.len());
    // A set, not Vec::contains: an envelope may name 100,000 channels (quadratic took 14 s).
    let mut seen: std::collections::HashSet<&str> =
        std::collections::HashSet::with_capacity(m.channels.len());
    for c in m.channels {
        validate_channel(c, s.max_channel_name).map_err(|why| {
            invalid(
                "bad_channel",
                format!(
                    "event {}: {why} (connection {:?}, max_channel_name {})",
                    m.id, s.connection, s.max_channel_name
                ),
            )
        })?;
        if seen.insert(c.as_str()) {
            channels.push(c);
        }
    }
    Ok(channels)
}

/// Laravel's PusherBroadcaster pulls `socket` out of the payload before encoding it; the rest
/// is the producer's JSON text as it was written.
pub(crate) fn pusher_data(data: &RawValue) -> String {
    let text = data.get();
    // Cheap pre-check; a key spelled with escapes (`"\u0073ocket"`) is caught by the parse.
    if (text.contains("socket") || text.contains("\\u"))
        && let Ok(members) = object_members(text)
        && members.iter().any(|(k, _)| k == "socket")
    {
        let mut out = String::with_capacity(text.len());
        out.push('{');
        for (k, v) in members.iter().filter(|(k, _)| k != "socket") {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k.as_ref()).expect("strings serialize"));
            out.push(':');
            out.push_str(v.get());
        }
        out.push('}');
        return out;
    }
    text.to_string()
}

/// `^\d+\.\d+$`, the socket ids Pusher hands out.
pub(crate) fn is_socket_id(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    s.split_once('.')
        .is_some_and(|(a, b)| digits(a) && digits(b))
}

/// A key naming one unit of one envelope's delivery on one connection, the same on every
/// attempt: hex SHA-256 over connection, envelope id, event name, payload and channels. The
/// payload is included so two different events that reuse an id do not share a key.
fn unit_key(connection: &str, m: &Message, data: &str, channels: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in [connection, m.id, m.name, data] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for c in channels {
        h.update(c.as_bytes());
        h.update([0]);
    }
    let mut key = String::with_capacity(40);
    key.push_str("herald-");
    for b in &h.finalize()[..16] {
        let _ = write!(key, "{b:02x}");
    }
    key
}

/// Groups the `pending` units into requests: single-channel units packed `max_batch_size` to a
/// `/batch_events` request, every multi-channel unit alone on `/events`.
pub(crate) fn pack(units: &[Unit], pending: &[usize], max_batch_size: usize) -> Vec<Vec<usize>> {
    let (single, multi): (Vec<usize>, Vec<usize>) =
        pending.iter().partition(|&&u| units[u].channels.len() == 1);
    let mut requests: Vec<Vec<usize>> = single
        .chunks(max_batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect();
    requests.extend(multi.into_iter().map(|u| vec![u]));
    requests
}

/// The endpoint (`/events` or `/batch_events`) and JSON body of a request of `req` units.
/// One unit goes to `/events` with `channels`, as the official libraries' `trigger` sends it;
/// several (each single-channel) go to `/batch_events`.
pub(crate) fn body(units: &[Unit], req: &[usize], idempotency: bool) -> (&'static str, Vec<u8>) {
    let mut out =
        Vec::with_capacity(256 + req.iter().map(|&u| units[u].data.len() + 64).sum::<usize>());
    if let [only] = req {
        write_event(&mut out, &units[*only], false, idempotency);
        return ("/events", out);
    }
    out.extend_from_slice(b"{\"batch\":[");
    for (i, &u) in req.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_event(&mut out, &units[u], true, idempotency);
    }
    out.extend_from_slice(b"]}");
    ("/batch_events", out)
}

/// Appends one event object: a `/batch_events` item (`channel`) or an `/events` body
/// (`channels`).
pub(crate) fn write_event(out: &mut Vec<u8>, u: &Unit, batch_item: bool, idempotency: bool) {
    let str_ =
        |out: &mut Vec<u8>, s: &str| serde_json::to_writer(out, s).expect("strings serialize");
    out.extend_from_slice(b"{\"name\":");
    str_(out, u.name);
    out.extend_from_slice(b",\"data\":");
    str_(out, &u.data);
    if batch_item {
        out.extend_from_slice(b",\"channel\":");
        str_(out, u.channels[0]);
    } else {
        out.extend_from_slice(b",\"channels\":[");
        for (i, c) in u.channels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            str_(out, c);
        }
        out.push(b']');
    }
    if let Some(s) = u.socket_id {
        out.extend_from_slice(b",\"socket_id\":");
        str_(out, s);
    }
    if idempotency {
        out.extend_from_slice(b",\"idempotency_key\":");
        str_(out, &u.key);
    }
    out.push(b'}');
}

impl Plan<'_> {
    /// Indexes and envelope ids of the messages split into more than one unit: only those can
    /// partly succeed.
    pub(crate) fn multi_unit(&self) -> impl Iterator<Item = (usize, &str)> {
        self.messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match m {
                Ok(units) if units.len() > 1 => Some((i, self.units[units[0]].id)),
                _ => None,
            })
    }

    /// One outcome per message from the outcome of each unit (`None`: not attempted, which
    /// callers never leave). A fatal unit error wins (the message cannot succeed); otherwise a
    /// retryable one, the one asking to wait longest.
    pub(crate) fn results(&self, unit_results: &[Option<DeliveryResult>]) -> Vec<DeliveryResult> {
        self.messages
            .iter()
            .map(|m| {
                let units = m.as_ref().map_err(Clone::clone)?;
                let errors = units.iter().filter_map(|&u| match &unit_results[u] {
                    Some(Ok(())) => None,
                    Some(Err(e)) => Some(e.clone()),
                    None => Some(DeliveryError::Deferred {
                        reason: "not attempted".into(),
                        retry_after: None,
                        circuit: None,
                    }),
                });
                settle::worst(errors).map_or(Ok(()), Err)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn settings() -> Settings {
        Settings::documented("pusher")
    }

    struct Owned {
        id: String,
        name: String,
        channels: Vec<String>,
        data: Box<RawValue>,
        socket: Option<String>,
    }

    fn owned(id: &str, name: &str, channels: &[&str], data: &str, socket: Option<&str>) -> Owned {
        Owned {
            id: id.into(),
            name: name.into(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            data: RawValue::from_string(data.into()).unwrap(),
            socket: socket.map(Into::into),
        }
    }

    fn msg(o: &Owned) -> Message<'_> {
        Message {
            id: &o.id,
            name: &o.name,
            channels: &o.channels,
            data: &o.data,
            socket: o.socket.as_deref(),
            final_payload: false,
            app: None,
        }
    }

    fn zero_nonce(_: &MasterKey, _: &str, _: &str) -> [u8; 24] {
        [0; 24]
    }

    /// Regression (review): when one chunk of a split event got a 500 and the other was not
    /// attempted (circuit opened meanwhile), the event reported "deferred", which uses no
    /// attempt, so a server failing for ever made it retry for ever.
    #[test]
    fn a_real_failure_is_never_hidden_behind_a_deferral() {
        let channels: Vec<String> = (0..150).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = channels.iter().map(String::as_str).collect();
        let o = owned("split", "E", &refs, "{}", None);
        let p = plan(&[msg(&o)], &settings(), None, &mut zero_nonce);
        assert_eq!(p.units.len(), 2, "150 channels: two requests");
        let http500 = DeliveryError::Http {
            status: 500,
            body: String::new(),
            retry_after: None,
        };
        let deferred = DeliveryError::Deferred {
            reason: "circuit open".into(),
            retry_after: Some(std::time::Duration::from_secs(9)),
            circuit: Some("pusher".into()),
        };
        for second in [Some(Err(deferred.clone())), None] {
            let results = p.results(&[Some(Err(http500.clone())), second]);
            match &results[0] {
                Err(DeliveryError::Http { status: 500, .. }) => {}
                other => panic!("the 500 must win over the deferral: {other:?}"),
            }
        }
        let results = p.results(&[Some(Err(deferred)), Some(Ok(()))]);
        assert!(matches!(&results[0], Err(DeliveryError::Deferred { .. })));
    }

    #[test]
    fn data_drops_socket_and_keeps_the_producers_text() {
        let raw = |s: &str| RawValue::from_string(s.into()).unwrap();
        assert_eq!(
            pusher_data(&raw(r#"{"a":1.50,"b":"x/y"}"#)),
            r#"{"a":1.50,"b":"x/y"}"#
        );
        assert_eq!(
            pusher_data(&raw(r#"{"socket":"1.2","a":{"socket":3},"b":[]}"#)),
            r#"{"a":{"socket":3},"b":[]}"#
        );
        assert_eq!(pusher_data(&raw(r#"{"\u0073ocket":null}"#)), "{}");
        assert_eq!(pusher_data(&raw(r#"{"sockets":1}"#)), r#"{"sockets":1}"#);
    }

    #[test]
    fn socket_ids_are_digits_dot_digits() {
        for ok in ["123.456", "1.2"] {
            assert!(is_socket_id(ok), "{ok}");
        }
        for bad in [
            "",
            "1.",
            ".2",
            "1.2.3",
            "abc",
            "x1.2",
            "Fk1Sx2Ztxd3Bqc4oAAAB",
            "1,2",
        ] {
            assert!(!is_socket_id(bad), "{bad}");
        }
    }

    #[test]
    fn single_channel_events_pack_ten_to_a_batch_and_multi_channel_go_alone() {
        let many: Vec<String> = (0..250).map(|i| format!("c{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut msgs: Vec<Owned> = (0..25)
            .map(|i| owned(&format!("e{i}"), "E", &["orders"], "{}", None))
            .collect();
        msgs.push(owned("wide", "W", &many, "{}", None));
        msgs.push(owned("two", "T", &["a", "b", "a"], "{}", None));
        let batch: Vec<Message> = msgs.iter().map(msg).collect();
        let p = plan(&batch, &settings(), None, &mut zero_nonce);
        assert_eq!(p.units.len(), 25 + 3 + 1);
        assert_eq!(
            p.messages[25].as_ref().unwrap().len(),
            3,
            "250 channels: 100+100+50"
        );
        assert_eq!(
            p.units[p.messages[26].as_ref().unwrap()[0]].channels,
            ["a", "b"]
        );
        let pending: Vec<usize> = (0..p.units.len()).collect();
        let requests = pack(&p.units, &pending, 10);
        let sizes: Vec<usize> = requests.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5, 1, 1, 1, 1]);
        let (endpoint, bytes) = body(&p.units, &requests[2], false);
        assert_eq!(endpoint, "/batch_events");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["batch"].as_array().unwrap().len(), 5);
        assert_eq!(
            v["batch"][0],
            json!({"name":"E","data":"{}","channel":"orders"})
        );
        let (endpoint, bytes) = body(&p.units, &requests[3], false);
        assert_eq!(endpoint, "/events");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["channels"].as_array().unwrap().len(), 100);
    }

    #[test]
    fn limits_are_checked_before_sending_with_precise_reasons() {
        let long_name = "E".repeat(201);
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(10240));
        let long_channel = "c".repeat(165);
        let cases = [
            (
                owned("1", &long_name, &["c"], "{}", None),
                "event_name_too_long",
                "201 bytes",
            ),
            (
                owned("2", "E", &["c"], &big, None),
                "data_too_large",
                "10248 bytes",
            ),
            (
                owned("3", "E", &["c"], "{}", Some("abc")),
                "bad_socket_id",
                "\"abc\"",
            ),
            (
                owned("4", "E", &["ok", "bad channel"], "{}", None),
                "bad_channel",
                "' '",
            ),
            (
                owned("5", "E", &[&long_channel], "{}", None),
                "bad_channel",
                "over the limit of 164",
            ),
            (
                owned("6", "E", &["private-encrypted-x"], "{}", None),
                "no_encryption_key",
                "private-encrypted-x",
            ),
        ];
        let batch: Vec<Message> = cases.iter().map(|(o, _, _)| msg(o)).collect();
        let p = plan(&batch, &settings(), None, &mut zero_nonce);
        assert!(p.units.is_empty(), "nothing to send");
        for ((o, code, needle), planned) in cases.iter().zip(&p.messages) {
            match planned {
                Err(DeliveryError::Invalid { code: c, reason }) => {
                    assert_eq!(c, code, "{reason}");
                    assert!(
                        reason.contains(needle),
                        "{reason:?} should contain {needle:?}"
                    );
                    assert!(reason.contains(&format!("event {}", o.id)), "{reason}");
                    assert!(reason.contains("\"pusher\""), "{reason}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn encrypted_channels_are_units_of_their_own() {
        let master =
            MasterKey::from_base64("ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=").unwrap();
        let o = owned(
            "m",
            "E",
            &["private-encrypted-a", "plain", "private-encrypted-b"],
            r#"{"x":1,"socket":"1.2"}"#,
            Some("1.2"),
        );
        let batch = [msg(&o)];
        let p = plan(
            &batch,
            &settings(),
            Some(&master),
            &mut crypto::derived_nonce,
        );
        assert_eq!(p.units.len(), 3);
        for u in &p.units[..2] {
            let c = u.channels[0];
            assert!(crypto::is_encrypted(c));
            let plain = crypto::decrypt(&master, c, &u.data).unwrap();
            assert_eq!(plain, br#"{"x":1}"#);
        }
        assert_eq!(p.units[2].data, r#"{"x":1}"#);
        assert_eq!(p.units[2].socket_id, Some("1.2"));
        let keys: std::collections::HashSet<&str> =
            p.units.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys.len(), 3, "each unit has its own key");
        // The same message planned again (a retry) gets the same keys.
        let again = plan(
            &batch,
            &settings(),
            Some(&master),
            &mut crypto::derived_nonce,
        );
        assert!(
            again
                .units
                .iter()
                .zip(&p.units)
                .all(|(a, b)| a.key == b.key)
        );
        // ... and byte-identical requests: the nonce derives from the unit key.
        for u in 0..p.units.len() {
            assert_eq!(body(&p.units, &[u], true), body(&again.units, &[u], true));
        }
        assert_ne!(
            p.units[0].data, p.units[1].data,
            "each channel its own nonce and key"
        );
    }

    #[test]
    fn a_message_succeeds_only_when_every_unit_does() {
        let many: Vec<String> = (0..150).map(|i| format!("c{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let msgs = [
            owned("a", "E", &many, "{}", None),
            owned("b", "E", &["x"], "{}", None),
        ];
        let batch: Vec<Message> = msgs.iter().map(msg).collect();
        let p = plan(&batch, &settings(), None, &mut zero_nonce);
        assert_eq!(p.multi_unit().collect::<Vec<_>>(), [(0, "a")]);
        let http = |status| DeliveryError::Http {
            status,
            body: String::new(),
            retry_after: Some(std::time::Duration::from_secs(u64::from(status) / 100)),
        };
        let r = p.results(&[Some(Ok(())), Some(Err(http(500))), Some(Ok(()))]);
        assert!(matches!(r[0], Err(DeliveryError::Http { status: 500, .. })));
        assert!(r[1].is_ok());
        let r = p.results(&[Some(Err(http(429))), Some(Err(http(500))), Some(Ok(()))]);
        assert!(
            matches!(r[0], Err(DeliveryError::Http { status: 500, .. })),
            "longest wait"
        );
        let r = p.results(&[Some(Err(http(500))), Some(Err(http(400))), Some(Ok(()))]);
        assert!(
            matches!(r[0], Err(DeliveryError::Http { status: 400, .. })),
            "fatal wins"
        );
    }
}
