//! The Pusher broadcaster against servers with production limits (issue 11), on the strict
//! fake: Reverb's request-size limit (413 and a closed connection), servers that close the
//! connection after every answer without saying so, encrypted retries byte for byte.

use herald_testkit::{FakeLimits, PusherFake, RedisServer};
use serde_json::json;

use crate::pusher::{dead_letter, envelope, fake_sections, with_fake};
use std::time::Duration;

use herald::ops::{Actor, Selection};
use herald_testkit::Action;

use crate::support::deployment::Deployment;
use crate::support::herald::{Running, config};
use crate::support::{eventually, guard, keys, push, queue, settled};

async fn scard(redis: &RedisServer, key: &str) -> usize {
    let mut c = redis.conn().await;
    redis::cmd("SCARD")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap()
}

fn wide(id: &str) -> String {
    let channels: Vec<String> = (0..150).map(|i| format!("room.{i}")).collect();
    let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
    envelope(id, &channels, json!({"wide": true}))
}

/// A burst of large events under Reverb's 10,000-byte request limit: packed so no request is
/// refused, and the one event that cannot fit alone is dead-lettered before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_large_events_fits_reverbs_request_limit() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.set_limits(FakeLimits {
        max_request_bytes: Some(10_000),
        ..FakeLimits::default()
    });
    let mut envelopes: Vec<String> = (0..20)
        .map(|i| {
            let note = "n".repeat(3_000 + 200 * i);
            envelope(
                &format!("r{i}"),
                &[&format!("room.{i}")],
                json!({"note": note}),
            )
        })
        .collect();
    // Under max_data_bytes (10240), over what a 10,000-byte request can carry.
    envelopes.push(envelope(
        "huge",
        &["room.x"],
        json!({"note": "h".repeat(9_950)}),
    ));
    push(&redis, &envelopes).await;
    let herald = Running::start(with_fake(
        &redis,
        &fake,
        "concurrency = 1",
        "max_request_bytes = 10000",
        "",
    ))
    .await;

    let q = queue(&redis);
    let dead = dead_letter(&q, "huge").await;
    guard("20 events at the fake", fake.wait_for_events(20)).await;
    settled(&q).await;
    herald.stop().await.unwrap();
    assert_eq!(dead.code, "request_too_large", "{}", dead.reason);
    assert!(
        dead.reason.contains("max_request_bytes of 10000"),
        "{}",
        dead.reason
    );
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.status == 200 && r.bytes <= 10_000),
        "no request over the limit: {:?}",
        requests
            .iter()
            .map(|r| (r.status, r.bytes))
            .collect::<Vec<_>>()
    );
    assert!(
        requests.iter().any(|r| r.events > 1),
        "small enough events still share a request"
    );
    let events = fake.events();
    assert_eq!(events.len(), 20);
    assert!(events.iter().all(|e| e.channel != "room.x"));
    println!(
        "20 events of 3-7 KB under a 10,000-byte request limit: {} requests, largest {} bytes",
        requests.len(),
        requests.iter().map(|r| r.bytes).max().unwrap_or(0)
    );
}

/// A server that closes every connection after one answer without saying so (Reverb): the
/// request that meets the closed pooled connection is sent again on a fresh one within the
/// same attempt. With max_attempts = 1 a spent attempt would be a dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_after_every_answer_costs_no_attempt() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.close_after_every_response(true);
    let text = format!(
        "[retry]\nmax_attempts = 1\n[broadcasting]\ndefault = [\"pusher\"]\n{}",
        fake.connection_toml("pusher", "")
    );
    let herald = Running::start(config(&redis, "concurrency = 1", &text)).await;
    let q = queue(&redis);
    for i in 0..6 {
        push(
            &redis,
            &[envelope(&format!("k{i}"), &["orders"], json!({"i": i}))],
        )
        .await;
        guard("the event at the fake", fake.wait_for_events(i + 1)).await;
        settled(&q).await;
    }
    let metrics = herald.metrics().await;
    herald.stop().await.unwrap();
    assert!(
        q.failed_list(0, 10).await.unwrap().is_empty(),
        "no attempt spent"
    );
    let requests = fake.requests();
    let closed = requests.iter().filter(|r| r.status == 0).count();
    assert!(
        closed >= 1,
        "some request met a closed connection: {requests:?}"
    );
    let line =
        format!(r#"herald_pusher_stale_connection_retries_total{{connection="pusher"}} {closed}"#);
    assert!(metrics.contains(&line), "/metrics lacks {line}");
    let data: Vec<String> = fake.events().into_iter().map(|e| e.data).collect();
    let want: Vec<String> = (0..6).map(|i| format!(r#"{{"i":{i}}}"#)).collect();
    assert_eq!(data, want, "each once, in order");
}

/// Regression (§3): each attempt at an encrypted channel was encrypted with a fresh nonce, so a
/// retry carried other bytes under the same idempotency key, which a server comparing payloads
/// refuses. The nonce now derives from the channel's key and the unit's key: after two 500s the
/// third request is the first byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_events_retries_are_byte_identical() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.fail_next(500, 2);
    let master = "encryption_master_key_base64 = \"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\"";
    let herald = Running::start(with_fake(&redis, &fake, "", master, "")).await;
    let channels = ["private-encrypted-vault", "orders"];
    push(&redis, &[envelope("enc", &channels, json!({"secret": 1}))]).await;
    let events = guard("both events at the fake", fake.wait_for_events(2)).await;
    settled(&queue(&redis)).await;
    herald.stop().await.unwrap();
    let vault = events
        .iter()
        .find(|e| e.channel == "private-encrypted-vault");
    assert!(
        vault.is_some_and(|e| e.data.contains("ciphertext")),
        "encrypted: {events:?}"
    );
    let requests = fake.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200],
        "{requests:?}"
    );
    for r in &requests[1..] {
        assert_eq!(r.body_md5, requests[0].body_md5, "{requests:?}");
        assert_eq!(r.idempotency_keys, requests[0].idempotency_keys);
    }
}

/// A split event's delivered part is recorded the moment its request succeeds, while the other
/// part's request is still unanswered; the record goes once the event is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_events_progress_is_written_as_each_part_succeeds() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    // Whichever of the two /events requests (100 + 50 channels) arrives first is answered late:
    // a window to observe the record, not a synchronisation.
    fake.script(Action::Slow(Duration::from_secs(15)), 1);
    let herald = Running::start(with_fake(&redis, &fake, "", "timeout = \"60s\"", "")).await;
    push(&redis, &[wide("w1")]).await;
    eventually(
        "the first part recorded while the other is unanswered",
        || async {
            let pending = fake.requests().iter().any(|r| r.answered_ms == 0);
            (pending && scard(&redis, &keys::pusher_sent("w1")).await == 1).then_some(())
        },
    )
    .await;
    guard("150 events at the fake", fake.wait_for_events(150)).await;
    settled(&queue(&redis)).await;
    eventually("the record deleted with the event complete", || async {
        (scard(&redis, &keys::pusher_sent("w1")).await == 0).then_some(())
    })
    .await;
    herald.stop().await.unwrap();
}

/// The record of a dead-lettered split event lives as long as the dead letter: forgetting the
/// dead letter deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_takes_its_progress_record_with_it() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.reject_matching("room.149", 400);
    let herald = Running::start(with_fake(&redis, &fake, "", "", "")).await;
    push(&redis, &[wide("w2")]).await;
    let q = queue(&redis);
    let dead = dead_letter(&q, "w2").await;
    settled(&q).await;
    herald.stop().await.unwrap();
    assert_eq!(dead.code, "http_4xx", "{}", dead.reason);
    assert_eq!(fake.events().len(), 100, "the first part went out");
    assert_eq!(
        scard(&redis, &keys::pusher_sent("w2")).await,
        1,
        "one part recorded"
    );
    let done = q
        .forget(&Actor::cli(), &Selection::Ids(vec!["w2".into()]))
        .await
        .unwrap();
    assert_eq!(done.done.len(), 1);
    assert_eq!(
        scard(&redis, &keys::pusher_sent("w2")).await,
        0,
        "gone with the dead letter"
    );
}

/// A daily quota shared through Redis: what exceeds it waits in the delayed set for the next
/// day (no attempt used, max_attempts = 1 would dead-letter a spent attempt), never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_defers_and_never_drops() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    let text = format!(
        "[retry]\nmax_attempts = 1\n[broadcasting]\ndefault = [\"pusher\"]\n{}",
        fake.connection_toml("pusher", "daily_quota = 3"),
    );
    let herald = Running::start(config(&redis, "concurrency = 1", &text)).await;
    let q = queue(&redis);
    for i in 0..5 {
        push(
            &redis,
            &[envelope(&format!("d{i}"), &["quota"], json!({"i": i}))],
        )
        .await;
        eventually("the envelope handled", || async {
            let s = q.stats().await.ok()?;
            (s.waiting == 0 && s.processing == 0).then_some(())
        })
        .await;
    }
    let stats = q.stats().await.unwrap();
    let metrics = herald.metrics().await;
    herald.stop().await.unwrap();
    assert_eq!(fake.events().len(), 3, "the quota's three");
    assert_eq!(stats.delayed, 2, "the rest wait for tomorrow");
    assert!(
        q.failed_list(0, 10).await.unwrap().is_empty(),
        "no attempt spent"
    );
    let line = r#"herald_pusher_budget_left{connection="pusher",kind="quota"} 0"#;
    assert!(metrics.contains(line), "/metrics lacks {line}");
}

/// A shared rate: events beyond the bucket are deferred and retried until the bucket refills;
/// every one arrives, none uses an attempt, and the bucket shows in a gauge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_rate_delays_but_delivers_everything() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    let text = format!(
        "[retry]\nmax_attempts = 1\n[broadcasting]\ndefault = [\"pusher\"]\n{}",
        fake.connection_toml("pusher", "rate_per_second = 20\nrate_burst = 2"),
    );
    let herald = Running::start(config(&redis, "concurrency = 2\nbatch_size = 2", &text)).await;
    let envelopes: Vec<String> = (0..12)
        .map(|i| envelope(&format!("t{i}"), &[&format!("rate.{i}")], json!({"i": i})))
        .collect();
    push(&redis, &envelopes).await;
    guard("12 events at the fake", fake.wait_for_events(12)).await;
    let q = queue(&redis);
    settled(&q).await;
    let metrics = herald.metrics().await;
    herald.stop().await.unwrap();
    assert!(
        q.failed_list(0, 10).await.unwrap().is_empty(),
        "no attempt spent"
    );
    assert!(
        metrics.contains(r#"herald_pusher_budget_left{connection="pusher",kind="rate"}"#),
        "the bucket's gauge"
    );
}

/// A short outage while events keep arriving (the test-sized version of issue 11's outage;
/// the 60-second one is `herald bench --outage`): the endpoint answers 503 until the circuit
/// opens, deliveries wait parked, and after recovery every event arrives once, none
/// dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_while_events_arrive_loses_nothing() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.keep_details(true);
    fake.fail_next(503, 12);
    let herald = Running::start(with_fake(
        &redis,
        &fake,
        "",
        "circuit_failures = 3\ncircuit_open_for = \"200ms\"",
        "",
    ))
    .await;
    for round in 0..5 {
        let envelopes: Vec<String> = (0..100)
            .map(|i| {
                let n = round * 100 + i;
                envelope(&format!("o{n}"), &[&format!("out.{n}")], json!({"n": n}))
            })
            .collect();
        push(&redis, &envelopes).await;
    }
    guard("500 events at the fake", fake.wait_for_events(500)).await;
    let q = queue(&redis);
    settled(&q).await;
    herald.stop().await.unwrap();
    assert!(
        q.failed_list(0, 10).await.unwrap().is_empty(),
        "nothing dead-lettered"
    );
    let mut per_channel = std::collections::BTreeMap::<String, usize>::new();
    for e in fake.events() {
        *per_channel.entry(e.channel).or_default() += 1;
    }
    assert_eq!(per_channel.len(), 500);
    assert!(per_channel.values().all(|&n| n == 1), "each once");
    let failed = fake.requests().iter().filter(|r| r.status == 503).count();
    assert_eq!(failed, 12, "the outage was seen");
}

/// Regression: an outage's backlog drained in no particular order (`herald bench --outage`
/// measured 31.5 % adjacent inversions): each deferred envelope came back round the queue
/// behind newer ones whenever the circuit might close. Parked for the circuit, the backlog
/// drains oldest first once it closes: no event arrives more than one batch (its requests run
/// concurrently) away from its place in order of age, except an envelope that carried a
/// failed probe (its own attempt failed: it retries with backoff, as any failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_backlog_drains_oldest_first() {
    outage_backlog_drains_oldest_first(Deployment::standalone()).await;
}

/// The same on a cluster: the parked sets live in the queue's slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_backlog_drains_oldest_first_on_a_cluster() {
    outage_backlog_drains_oldest_first(Deployment::cluster()).await;
}

async fn outage_backlog_drains_oldest_first(redis: Deployment) {
    const N: usize = 2000;
    const WINDOW: usize = 50;
    let fake = PusherFake::start().await.unwrap();
    fake.keep_details(true);
    fake.reject_matching("OrderShipped", 503);
    let herald = Running::start(redis.config(
        "concurrency = 1\nbatch_size = 50\npromote_interval = \"20ms\"",
        &fake_sections(
            &fake,
            "circuit_failures = 3\ncircuit_open_for = \"200ms\"",
            "",
        ),
    ))
    .await;
    // One envelope, retried every 20 ms, fails until the circuit opens.
    redis.push(&[envelope("trip", &["trip"], json!({}))]).await;
    let circuit = "herald:circuit:pusher";
    eventually("the circuit to open", || async {
        let mut c = redis.conn_for(circuit).await;
        let open: Option<String> = redis::cmd("GET")
            .arg(circuit)
            .query_async(&mut c)
            .await
            .ok()?;
        open.map(|_| ())
    })
    .await;
    let backlog: Vec<String> = (0..N)
        .map(|i| {
            json!({
                "id": format!("o{i}"),
                "event": "OrderShipped",
                "channels": [format!("out.{i}")],
                "data": {"n": i},
                "created_at": 1_700_000_000.0 + i as f64 / 1000.0,
            })
            .to_string()
        })
        .collect();
    redis.push(&backlog).await;
    let q = redis.queue();
    eventually("the backlog to be parked", || async {
        let s = q.stats().await.ok()?;
        (s.parked as usize >= N && s.waiting == 0).then_some(())
    })
    .await;

    fake.clear_rejections();
    guard("the backlog at the fake", fake.wait_for_events(N + 1)).await;
    settled(&q).await;
    herald.stop().await.unwrap();
    let events = fake.events();
    let order: Vec<usize> = events
        .iter()
        .filter_map(|e| e.channel.strip_prefix("out.")?.parse().ok())
        .collect();
    let probed: std::collections::HashSet<Option<String>> = fake
        .requests()
        .into_iter()
        .filter(|r| r.status == 503)
        .flat_map(|r| r.idempotency_keys)
        .collect();
    let carried_a_failed_probe = |age_rank: usize| {
        let e = events
            .iter()
            .find(|e| e.channel == format!("out.{age_rank}"));
        e.is_some_and(|e| probed.contains(&e.idempotency_key))
    };
    let mut each = order.clone();
    each.sort_unstable();
    assert_eq!(each, (0..N).collect::<Vec<_>>(), "every event once");
    let out_of_place: Vec<(usize, usize)> = order
        .iter()
        .enumerate()
        .filter(|(at, age_rank)| at.abs_diff(**age_rank) > WINDOW)
        .filter(|(_, age_rank)| !carried_a_failed_probe(**age_rank))
        .map(|(at, age_rank)| (at, *age_rank))
        .collect();
    assert!(
        out_of_place.is_empty(),
        "{} of {N} events arrived more than {WINDOW} places from their order of age, e.g. \
         (arrived at, age rank) {:?}",
        out_of_place.len(),
        &out_of_place[..out_of_place.len().min(10)]
    );
    assert!(
        q.failed_list(0, 10).await.unwrap().is_empty(),
        "nothing dead-lettered"
    );
}

/// Regression (noted last time): envelopes parked for a circuit that something else closed (a
/// probe of another replica, or of another queue's task) waited on an idle queue until a
/// blocked worker's `BLMOVE` timed out (`worker.block_timeout`). Unparking a closed circuit's
/// few envelopes (at most 1,000) now moves them onto an empty queue, oldest at its head, which
/// wakes a blocked worker. Here `block_timeout` is 10 minutes and herald's own probe
/// 10 minutes away, both far beyond the test's guard: only that wake-up can deliver in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_closed_elsewhere_wakes_an_idle_queues_parked_backlog() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    fake.reject_matching("OrderShipped", 503);
    let herald = Running::start(with_fake(
        &redis,
        &fake,
        "concurrency = 1\nblock_timeout = \"10m\"\npromote_interval = \"20ms\"",
        "circuit_failures = 3\ncircuit_open_for = \"10m\"",
        "",
    ))
    .await;
    let circuit = "herald:circuit:pusher";
    let backlog: Vec<String> = (0..20)
        .map(|i| envelope(&format!("p{i}"), &[&format!("out.{i}")], json!({"n": i})))
        .collect();
    push(&redis, &backlog).await;
    let q = queue(&redis);
    eventually("the backlog to be parked", || async {
        let s = q.stats().await.ok()?;
        (s.parked == 20 && s.waiting == 0 && s.processing == 0).then_some(())
    })
    .await;

    // The server is back, and another replica's probe closed the circuit for everyone.
    fake.clear_rejections();
    let mut c = redis.conn().await;
    let _: () = redis::cmd("DEL")
        .arg(circuit)
        .arg(format!("{circuit}:probe"))
        .query_async(&mut c)
        .await
        .unwrap();
    guard("the parked backlog at the fake", fake.wait_for_events(20)).await;
    settled(&q).await;
    herald.stop().await.unwrap();
    assert!(q.failed_list(0, 10).await.unwrap().is_empty());
}
