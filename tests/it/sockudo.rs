//! herald against a real sockudo (built by `scripts/test` with `cargo install sockudo`), with a
//! real pusher-js client: every event of a 1,000-event run arrives once, public, end-to-end
//! encrypted and multi-channel; and a batch whose answer was lost after sockudo published it is
//! retried with the same `idempotency_key`s, so sockudo drops the copy: each client sees each
//! event once. (That the retry is byte for byte is checked against the strict fake, in
//! `pusher_scale`: sockudo 5.2.0 drops a repeated key without comparing the payload.) The
//! documented sockudo preset holds at its edges: at every limit sockudo takes the event, past
//! any of them herald dead-letters it first.
//!
//! Each test skips with a message when the sockudo binary is absent (its build needs `protoc`
//! and about 18 minutes of both cores); it never fails for that.

use std::collections::BTreeMap;

use herald_testkit::RedisServer;
use serde_json::json;

use crate::pusher::{Server, envelope, every_event_reaches_pusher_js, next_event};
use crate::support::herald::{Running, config};
use crate::support::sockudo::{self, LosingProxy, Sockudo};
use crate::support::{peers, push, queue, settled_and_clean};

fn server(port: u16) -> Server<'static> {
    Server {
        port,
        app_id: Sockudo::APP_ID,
        key: Sockudo::KEY,
        secret: Sockudo::SECRET,
    }
}

/// sockudo started and the npm peers installed; `None`, with the skip message, when there is
/// no sockudo binary.
async fn started() -> Option<(Sockudo, std::path::PathBuf)> {
    let Some(bin) = sockudo::binary() else {
        // libtest names a test's thread after the test.
        sockudo::skipped(std::thread::current().name().unwrap_or("a sockudo test"));
        return None;
    };
    let peers = peers::installed();
    Some((Sockudo::start(&bin).await, peers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_clients_receive_every_event_from_sockudo() {
    let Some((sockudo, peers)) = started().await else {
        return;
    };
    every_event_reaches_pusher_js(&peers, &server(sockudo.port)).await;
    drop(sockudo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_answer_was_lost_is_retried_and_sockudo_delivers_each_event_once() {
    let Some((sockudo, peers)) = started().await else {
        return;
    };
    let proxy = LosingProxy::start(sockudo.port, "lose-this-answer").await;
    let channels = ["orders", "private-encrypted-vault"];
    // The client talks to sockudo directly; herald reaches it through the proxy.
    let mut client = server(sockudo.port)
        .client(&peers, &channels.join(","))
        .await;
    let redis = RedisServer::start();
    let pusher = server(proxy.port).connection(Sockudo::SECRET);
    let herald = Running::start(config(
        &redis,
        "",
        &format!("[retry]\nmax_attempts = 5\ndelays = [\"20ms\"]\n{pusher}"),
    ))
    .await;

    // One envelope on a public and an encrypted channel: one batch_events request of two
    // events, the public one carrying the marker in clear, the encrypted one only ciphertext.
    let lost = json!({"i": 0, "note": "lose-this-answer"});
    push(&redis, &[envelope("lost-0", &channels, lost.clone())]).await;
    settled_and_clean(&queue(&redis)).await;
    assert_eq!(
        proxy.lost(),
        1,
        "the proxy lost no answer: nothing was retried"
    );

    // A barrier, pushed after the retry was answered: once it arrived on both channels,
    // any copy of the first event would have arrived before it.
    let barrier = json!({"i": 1, "note": "barrier"});
    push(&redis, &[envelope("barrier-1", &channels, barrier.clone())]).await;
    let mut seen: BTreeMap<(String, String, i64), u32> = BTreeMap::new();
    while channels
        .iter()
        .any(|c| !seen.contains_key(&("OrderShipped".to_string(), c.to_string(), 1)))
    {
        let (key, data) = next_event(&mut client).await;
        assert_eq!(data, if key.2 == 0 { &lost } else { &barrier }.clone());
        *seen.entry(key).or_default() += 1;
    }
    for c in channels {
        let first = ("OrderShipped".to_string(), c.to_string(), 0);
        assert_eq!(
            seen.get(&first),
            Some(&1),
            "{c}: {seen:?}\n{}",
            sockudo.log()
        );
    }
    assert!(
        sockudo.metric("sockudo_idempotency_duplicates_total").await >= 2.0,
        "sockudo caught no duplicate: the retry did not reach it\n{}",
        sockudo.log()
    );
    settled_and_clean(&queue(&redis)).await;
    herald.stop().await.unwrap();
    client.finish().await;
}

/// The sockudo preset of docs/pusher.md, checked at its edges against the real server: an event
/// exactly at every limit is accepted by sockudo and reaches the client; one a byte or a
/// character over any limit is dead-lettered by herald's own check, before any request (the
/// code is herald's, not sockudo's `http_4xx`). A preset looser than sockudo would fail the
/// second half, a stricter one the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_sockudo_limits_are_exactly_what_sockudo_accepts() {
    let Some((sockudo, peers)) = started().await else {
        return;
    };
    let channel = "c".repeat(100);
    let mut client = server(sockudo.port).client(&peers, &channel).await;
    let redis = RedisServer::start();
    let preset = "max_channel_name = 100\nmax_event_name = 100\nmax_data_bytes = 102400\n";
    let pusher = server(sockudo.port).connection_with(Sockudo::SECRET, preset);
    let herald = Running::start(config(&redis, "", &pusher)).await;

    // `data` as sent is the JSON text of the envelope's data: {"i":N,"pad":"…"}.
    let data = |i: i64, bytes: usize| {
        let pad = bytes - format!("{{\"i\":{i},\"pad\":\"\"}}").len();
        json!({"i": i, "pad": "x".repeat(pad)})
    };
    let event = |id: &str, name: &str, channel: &str, data: &serde_json::Value| {
        json!({"id": id, "event": name, "channels": [channel], "data": data}).to_string()
    };
    let (name, at_limit) = ("E".repeat(100), data(0, 102_400));
    push(
        &redis,
        &[
            event("long-channel", &name, &"c".repeat(101), &data(1, 20)),
            event("long-name", &"E".repeat(101), &channel, &data(2, 20)),
            event("large-data", &name, &channel, &data(3, 102_401)),
            event("at-every-limit", &name, &channel, &at_limit),
        ],
    )
    .await;
    let (key, got) = next_event(&mut client).await;
    assert_eq!(key, (name.clone(), channel.clone(), 0), "{}", sockudo.log());
    assert_eq!(got, at_limit);

    let q = queue(&redis);
    crate::support::settled(&q).await;
    for (id, code) in [
        ("long-channel", "bad_channel"),
        ("long-name", "event_name_too_long"),
        ("large-data", "data_too_large"),
    ] {
        let dead = q
            .failed_get(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id}: no dead letter"));
        assert_eq!(dead.code, code, "{id}: {}", dead.reason);
    }
    assert_eq!(q.failed_list(0, 10).await.unwrap().len(), 3);
    herald.stop().await.unwrap();
    client.finish().await;
}
