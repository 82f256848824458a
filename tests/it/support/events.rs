//! The numbered workload the reliability tests push: envelopes `e0..`, each `{"i": n}`, and how
//! a test counts them at a webhook listener. Owns the envelope text and reading `i` back; not
//! where they are pushed (see [`super::deployment`]) nor how herald is configured.

use std::collections::{HashMap, HashSet};

use herald_testkit::{WebhookFake, WebhookRequest};
use serde_json::Value;

/// Envelopes `e{from}..e{to}`, each `{"i": n}` on channel `c.{n % 10}`, event `E`.
pub fn envelopes(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| {
            format!(
                r#"{{"id":"e{i}","event":"E","channels":["c.{}"],"data":{{"i":{i}}}}}"#,
                i % 10
            )
        })
        .collect()
}

/// `data.i` of an envelope, a webhook body or a broadcast message.
pub fn id_of(json: impl AsRef<[u8]>) -> u64 {
    let v: Value = serde_json::from_slice(json.as_ref()).unwrap();
    v["data"]["i"].as_u64().unwrap()
}

/// Calls per id the webhook has seen so far.
pub fn calls_per_id(hook: &WebhookFake) -> HashMap<u64, u32> {
    per_id(&hook.requests())
}

fn per_id(requests: &[WebhookRequest]) -> HashMap<u64, u32> {
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for r in requests {
        *seen.entry(id_of(&r.body)).or_default() += 1;
    }
    seen
}

/// Waits until the webhook saw every id in `0..n` at least once (and none other); returns calls
/// per id.
pub async fn delivered_all(hook: &WebhookFake, n: usize) -> HashMap<u64, u32> {
    let mut calls = 0;
    loop {
        let requests = hook.wait_for(calls + 1).await;
        calls = requests.len();
        let seen = per_id(&requests);
        if seen.len() >= n {
            assert!(seen.keys().all(|i| (*i as usize) < n), "an id beyond {n}");
            return seen;
        }
    }
}

/// How many distinct ids the webhook has seen so far.
pub fn distinct(hook: &WebhookFake) -> usize {
    let ids: HashSet<u64> = hook.requests().iter().map(|r| id_of(&r.body)).collect();
    ids.len()
}
