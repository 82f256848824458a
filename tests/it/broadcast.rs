use serde_json::{Value, json};

use crate::support::herald::{Running, config};
use crate::support::keys;
use crate::support::subscriber::Subscriber;
use herald_testkit::RedisServer;

/// What Laravel's RedisBroadcaster publishes for an envelope with no registry entry: built here
/// from the envelope independently of herald's encoder (wire-formats.md §1a).
fn laravel_message(envelope: &Value) -> Value {
    let socket = envelope.get("socket").cloned().unwrap_or(Value::Null);
    let mut data = envelope["data"].as_object().unwrap().clone();
    data.insert("socket".into(), socket.clone());
    json!({"event": envelope["event"], "data": data, "socket": socket})
}

async fn push(redis: &RedisServer, key: &str, envelopes: &[Vec<u8>]) {
    let mut c = redis.conn().await;
    for chunk in envelopes.chunks(1000) {
        let _: () = ::redis::cmd("LPUSH")
            .arg(key)
            .arg(chunk)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_reach_a_subscriber_in_laravel_format_in_fifo_order() {
    let redis = RedisServer::start();
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let envelopes: Vec<Value> = (0..10_000)
        .map(|k| {
            let mut e = json!({
                "event": "App\\Events\\OrderShipped",
                "channels": [format!("orders.{}", k % 100)],
                "data": {"order_id": k, "status": "shipped", "customer": {"id": k % 7, "name": "Zoë"}},
            });
            if k % 3 == 0 {
                e["socket"] = json!(format!("{}.{}", k, k + 1));
            }
            e
        })
        .collect();
    // Pushed before herald starts, so the whole run is one backlog.
    let raw: Vec<Vec<u8>> = envelopes
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    push(&redis, keys::QUEUE, &raw).await;

    let herald = Running::start(config(&redis, "concurrency = 1", "")).await;
    let got = sub.take(10_000).await;
    herald.stop().await.unwrap();

    for (k, ((channel, payload), envelope)) in got.iter().zip(&envelopes).enumerate() {
        assert_eq!(
            channel,
            envelope["channels"][0].as_str().unwrap(),
            "message {k}"
        );
        let message: Value = serde_json::from_str(payload).unwrap();
        assert_eq!(
            message,
            laravel_message(envelope),
            "message {k} out of order or wrong"
        );
    }
    assert!(sub.rest().await.is_empty(), "extra messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laravel_fixtures_are_published_json_equal() {
    let fixtures: Value =
        serde_json::from_str(include_str!("../fixtures/laravel_redis.json")).unwrap();
    let redis = RedisServer::start();
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let herald = Running::start(config(&redis, "concurrency = 1", "")).await;
    for case in fixtures["cases"].as_array().unwrap() {
        push(
            &redis,
            keys::QUEUE,
            &[serde_json::to_vec(&case["envelope"]).unwrap()],
        )
        .await;
        let (channel, payload) = sub.take(1).await.remove(0);
        assert_eq!(
            channel,
            case["channel"].as_str().unwrap(),
            "{}",
            case["name"]
        );
        let message: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(message, case["message"], "{}", case["name"]);
    }
    herald.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_prefix_applies_to_the_queue_key_and_every_channel() {
    let redis = RedisServer::start();
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let mut cfg = config(&redis, "", "");
    cfg.redis.prefix = "laravel-database-".into();
    let herald = Running::start(cfg).await;
    push(
        &redis,
        "laravel-database-herald:default",
        &[br#"{"event":"E","channels":["private-orders.1","b"],"data":{}}"#.to_vec()],
    )
    .await;
    let mut channels: Vec<String> = sub.take(2).await.into_iter().map(|(c, _)| c).collect();
    channels.sort();
    assert_eq!(
        channels,
        ["laravel-database-b", "laravel-database-private-orders.1"]
    );
    herald.stop().await.unwrap();
}

/// An event pushed into an idle queue is taken by the blocking wait, not at the next poll:
/// with a 30 s block timeout, a poll-based worker would not deliver within the guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_pushed_into_an_idle_queue_is_delivered_without_waiting_for_a_poll() {
    let redis = RedisServer::start();
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let herald = Running::start(config(
        &redis,
        "block_timeout = \"30s\"\nconcurrency = 1",
        "",
    ))
    .await;
    // Let the worker find the queue empty and block (observable: a blocked client).
    crate::support::eventually("the worker to block on the queue", || async {
        let mut c = redis.conn().await;
        let info: String = ::redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut c)
            .await
            .unwrap();
        info.contains("blocked_clients:1").then_some(())
    })
    .await;
    for i in 0..3 {
        push(
            &redis,
            keys::QUEUE,
            &[format!(r#"{{"event":"E","channels":["c"],"data":{{"i":{i}}}}}"#).into_bytes()],
        )
        .await;
        let got = sub.next_within(std::time::Duration::from_secs(10)).await;
        assert!(got.is_some(), "event {i} waited for a poll");
    }
    herald.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_templates_and_broadcast_as_shape_the_broadcast() {
    let redis = RedisServer::start();
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let herald = Running::start(config(
        &redis,
        "",
        r#"
        [events."App\\Events\\OrderShipped"]
        channels = ["orders.{order_id}", "user.{customer.id}"]
        broadcast_as = "order.shipped"
        "#,
    ))
    .await;
    push(
        &redis,
        keys::QUEUE,
        &[br#"{"event":"App\\Events\\OrderShipped","data":{"order_id":42,"customer":{"id":"c7"}}}"#.to_vec()],
    )
    .await;
    let mut got = sub.take(2).await;
    got.sort();
    assert_eq!(got[0].0, "orders.42");
    assert_eq!(got[1].0, "user.c7");
    let m: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(m["event"], "order.shipped");
    assert_eq!(m["data"]["order_id"], 42);
    herald.stop().await.unwrap();
}
