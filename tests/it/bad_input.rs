use crate::support::herald::{Running, config};
use crate::support::keys;
use crate::support::queue;
use crate::support::subscriber::Subscriber;
use herald_testkit::RedisServer;

/// Each kind of bad input is dead-lettered with its own code, a reason a person can act on, and
/// its exact bytes; the events pushed after each of them are still delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_dead_lettered_and_the_worker_keeps_serving() {
    let redis = RedisServer::start();
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let herald = Running::start(config(&redis, "concurrency = 1\nbatch_size = 3", "")).await;

    let huge = format!(
        r#"{{"event":"E","channels":["c"],"data":{{"blob":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "invalid JSON",
            b"{\"event\": \"E\", \"data\": {".to_vec(),
            "invalid JSON",
        ),
        ("not JSON at all", vec![0xff, 0x00, 0x13], "invalid JSON"),
        (
            "non-object data",
            br#"{"event":"E","channels":["c"],"data":[1,2]}"#.to_vec(),
            "`data`",
        ),
        (
            "missing event",
            br#"{"channels":["c"],"data":{}}"#.to_vec(),
            "`event`",
        ),
        (
            "2 MiB envelope",
            huge.into_bytes(),
            "over the limit of 1048576",
        ),
        (
            "bad channel name",
            br#"{"event":"E","channels":["orders 1"],"data":{}}"#.to_vec(),
            "orders 1",
        ),
    ];
    let codes = [
        "invalid_json",
        "invalid_json",
        "invalid_field",
        "missing_field",
        "payload_too_large",
        "bad_channel",
    ];
    let mut c = redis.conn().await;
    for (i, (_, raw, _)) in bad.iter().enumerate() {
        let good = format!(r#"{{"event":"Good","channels":["ok"],"data":{{"after":{i}}}}}"#);
        let _: () = ::redis::cmd("LPUSH")
            .arg(keys::QUEUE)
            .arg(raw.as_slice())
            .arg(good)
            .query_async(&mut c)
            .await
            .unwrap();
    }

    let got = sub.take(bad.len()).await;
    for (i, (channel, payload)) in got.iter().enumerate() {
        assert_eq!(channel, "ok");
        assert!(payload.contains(&format!("\"after\":{i}")), "{payload}");
    }

    let q = queue(&redis);
    let dead =
        crate::support::eventually("every bad envelope in the dead-letter store", || async {
            let d = q.failed_list(0, 100).await.unwrap();
            (d.len() == bad.len()).then_some(d)
        })
        .await;
    for ((name, raw, needle), code) in bad.iter().zip(codes) {
        let entry = dead
            .iter()
            .map(|(_, e)| e)
            .find(|e| &e.payload_bytes() == raw)
            .unwrap_or_else(|| panic!("{name}: no dead letter with its original bytes"));
        assert_eq!(entry.code, code, "{name}: {}", entry.reason);
        assert!(
            entry.reason.contains(needle),
            "{name}: reason {:?} should mention {needle:?}",
            entry.reason
        );
        assert_eq!(entry.queue, keys::QUEUE);
    }
    let metrics = herald.started.metrics_addr.unwrap();
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"herald_dead_letters_total{reason="invalid_json"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"herald_dead_letters_total{reason="payload_too_large"} 1"#));
    herald.stop().await.unwrap();
    assert!(sub.rest().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_events_are_dead_lettered_when_the_policy_is_reject() {
    let redis = RedisServer::start();
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let herald = Running::start(config(
        &redis,
        "unknown_events = \"reject\"",
        "[events.Known]\nlisteners = []\n",
    ))
    .await;
    let mut c = redis.conn().await;
    let _: () = ::redis::cmd("LPUSH")
        .arg(keys::QUEUE)
        .arg(r#"{"id":"u1","event":"Unknown","channels":["c"],"data":{}}"#)
        .arg(r#"{"event":"Known","channels":["c"],"data":{}}"#)
        .query_async(&mut c)
        .await
        .unwrap();
    sub.take(1).await;
    let q = queue(&redis);
    let entry = crate::support::eventually("the dead letter", || async {
        q.failed_get("u1").await.unwrap()
    })
    .await;
    assert_eq!(entry.code, "unknown_event");
    assert!(entry.reason.contains("\"Unknown\""));
    herald.stop().await.unwrap();
}
