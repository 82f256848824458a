//! Multi-app Pusher connections (`apps = "redis"`, `apps_dir`): credentials per app from a
//! Redis hash or a directory, never mixed; an app added while herald runs; an envelope that
//! names no app; metric labels bounded. End to end: two apps with different keys on one soketi,
//! each pusher-js client receiving only its app's events.

use std::collections::BTreeSet;

use herald_testkit::{PusherFake, RedisServer};
use serde_json::{Value, json};

use crate::pusher::dead_letter;
use crate::support::herald::{Running, config};
use crate::support::keys;
use crate::support::peers::{self, NodeScript, Soketi};
use crate::support::{eventually, guard, push, queue, settled};

/// A multi-app connection `tenants` (`source`: `apps = "redis"` or `apps_dir = …`) at
/// `host:port`, the only default; fast retries that do not run out while a test adds an app.
fn multi_app(redis: &RedisServer, port: u16, source: &str, extra: &str) -> herald::Config {
    config(
        redis,
        "",
        &format!(
            "[retry]\nmax_attempts = 10000\ndelays = [\"20ms\"]\n[broadcasting]\ndefault = [\"tenants\"]\n\
             [broadcasting.connections.tenants]\ndriver = \"pusher\"\n{source}\nhost = \"127.0.0.1\"\n\
             port = {port}\nscheme = \"http\"\n{extra}\n"
        ),
    )
}

async fn add_app(redis: &RedisServer, app: &str, (app_id, key, secret): (&str, &str, &str)) {
    let mut c = redis.conn().await;
    let _: () = ::redis::cmd("HSET")
        .arg(keys::pusher_apps("tenants"))
        .arg(app)
        .arg(json!({"app_id": app_id, "key": key, "secret": secret}).to_string())
        .query_async(&mut c)
        .await
        .unwrap();
}

fn envelope(id: &str, app: Option<&str>, channel: &str, data: Value) -> String {
    let mut e = json!({"id": id, "event": "OrderShipped", "channels": [channel], "data": data});
    if let Some(app) = app {
        e["app"] = app.into();
    }
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_is_signed_with_its_own_secret_and_a_new_app_needs_no_restart() {
    let redis = RedisServer::start();
    let fake = PusherFake::start_with("a-id", "a-key", "a-secret")
        .await
        .unwrap();
    fake.add_app("b-id", "b-key", "b-secret");
    fake.add_app("c-id", "c-key", "c-secret");
    add_app(&redis, "acme", ("a-id", "a-key", "a-secret")).await;
    add_app(&redis, "beta", ("b-id", "b-key", "b-secret")).await;
    // Both apps' events in every reserved batch.
    let mut envelopes: Vec<String> = (0..40)
        .map(|i| {
            let app = if i % 2 == 0 { "acme" } else { "beta" };
            envelope(
                &format!("m{i}"),
                Some(app),
                "orders",
                json!({"i": i, "app": app}),
            )
        })
        .collect();
    envelopes.push(envelope("no-app", None, "orders", json!({"i": -1})));
    envelopes.push(envelope(
        "late",
        Some("gamma"),
        "orders",
        json!({"i": -2, "app": "gamma"}),
    ));
    push(&redis, &envelopes).await;
    let herald = Running::start(multi_app(&redis, fake.addr.port(), "apps = \"redis\"", "")).await;

    let q = queue(&redis);
    let dead = dead_letter(&q, "no-app").await;
    assert_eq!(dead.code, "missing_app");
    assert_eq!(dead.attempts, 1, "fatal at once");
    assert!(
        dead.reason.contains("serves many apps") && dead.reason.contains("\"app\""),
        "{}",
        dead.reason
    );

    let events = guard("40 events at the fake", fake.wait_for_events(40)).await;
    for e in &events {
        let data: Value = serde_json::from_str(&e.data).unwrap();
        let want = if data["app"] == "acme" {
            "a-id"
        } else {
            "b-id"
        };
        assert_eq!(e.app_id, want, "{e:?}");
    }
    // Every request was signed for exactly the app its path names (the fake checks each with
    // that app's secret alone), so none carried two apps' events.
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");

    // gamma is unknown: retried (unknown_app), not dead-lettered, until one HSET adds it.
    eventually("the unknown app's envelope to wait for a retry", || async {
        let mut c = redis.conn().await;
        let delayed: Vec<String> = ::redis::cmd("ZRANGE")
            .arg(keys::DELAYED)
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await
            .unwrap();
        delayed.iter().any(|e| e.contains("\"late\"")).then_some(())
    })
    .await;
    assert!(q.failed_get("late").await.unwrap().is_none());
    add_app(&redis, "gamma", ("c-id", "c-key", "c-secret")).await;
    let events = guard("the late app's event", fake.wait_for_events(41)).await;
    let late: Vec<_> = events.iter().filter(|e| e.app_id == "c-id").collect();
    assert_eq!(late.len(), 1, "{events:?}");
    assert!(late[0].data.contains("gamma"));
    settled(&q).await;
    let text = herald.metrics().await;
    assert!(
        text.contains(r#"herald_pusher_requests_total{connection="tenants:acme",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"herald_dead_letters_total{reason="missing_app"} 1"#)
            || text.contains(r#"reason="missing_app""#),
        "{text}"
    );
    herald.stop().await.unwrap();
    assert_eq!(q.failed_list(0, 10).await.unwrap().len(), 1, "only no-app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_applies_after_apps_refresh_without_a_restart() {
    let redis = RedisServer::start();
    let fake = PusherFake::start_with("a-id", "a-key", "new-secret")
        .await
        .unwrap();
    // The hash still has the old secret: the server refuses it (401, fatal).
    add_app(&redis, "acme", ("a-id", "a-key", "old-secret")).await;
    let herald = Running::start(multi_app(
        &redis,
        fake.addr.port(),
        "apps = \"redis\"\napps_refresh = \"100ms\"",
        "",
    ))
    .await;
    push(&redis, &[envelope("r1", Some("acme"), "orders", json!({}))]).await;
    let q = queue(&redis);
    let dead = dead_letter(&q, "r1").await;
    assert!(dead.reason.contains("HTTP 401"), "{}", dead.reason);
    add_app(&redis, "acme", ("a-id", "a-key", "new-secret")).await;
    // Credentials are read again once the kept ones are older than 100 ms: envelopes are sent
    // one at a time, each awaited to its outcome (a 401 dead letter or a delivery), until one
    // is delivered with the new secret.
    let mut tries = 0;
    let delivered = guard("the rotated secret to be used", async {
        loop {
            tries += 1;
            let id = format!("r2-{tries}");
            push(&redis, &[envelope(&id, Some("acme"), "orders", json!({}))]).await;
            let delivered = eventually("its outcome", || async {
                if fake.event_count() > 0 {
                    Some(true)
                } else {
                    q.failed_get(&id).await.unwrap().map(|_| false)
                }
            })
            .await;
            if delivered {
                break fake.events();
            }
        }
    })
    .await;
    assert_eq!(delivered[0].app_id, "a-id");
    herald.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_of_many_apps_stay_bounded() {
    let redis = RedisServer::start();
    let fake = PusherFake::start().await.unwrap();
    // Ten apps from a directory, as TOML and JSON files, all one app at the fake.
    let dir = tempfile::tempdir().unwrap();
    for n in 0..10 {
        let (file, text) = if n % 2 == 0 {
            (
                format!("t{n}.toml"),
                format!(
                    "app_id = \"{}\"\nkey = \"{}\"\nsecret = \"{}\"\n",
                    fake.app_id(),
                    fake.key(),
                    fake.secret()
                ),
            )
        } else {
            (
                format!("t{n}.json"),
                json!({"app_id": fake.app_id(), "key": fake.key(), "secret": fake.secret()})
                    .to_string(),
            )
        };
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let herald = Running::start(multi_app(
        &redis,
        fake.addr.port(),
        &format!(
            "apps_dir = \"{}\"\napps_metrics_top = 3",
            dir.path().display()
        ),
        "",
    ))
    .await;
    let envelopes: Vec<String> = (0..10)
        .map(|n| {
            envelope(
                &format!("l{n}"),
                Some(&format!("t{n}")),
                "orders",
                json!({"n": n}),
            )
        })
        .collect();
    push(&redis, &envelopes).await;
    guard("10 events at the fake", fake.wait_for_events(10)).await;
    settled(&queue(&redis)).await;

    let text = herald.metrics().await;
    let labels: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("herald_pusher_requests_total{"))
        .filter_map(|l| l.split("connection=\"").nth(1)?.split('"').next())
        .filter(|c| c.starts_with("tenants"))
        .collect();
    assert!(labels.len() <= 4, "at most top 3 + other: {labels:?}");
    assert!(labels.contains("tenants:other"), "{labels:?}");
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("herald_pusher_requests_total{connection=\"tenants"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        total as usize,
        fake.request_count(),
        "every request counted once"
    );
    herald.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_with_different_keys_on_one_soketi_each_client_gets_only_its_own() {
    let peers = peers::installed();
    let apps = [
        ("app-a", "key-a", "secret-a"),
        ("app-b", "key-b", "secret-b"),
    ];
    let soketi = Soketi::start_with_apps(&peers, &apps).await;
    let redis = RedisServer::start();
    add_app(&redis, "acme", apps[0]).await;
    add_app(&redis, "beta", apps[1]).await;
    // One client per app, both on the same channel name.
    let mut clients = Vec::new();
    for (id, key, secret) in apps {
        let mut client = NodeScript::start(
            &peers,
            "pusher-client.js",
            &[
                ("PUSHER_HOST", "127.0.0.1".into()),
                ("PUSHER_PORT", soketi.port.to_string()),
                ("PUSHER_APP_ID", id.into()),
                ("PUSHER_APP_KEY", key.into()),
                ("PUSHER_APP_SECRET", secret.into()),
                ("CHANNELS", "orders".into()),
            ],
        );
        let ready = client.next().await;
        assert_eq!(ready, json!({"ready": true}), "client: {}", client.stderr());
        clients.push(client);
    }
    let herald = Running::start(multi_app(&redis, soketi.port, "apps = \"redis\"", "")).await;
    let envelopes: Vec<String> = (0..60)
        .map(|i| {
            let app = if i % 3 == 0 { "beta" } else { "acme" };
            envelope(
                &format!("s{i}"),
                Some(app),
                "orders",
                json!({"i": i, "app": app}),
            )
        })
        .collect();
    push(&redis, &envelopes).await;
    settled(&queue(&redis)).await;
    // Barrier: a marker per app, sent after everything else was accepted by soketi.
    push(
        &redis,
        &[
            envelope(
                "end-a",
                Some("acme"),
                "orders",
                json!({"i": -1, "app": "acme"}),
            ),
            envelope(
                "end-b",
                Some("beta"),
                "orders",
                json!({"i": -1, "app": "beta"}),
            ),
        ],
    )
    .await;
    for (client, app) in clients.iter_mut().zip(["acme", "beta"]) {
        let mut got = BTreeSet::new();
        loop {
            let line = client.next().await;
            assert!(line.get("error").is_none(), "{line}\n{}", client.stderr());
            assert_eq!(line["data"]["app"], app, "{app}'s client got {line}");
            let i = line["data"]["i"].as_i64().unwrap();
            if i == -1 {
                break;
            }
            assert!(got.insert(i), "{app}: {i} twice");
        }
        let want: BTreeSet<i64> = (0..60)
            .filter(|i| (i % 3 == 0) == (app == "beta"))
            .collect();
        assert_eq!(got, want, "{app}");
    }
    assert!(queue(&redis).failed_list(0, 10).await.unwrap().is_empty());
    herald.stop().await.unwrap();
    for c in clients {
        c.finish().await;
    }
    drop(soketi);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apps_open_circuit_does_not_defer_another_apps_events() {
    let redis = RedisServer::start();
    let fake = PusherFake::start_with("a-id", "a-key", "a-secret")
        .await
        .unwrap();
    fake.add_app("b-id", "b-key", "b-secret");
    fake.reject_matching("DOWN", 503);
    add_app(&redis, "acme", ("a-id", "a-key", "a-secret")).await;
    add_app(&redis, "beta", ("b-id", "b-key", "b-secret")).await;
    let herald = Running::start(multi_app(
        &redis,
        fake.addr.port(),
        "apps = \"redis\"\ncircuit_failures = 2\ncircuit_open_for = \"60s\"",
        "",
    ))
    .await;
    push(
        &redis,
        &[envelope(
            "down",
            Some("acme"),
            "orders",
            json!({"note": "DOWN"}),
        )],
    )
    .await;
    let mut c = redis.conn().await;
    eventually("acme's circuit to open", || {
        let mut c = c.clone();
        async move {
            ::redis::cmd("GET")
                .arg(keys::app_circuit("tenants", "acme"))
                .query_async::<Option<String>>(&mut c)
                .await
                .unwrap()
        }
    })
    .await;
    let envelopes: Vec<String> = (0..10)
        .map(|i| envelope(&format!("b{i}"), Some("beta"), "orders", json!({"i": i})))
        .collect();
    push(&redis, &envelopes).await;
    let events = guard("beta's 10 events", fake.wait_for_events(10)).await;
    assert!(events.iter().all(|e| e.app_id == "b-id"));
    let beta: Option<String> = ::redis::cmd("GET")
        .arg(keys::app_circuit("tenants", "beta"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(beta, None);
    let connection_wide: Option<String> = ::redis::cmd("GET")
        .arg(keys::circuit("tenants"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(connection_wide, None, "circuits are per app");
    herald.stop().await.unwrap();
}
