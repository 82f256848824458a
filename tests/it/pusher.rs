//! The Pusher broadcaster against a strict local fake and a real Pusher-compatible server.
//!
//! Against `herald_testkit::PusherFake` (signatures checked as strictly as sockudo): retries,
//! 429 + Retry-After, 413 isolation, the shared circuit, limits, batching, idempotency, chunked
//! events. Against soketi installed from npm, with a real pusher-js client over WebSocket: every
//! event of a 1,000-event run arrives, public, private-encrypted and multi-channel; a wrong
//! secret is dead-lettered with the server's signature rejection.

use std::collections::BTreeMap;
use std::time::Duration;

use herald::ops::QueueOps;
use herald_testkit::PusherFake;
use serde_json::{Value, json};

use crate::support::herald::{Running, config};
use crate::support::keys;
use crate::support::peers::{self, NodeScript, Soketi};
use crate::support::subscriber::Subscriber;
use crate::support::{eventually, guard, push};
use crate::support::{queue, settled};
use herald_testkit::RedisServer;

/// herald broadcasting on the fake only, fast retries; `conn` and `extra` are appended.
pub(crate) fn with_fake(
    redis: &RedisServer,
    fake: &PusherFake,
    worker: &str,
    conn: &str,
    extra: &str,
) -> herald::Config {
    config(redis, worker, &fake_sections(fake, conn, extra))
}

/// The config sections of [`with_fake`] after `[worker]`, for any `[redis]` section.
pub(crate) fn fake_sections(fake: &PusherFake, conn: &str, extra: &str) -> String {
    format!(
        "[retry]\nmax_attempts = 10\ndelays = [\"20ms\"]\n[broadcasting]\ndefault = [\"pusher\"]\n{}\n{extra}",
        fake.connection_toml("pusher", conn)
    )
}

pub(crate) fn envelope(id: &str, channels: &[&str], data: Value) -> String {
    json!({"id": id, "event": "OrderShipped", "channels": channels, "data": data}).to_string()
}

pub(crate) async fn dead_letter(q: &QueueOps, id: &str) -> herald::ops::DeadLetter {
    eventually(&format!("the dead letter {id}"), || async {
        q.failed_get(id).await.unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_500s_then_delivered_exactly_once() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.fail_next(500, 3);
    let herald = Running::start(with_fake(&redis, &fake, "", "", "")).await;
    push(
        &redis,
        &[envelope("p1", &["orders.1"], json!({"order_id": 1}))],
    )
    .await;

    let events = guard("the event at the fake", fake.wait_for_events(1)).await;
    settled(&queue(&redis)).await;
    assert_eq!(events[0].name, "OrderShipped");
    assert_eq!(events[0].channel, "orders.1");
    assert_eq!(events[0].data, r#"{"order_id":1}"#);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    let text = herald.metrics().await;
    for line in [
        r#"herald_pusher_requests_total{connection="pusher",status="500"} 3"#,
        r#"herald_pusher_requests_total{connection="pusher",status="200"} 1"#,
        r#"herald_circuit_open{connection="pusher"} 0"#,
    ] {
        assert!(text.contains(line), "/metrics lacks {line}");
    }
    herald.stop().await.unwrap();
    assert_eq!(fake.events().len(), 1, "delivered exactly once");
    assert!(queue(&redis).failed_list(0, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_no_sooner_than_retry_after() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.rate_limit_next(1, 1);
    let herald = Running::start(with_fake(&redis, &fake, "", "", "")).await;
    push(&redis, &[envelope("p2", &["orders.2"], json!({}))]).await;

    guard("the event at the fake", fake.wait_for_events(1)).await;
    let r = fake.requests();
    assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    // herald got the 429 after the fake answered it, and asked again no sooner than 1 s later.
    let waited = r[1].received_ms - r[0].answered_ms;
    assert!(
        waited >= 1000,
        "retried after {waited} ms, Retry-After was 1 s"
    );
    herald.stop().await.unwrap();
    assert_eq!(fake.events().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_batch_dead_letters_only_the_oversize_event() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.reject_matching("OVERSIZE", 413);
    // Ten single-channel events queued before herald starts: one reserved batch, one
    // /batch_events request of ten.
    let envelopes: Vec<String> = (0..10)
        .map(|i| {
            let note = if i == 6 { "OVERSIZE" } else { "fine" };
            envelope(
                &format!("b{i}"),
                &[&format!("orders.{i}")],
                json!({"i": i, "note": note}),
            )
        })
        .collect();
    push(&redis, &envelopes).await;
    let herald = Running::start(with_fake(&redis, &fake, "concurrency = 1", "", "")).await;

    let q = queue(&redis);
    let dead = dead_letter(&q, "b6").await;
    settled(&q).await;
    assert_eq!(dead.code, "http_4xx");
    assert_eq!(dead.attempts, 1, "fatal at once, not retried");
    assert!(
        dead.reason.contains("HTTP 413") && dead.reason.contains("exceeds the allowed maximum"),
        "the dead letter names the server's message: {}",
        dead.reason
    );
    let delivered: Vec<String> = fake.events().into_iter().map(|e| e.channel).collect();
    assert_eq!(delivered.len(), 9, "{delivered:?}");
    assert!(!delivered.contains(&"orders.6".to_string()));
    assert_eq!(q.failed_list(0, 20).await.unwrap().len(), 1);
    let first = &fake.requests()[0];
    assert_eq!(
        (first.path.as_str(), first.events, first.status),
        ("/apps/app-id/batch_events", 10, 413)
    );
    herald.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_broadcast_is_published_once_while_pusher_fails_twice() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.fail_next(503, 2);
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let herald = Running::start(config(
        &redis,
        "",
        &format!(
            "[retry]\nmax_attempts = 10\ndelays = [\"20ms\"]\n[broadcasting]\ndefault = [\"redis\", \"pusher\"]\n\
             [broadcasting.connections.redis]\ndriver = \"redis\"\n{}",
            fake.connection_toml("pusher", "")
        ),
    ))
    .await;
    push(
        &redis,
        &[envelope("r1", &["orders.3"], json!({"order_id": 3}))],
    )
    .await;

    guard("the event at the fake", fake.wait_for_events(1)).await;
    settled(&queue(&redis)).await;
    herald.stop().await.unwrap();
    assert_eq!(fake.requests().len(), 3);
    let published = sub.rest().await;
    assert_eq!(published.len(), 1, "published exactly once: {published:?}");
    assert_eq!(published[0].0, "orders.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_sends_nothing_until_one_probe_closes_it() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.fail_next(500, 3);
    let herald = Running::start(with_fake(
        &redis,
        &fake,
        "",
        "circuit_failures = 3\ncircuit_open_for = \"1s\"",
        "",
    ))
    .await;
    push(&redis, &[envelope("c1", &["orders.4"], json!({}))]).await;

    // The third failure opens the circuit, shared in Redis.
    let mut c = redis.conn().await;
    let value: String = eventually("the circuit to open in Redis", || {
        let mut c = c.clone();
        async move {
            ::redis::cmd("GET")
                .arg(keys::circuit("pusher"))
                .query_async::<Option<String>>(&mut c)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(value.contains("3 consecutive failing requests"), "{value}");

    guard("the event at the fake", fake.wait_for_events(1)).await;
    settled(&queue(&redis)).await;
    let r = fake.requests();
    assert_eq!(
        r.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    // While open (1 s from herald seeing the third failure) nothing was sent; then one probe.
    let quiet = r[3].received_ms - r[2].answered_ms;
    assert!(
        quiet >= 1000,
        "a request {quiet} ms after the circuit opened"
    );
    let gone: Option<String> = ::redis::cmd("GET")
        .arg(keys::circuit("pusher"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(gone, None, "the probe closed the circuit");
    assert!(
        herald
            .metrics()
            .await
            .contains(r#"herald_circuit_open{connection="pusher"} 0"#)
    );
    herald.stop().await.unwrap();
    assert_eq!(fake.events().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_opened_by_another_replica_defers_until_a_single_probe() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    // Another replica opened the circuit: open for 1.5 s more.
    let open_until = crate::support::now_ms() + 1500;
    let mut c = redis.conn().await;
    let _: () = ::redis::cmd("SET")
        .arg(keys::circuit("pusher"))
        .arg(format!("{open_until} opened by another replica"))
        .arg("PX")
        .arg(60_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let envelopes: Vec<String> = (0..30)
        .map(|i| envelope(&format!("d{i}"), &["orders"], json!({"i": i})))
        .collect();
    push(&redis, &envelopes).await;
    let herald = Running::start(with_fake(
        &redis,
        &fake,
        "concurrency = 1",
        "circuit_open_for = \"1s\"",
        "",
    ))
    .await;

    guard("30 events at the fake", fake.wait_for_events(30)).await;
    settled(&queue(&redis)).await;
    let r = fake.requests();
    assert!(
        r.iter().all(|r| r.received_ms >= open_until),
        "a request while open: {r:?}"
    );
    assert!(r.len() >= 3, "{r:?}");
    assert!(
        r[1..].iter().all(|x| x.received_ms >= r[0].answered_ms),
        "the probe went alone, then the rest: {r:?}"
    );
    let keys: i64 = ::redis::cmd("EXISTS")
        .arg(keys::circuit("pusher"))
        .arg(keys::circuit_probe("pusher"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys, 0);
    herald.stop().await.unwrap();
    assert_eq!(fake.events().len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_violations_are_dead_lettered_without_a_request() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    let big = "x".repeat(10_300);
    let long_channel = "c".repeat(30);
    let envelopes = vec![
        envelope("too-big", &["orders"], json!({"blob": big})),
        json!({"id": "bad-socket", "event": "E", "channels": ["orders"], "data": {}, "socket": "Fk1Sx2Ztxd3Bqc4oAAAB"}).to_string(),
        json!({"id": "long-name", "event": "E".repeat(60), "channels": ["orders"], "data": {}}).to_string(),
        envelope("long-channel", &[&long_channel], json!({})),
        envelope("no-key", &["private-encrypted-v"], json!({})),
        envelope("fine", &["orders"], json!({"ok": true})),
    ];
    push(&redis, &envelopes).await;
    let herald = Running::start(with_fake(
        &redis,
        &fake,
        "concurrency = 1",
        "max_event_name = 50\nmax_channel_name = 20",
        "",
    ))
    .await;

    let q = queue(&redis);
    for (id, code, needle) in [
        ("too-big", "data_too_large", "max_data_bytes of 10240"),
        ("bad-socket", "bad_socket_id", "Fk1Sx2Ztxd3Bqc4oAAAB"),
        ("long-name", "event_name_too_long", "60 bytes"),
        ("long-channel", "bad_channel", "over the limit of 20"),
        (
            "no-key",
            "no_encryption_key",
            "encryption_master_key_base64",
        ),
    ] {
        let dead = dead_letter(&q, id).await;
        assert_eq!(dead.code, code, "{id}: {}", dead.reason);
        assert_eq!(dead.attempts, 1);
        assert!(
            dead.reason.contains(needle) && dead.reason.contains(&format!("event {id}")),
            "{id}: {}",
            dead.reason
        );
    }
    settled(&q).await;
    herald.stop().await.unwrap();
    let r = fake.requests();
    assert_eq!(r.len(), 1, "only the valid event was sent: {r:?}");
    assert_eq!(r[0].events, 1);
    assert_eq!(fake.events()[0].data, r#"{"ok":true}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_single_channel_events_take_at_most_110_requests() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    let envelopes: Vec<String> = (0..1000)
        .map(|i| {
            envelope(
                &format!("n{i}"),
                &[&format!("user.{}", i % 37)],
                json!({"i": i}),
            )
        })
        .collect();
    push(&redis, &envelopes).await;
    let herald = Running::start(with_fake(&redis, &fake, "", "", "")).await;

    let events = guard("1000 events at the fake", fake.wait_for_events(1000)).await;
    settled(&queue(&redis)).await;
    herald.stop().await.unwrap();
    let requests = fake.requests().len();
    eprintln!("Pusher requests per 1,000 single-channel events: {requests}");
    assert!(requests <= 110, "{requests} requests for 1,000 events");
    let mut seen: Vec<i64> = events
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(&e.data).unwrap()["i"]
                .as_i64()
                .unwrap()
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..1000).collect::<Vec<_>>(),
        "each event exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_request_is_not_delivered_twice_where_idempotency_is_honoured() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.honour_idempotency(true);
    // The server takes the event, then answers too late: herald times out and retries.
    fake.slow_next(Duration::from_secs(2), 1);
    let herald = Running::start(with_fake(&redis, &fake, "", "timeout = \"300ms\"", "")).await;
    push(
        &redis,
        &[envelope("i1", &["orders.5"], json!({"order_id": 5}))],
    )
    .await;

    let q = queue(&redis);
    guard("the retry", fake.wait_for_requests(2)).await;
    settled(&q).await;
    herald.stop().await.unwrap();
    let r = fake.requests();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].idempotency_keys, r[1].idempotency_keys);
    assert!(
        r[0].idempotency_keys[0]
            .as_deref()
            .is_some_and(|k| k.starts_with("herald-"))
    );
    assert_eq!(fake.events().len(), 1, "the retry was recognised");
    assert!(q.failed_list(0, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_is_retried() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.reset_next(1);
    let herald = Running::start(with_fake(&redis, &fake, "", "", "")).await;
    push(&redis, &[envelope("x1", &["orders.6"], json!({}))]).await;

    guard("the event at the fake", fake.wait_for_events(1)).await;
    settled(&queue(&redis)).await;
    herald.stop().await.unwrap();
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [0, 200],
        "closed without an answer, then delivered"
    );
    assert_eq!(fake.events().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_event_resends_only_the_chunk_that_failed() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    // 150 channels: two /events requests (100 + 50); whichever arrives first fails once.
    fake.fail_next(500, 1);
    let channels: Vec<String> = (0..150).map(|i| format!("room.{i}")).collect();
    let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
    let herald = Running::start(with_fake(&redis, &fake, "", "", "")).await;
    push(&redis, &[envelope("w1", &channels, json!({"wide": true}))]).await;

    guard("150 events at the fake", fake.wait_for_events(150)).await;
    settled(&queue(&redis)).await;
    herald.stop().await.unwrap();
    let r = fake.requests();
    assert_eq!(r.len(), 3, "two chunks, then the failed one again: {r:?}");
    let mut per_channel: BTreeMap<String, usize> = BTreeMap::new();
    for e in fake.events() {
        *per_channel.entry(e.channel).or_default() += 1;
    }
    assert_eq!(per_channel.len(), 150);
    assert!(
        per_channel.values().all(|&n| n == 1),
        "a channel got the event twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_dead_lettered_with_the_signature_rejection() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    let conn = fake
        .connection_toml("pusher", "")
        .replace("secret = \"app-secret\"", "secret = \"not-the-secret\"");
    let herald = Running::start(config(
        &redis,
        "",
        &format!("[broadcasting]\ndefault = [\"pusher\"]\n{conn}"),
    ))
    .await;
    push(&redis, &[envelope("s1", &["orders"], json!({}))]).await;
    let dead = dead_letter(&queue(&redis), "s1").await;
    herald.stop().await.unwrap();
    assert_eq!((dead.code.as_str(), dead.attempts), ("http_4xx", 1));
    assert!(
        dead.reason.contains("HTTP 401") && dead.reason.contains("rejected the request signature"),
        "{}",
        dead.reason
    );
    assert_eq!(
        fake.requests()[0].error.as_deref(),
        Some("Invalid API signature")
    );
}

/// A 32-byte master key, base64, for the end-to-end test.
const MASTER_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// A Pusher-protocol server's one app, as herald and pusher-js reach it on loopback.
pub(crate) struct Server<'a> {
    pub port: u16,
    pub app_id: &'a str,
    pub key: &'a str,
    pub secret: &'a str,
}

impl Server<'_> {
    fn soketi(soketi: &Soketi) -> Server<'static> {
        Server {
            port: soketi.port,
            app_id: Soketi::APP_ID,
            key: Soketi::KEY,
            secret: Soketi::SECRET,
        }
    }

    /// herald's `pusher` connection to it, signing with `secret`.
    pub(crate) fn connection(&self, secret: &str) -> String {
        self.connection_with(secret, "")
    }

    /// [`Self::connection`] with the connection settings `extra` (TOML lines) added.
    pub(crate) fn connection_with(&self, secret: &str, extra: &str) -> String {
        format!(
            "[broadcasting]\ndefault = [\"pusher\"]\n[broadcasting.connections.pusher]\ndriver = \"pusher\"\n\
             app_id = \"{}\"\nkey = \"{}\"\nsecret = \"{secret}\"\nhost = \"127.0.0.1\"\nport = {}\n\
             scheme = \"http\"\nencryption_master_key_base64 = \"{MASTER_KEY}\"\n{extra}",
            self.app_id, self.key, self.port
        )
    }

    /// A pusher-js client subscribed to `channels`, ready (every subscription succeeded).
    pub(crate) async fn client(&self, peers: &std::path::Path, channels: &str) -> NodeScript {
        let mut client = NodeScript::start(
            peers,
            "pusher-client.js",
            &[
                ("PUSHER_HOST", "127.0.0.1".into()),
                ("PUSHER_PORT", self.port.to_string()),
                ("PUSHER_APP_ID", self.app_id.into()),
                ("PUSHER_APP_KEY", self.key.into()),
                ("PUSHER_APP_SECRET", self.secret.into()),
                ("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", MASTER_KEY.into()),
                ("CHANNELS", channels.into()),
            ],
        );
        let ready = client.next().await;
        assert_eq!(ready, json!({"ready": true}), "client: {}", client.stderr());
        client
    }
}

/// The next event `client` prints, as (event, channel, data.i) and its data; fails on an error.
pub(crate) async fn next_event(client: &mut NodeScript) -> ((String, String, i64), Value) {
    let line = client.next().await;
    assert!(
        line.get("error").is_none(),
        "client: {line}\n{}",
        client.stderr()
    );
    let key = (
        line["event"].as_str().unwrap_or("").to_string(),
        line["channel"].as_str().unwrap_or("").to_string(),
        line["data"]["i"].as_i64().unwrap_or(-1),
    );
    (key, line["data"].clone())
}

/// herald → `server` → a real pusher-js client: 1,000 events, 800 public, 100 end-to-end
/// encrypted, 100 on two channels at once; each arrives once, with its data unchanged.
pub(crate) async fn every_event_reaches_pusher_js(peers: &std::path::Path, server: &Server<'_>) {
    let redis = RedisServer::start();
    let mut client = server
        .client(peers, "orders,private-encrypted-vault,multi-a,multi-b")
        .await;
    let herald = Running::start(config(&redis, "", &server.connection(server.secret))).await;
    let mut expected: BTreeMap<(String, String, i64), Value> = BTreeMap::new();
    let envelopes: Vec<String> = (0..1000i64)
        .map(|i| {
            let (event, channels): (&str, Vec<&str>) = match i % 10 {
                8 => ("VaultOpened", vec!["private-encrypted-vault"]),
                9 => ("App\\Events\\RoomsChanged", vec!["multi-a", "multi-b"]),
                _ => ("OrderShipped", vec!["orders"]),
            };
            let data = json!({"i": i, "note": "caf\u{e9} / \u{2713} \"q\"", "nested": {"list": [1, 2.5, null]}});
            for c in &channels {
                expected.insert((event.to_string(), c.to_string(), i), data.clone());
            }
            json!({"id": format!("e2e-{i}"), "event": event, "channels": channels, "data": data, "socket": null})
                .to_string()
        })
        .collect();
    push(&redis, &envelopes).await;

    let mut received: BTreeMap<(String, String, i64), Value> = BTreeMap::new();
    while received.len() < expected.len() {
        let (key, data) = next_event(&mut client).await;
        assert!(
            received.insert(key.clone(), data).is_none(),
            "received twice: {key:?}"
        );
    }
    assert_eq!(received.len(), 1100);
    for (key, data) in &expected {
        assert_eq!(received.get(key), Some(data), "{key:?}");
    }
    settled(&queue(&redis)).await;
    assert!(queue(&redis).failed_list(0, 10).await.unwrap().is_empty());
    herald.stop().await.unwrap();
    client.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_clients_receive_every_event_from_soketi() {
    let peers = peers::installed();
    let soketi = Soketi::start(&peers).await;
    every_event_reaches_pusher_js(&peers, &Server::soketi(&soketi)).await;
    drop(soketi);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soketi_rejecting_a_wrong_secret_is_a_dead_letter_naming_the_signature() {
    let peers = peers::installed();
    let soketi = Soketi::start(&peers).await;
    let redis = RedisServer::start();
    let herald = Running::start(config(
        &redis,
        "",
        &Server::soketi(&soketi).connection("not-the-secret"),
    ))
    .await;
    push(&redis, &[envelope("ws1", &["orders"], json!({"i": 1}))]).await;
    let dead = dead_letter(&queue(&redis), "ws1").await;
    herald.stop().await.unwrap();
    assert_eq!(dead.code, "http_4xx", "{}", dead.reason);
    assert!(
        dead.reason.contains("HTTP 401")
            && dead.reason.contains("The secret authentication failed")
            && dead.reason.contains("rejected the request signature"),
        "{}\nsoketi log:\n{}",
        dead.reason,
        soketi.log()
    );
}
