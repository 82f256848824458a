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

impl Queue {
    /// Dead letters, newest first: `(id, entry)`.
    pub(crate) async fn failed_list(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, DeadLetter)>, QueueError> {
        let mut range = redis::cmd("ZREVRANGE");
        range
            .arg(&self.keys.failed_index)
            .arg(offset)
            .arg((offset + limit).saturating_sub(1));
        let ids: Vec<String> = self.run("failed list", &range).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut get = redis::cmd("HMGET");
        get.arg(&self.keys.failed).arg(&ids);
        let entries: Vec<Option<String>> = self.run("failed list", &get).await?;
        Ok(ids
            .into_iter()
            .zip(entries)
            .filter_map(|(id, e)| Some((id, serde_json::from_str(&e?).ok()?)))
            .collect())
    }

    /// All dead-letter ids, oldest first.
    pub(crate) async fn failed_ids(&self) -> Result<Vec<String>, QueueError> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(&self.keys.failed_index).arg(0).arg(-1);
        self.run("failed ids", &cmd).await
    }

    /// One dead letter by id.
    pub(crate) async fn failed_get(&self, id: &str) -> Result<Option<DeadLetter>, QueueError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&self.keys.failed).arg(id);
        let raw: Option<String> = self.run("failed show", &cmd).await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Puts a dead letter back on the queue (only what failed) and removes it from the store.
    /// `false` when it no longer exists.
    pub(crate) async fn failed_retry(&self, id: &str) -> Result<bool, QueueError> {
        let Some(entry) = self.failed_get(id).await? else {
            return Ok(false);
        };
        let mut inv = scripts().retry_failed.prepare_invoke();
        inv.key(&self.keys.failed)
            .key(&self.keys.failed_index)
            .key(&self.keys.list)
            .arg(id)
            .arg(entry.retry_payload());
        let pushed: i64 = self.run("failed retry", &inv).await?;
        Ok(pushed == 1)
    }

    /// Deletes one dead letter. `false` when it did not exist.
    pub(crate) async fn failed_forget(&self, id: &str) -> Result<bool, QueueError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hdel(&self.keys.failed, id)
            .zrem(&self.keys.failed_index, id);
        let (n, _): (i64, i64) = self.run("failed forget", &pipe).await?;
        Ok(n == 1)
    }

    /// Deletes every dead letter of this queue; returns how many there were.
    pub(crate) async fn failed_flush(&self) -> Result<u64, QueueError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hlen(&self.keys.failed)
            .del(&self.keys.failed)
            .del(&self.keys.failed_index);
        let (n, _, _): (u64, i64, i64) = self.run("failed flush", &pipe).await?;
        Ok(n)
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
    fn undecodable_payload_is_retried_verbatim() {
        let e = entry(b"not json", &[]);
        assert_eq!(e.retry_payload(), b"not json");
    }
}
