//! The dead-letter store: what `herald failed list|show|retry|forget|flush` works on.
//!
//! Owns: the dead-letter record ([`DeadLetter`], stored as JSON in the `…:failed` hash, indexed by
//! time in `…:failed:index`) and the operations on it. Dead letters are written only by
//! `Queue::settle` (atomically with the acknowledgement). Does not own: deciding what is dead
//! (`settle`).

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{Queue, QueueError, scripts};
use crate::delivery::DeliveryId;
use crate::envelope::{Limits, decode};

/// Dead letters read or moved per round trip by the bulk actions.
const ACTION_CHUNK: usize = 200;

/// One dead letter: why, where, and the envelope's bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The envelope's id; absent when the bytes could not be decoded.
    pub envelope_id: Option<String>,
    /// The queue it was consumed from (list key, before the prefix).
    pub queue: String,
    /// The event name; absent when the bytes could not be decoded.
    pub event: Option<String>,
    /// Short stable code, also the `reason` label of `herald_dead_letters_total`.
    pub code: String,
    /// What went wrong, for a human.
    pub reason: String,
    /// The deliveries that failed; empty when the envelope itself was rejected. A retry re-runs
    /// exactly these.
    #[serde(default)]
    pub deliveries: Vec<FailedDelivery>,
    /// Attempts made.
    pub attempts: u32,
    /// When, in ms since the epoch.
    pub failed_at: u64,
    /// The envelope bytes as they were last queued (for a first attempt, exactly what the
    /// producer pushed).
    #[serde(flatten)]
    pub payload: Payload,
}

/// Envelope bytes: text when they are UTF-8 (always, for JSON), base64 otherwise, so the exact
/// bytes survive either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    /// UTF-8 bytes, as text.
    #[serde(rename = "payload")]
    Text(String),
    /// Other bytes, in base64.
    #[serde(rename = "payload_base64")]
    Base64(String),
}

/// One failed delivery within a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedDelivery {
    /// `listener:<name>` or `broadcast:<connection>`.
    pub delivery: String,
    /// The error's stable code (`http_5xx`, `timeout`, …).
    pub code: String,
    /// The error, for a human.
    pub error: String,
    /// Whether the last error was retryable (then attempts ran out).
    pub retryable: bool,
}

impl DeadLetter {
    pub(crate) fn payload_of(raw: &[u8]) -> Payload {
        match std::str::from_utf8(raw) {
            Ok(s) => Payload::Text(s.to_string()),
            Err(_) => Payload::Base64(base64::engine::general_purpose::STANDARD.encode(raw)),
        }
    }

    /// The envelope bytes, exactly.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match &self.payload {
            Payload::Text(s) => s.as_bytes().to_vec(),
            Payload::Base64(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
        }
    }

    /// The payload indented for reading, when it is JSON: the same text with line breaks and
    /// indentation added outside strings, so member order, numbers and escapes stay exactly as
    /// they were (parsing into a map and printing it again would sort the keys and could round
    /// numbers).
    pub fn payload_pretty(&self) -> Option<String> {
        let Payload::Text(text) = &self.payload else {
            return None;
        };
        serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
        Some(indent_json(text))
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("dead letters serialize")
    }

    /// The envelope to push when this dead letter is retried: attempts reset to 0 and, when
    /// only some deliveries failed, `pending` set to those, so deliveries that succeeded are
    /// not repeated. Bytes that never decoded are pushed back unchanged.
    pub fn retry_payload(&self) -> Vec<u8> {
        let raw = self.payload_bytes();
        let limits = Limits {
            max_bytes: usize::MAX,
            ..Limits::default()
        };
        let Ok(env) = decode(raw.clone().into(), &limits) else {
            return raw;
        };
        let pending: Option<Vec<DeliveryId>> = if self.deliveries.is_empty() {
            None
        } else {
            self.deliveries
                .iter()
                .map(|d| DeliveryId::parse(&d.delivery))
                .collect()
        };
        env.encode_requeue(0, pending.as_deref(), self.failed_at as f64 / 1000.0)
    }
}

/// `text` (valid JSON) with two-space indentation; whitespace outside strings is replaced, and
/// nothing else changes.
fn indent_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if chars.peek() == Some(&close) {
                    out.push(chars.next().expect("peeked"));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

impl Queue {
    /// One dead letter by id.
    pub(crate) async fn failed_get(&self, id: &str) -> Result<Option<DeadLetter>, QueueError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&self.keys.failed).arg(id);
        let raw: Option<String> = self.run("failed show", &cmd).await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Puts dead letters back on the queue (only what failed of each), oldest first as given,
    /// and removes them from the store; per id, whether it was there to retry. Reads and moves
    /// them a chunk at a time; each chunk is one script, so a concurrent retry of the same ids
    /// pushes each one once.
    pub(crate) async fn failed_retry(&self, ids: &[String]) -> Result<Vec<bool>, QueueError> {
        let mut done = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ACTION_CHUNK) {
            let mut get = redis::cmd("HMGET");
            get.arg(&self.keys.failed).arg(chunk);
            let entries: Vec<Option<String>> = self.run("failed retry", &get).await?;
            let mut inv = scripts().retry_failed.prepare_invoke();
            inv.key(&self.keys.failed)
                .key(&self.keys.failed_index)
                .key(&self.keys.list);
            let mut sent = Vec::with_capacity(chunk.len());
            for (id, entry) in chunk.iter().zip(entries) {
                let entry = entry.and_then(|e| serde_json::from_str::<DeadLetter>(&e).ok());
                sent.push(entry.is_some());
                if let Some(entry) = entry {
                    inv.arg(id).arg(entry.retry_payload());
                }
            }
            let pushed: Vec<i64> = if sent.iter().any(|s| *s) {
                self.run("failed retry", &inv).await?
            } else {
                Vec::new()
            };
            let mut pushed = pushed.into_iter();
            done.extend(
                sent.into_iter()
                    .map(|s| s && pushed.next().is_some_and(|p| p == 1)),
            );
        }
        Ok(done)
    }

    /// Deletes dead letters; per id, whether it existed. One transaction per chunk.
    pub(crate) async fn failed_forget(&self, ids: &[String]) -> Result<Vec<bool>, QueueError> {
        let mut done = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ACTION_CHUNK) {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for id in chunk {
                pipe.hdel(&self.keys.failed, id);
            }
            pipe.zrem(&self.keys.failed_index, chunk).ignore();
            // The record of a split Pusher event's delivered parts goes with its dead letter.
            let records: Vec<String> = chunk
                .iter()
                .map(|f| self.keys.pusher_sent(id_of(f)))
                .collect();
            pipe.del(records).ignore();
            let deleted: Vec<i64> = self.run("failed forget", &pipe).await?;
            done.extend(deleted.into_iter().map(|n| n == 1));
        }
        Ok(done)
    }

    /// Deletes every dead letter of this queue; returns how many there were.
    pub(crate) async fn failed_flush(&self) -> Result<u64, QueueError> {
        // Read before the flush, deleted after: the records are only hints (a leftover one
        // expires; one deleted early makes a retry resend parts, never lose them).
        let mut read = redis::pipe();
        read.hkeys(&self.keys.failed);
        let (fields,): (Vec<String>,) = self.run("failed flush", &read).await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hlen(&self.keys.failed)
            .del(&self.keys.failed)
            .del(&self.keys.failed_index);
        let (n, _, _): (u64, i64, i64) = self.run("failed flush", &pipe).await?;
        for chunk in fields.chunks(ACTION_CHUNK) {
            let mut del = redis::pipe();
            let records: Vec<String> = chunk
                .iter()
                .map(|f| self.keys.pusher_sent(id_of(f)))
                .collect();
            del.del(records).ignore();
            let () = self.run("failed flush", &del).await?;
        }
        Ok(n)
    }
}

/// The envelope id of a dead-letter field: a repeated id's is `id#k` (settle.lua).
fn id_of(field: &str) -> &str {
    match field.rsplit_once('#') {
        Some((id, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => id,
        _ => field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(payload: &[u8], deliveries: &[&str]) -> DeadLetter {
        DeadLetter {
            envelope_id: Some("e1".into()),
            queue: "q".into(),
            event: Some("E".into()),
            code: "http_4xx".into(),
            reason: "r".into(),
            deliveries: deliveries
                .iter()
                .map(|d| FailedDelivery {
                    delivery: d.to_string(),
                    code: "http_4xx".into(),
                    error: "e".into(),
                    retryable: false,
                })
                .collect(),
            attempts: 3,
            failed_at: 1000,
            payload: DeadLetter::payload_of(payload),
        }
    }

    #[test]
    fn json_round_trip_keeps_exact_bytes() {
        for raw in [
            &b"{\"event\":\"E\",\"data\":{}}"[..],
            &[0xff, 0xfe, b'{'][..],
        ] {
            let e = entry(raw, &[]);
            let back: DeadLetter = serde_json::from_str(&e.to_json()).unwrap();
            assert_eq!(back.payload_bytes(), raw);
            assert_eq!(back, e);
        }
    }

    #[test]
    fn retry_payload_runs_only_what_failed() {
        let e = entry(br#"{"id":"e1","event":"E","data":{"a":1},"attempts":4,"pending":["listener:x","broadcast:redis"]}"#, &["listener:x"]);
        let out: serde_json::Value = serde_json::from_slice(&e.retry_payload()).unwrap();
        assert_eq!(out["attempts"], 0);
        assert_eq!(out["pending"], serde_json::json!(["listener:x"]));
        assert_eq!(out["data"], serde_json::json!({"a":1}));
        assert_eq!(out["id"], "e1");
    }

    #[test]
    fn pretty_payloads_keep_order_numbers_and_strings_exactly() {
        let raw =
            r#"{"z":1,"a":[ ],"n":12345678901234567890123,"s":"a, {b}: \"c\"","o":{"k":[1,{}]}}"#;
        let pretty = entry(raw.as_bytes(), &[]).payload_pretty().unwrap();
        assert_eq!(
            pretty,
            "{\n  \"z\": 1,\n  \"a\": [],\n  \"n\": 12345678901234567890123,\n  \"s\": \"a, {b}: \\\"c\\\"\",\n  \"o\": {\n    \"k\": [\n      1,\n      {}\n    ]\n  }\n}"
        );
        assert_eq!(entry(b"not json", &[]).payload_pretty(), None);
    }

    #[test]
    fn undecodable_payload_is_retried_verbatim() {
        let e = entry(b"not json", &[]);
        assert_eq!(e.retry_payload(), b"not json");
    }
}
