//! Bad input at the queue: each kind dead-lettered with its own code, reason and bytes, on one
//! `redis-server` and on a Redis Cluster, while the worker keeps serving; unknown events under
//! the `reject` policy. Not a delivery's failures (`retries`).

use std::collections::HashSet;

use herald_testkit::{RedisServer, WebhookFake};

use crate::support::deployment::Deployment;
use crate::support::herald::{Running, config, webhook_listener};
use crate::support::keys;
use crate::support::queue;
use crate::support::subscriber::Subscriber;

/// Each kind of bad input, with the reason's needle and the dead letter's code.
fn bad_inputs() -> Vec<(&'static str, Vec<u8>, &'static str, &'static str)> {
    let huge = format!(
        r#"{{"event":"E","channels":["c"],"data":{{"blob":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    vec![
        (
            "invalid JSON",
            b"{\"event\": \"E\", \"data\": {".to_vec(),
            "invalid JSON",
            "invalid_json",
        ),
        (
            "not JSON at all",
            vec![0xff, 0x00, 0x13],
            "invalid JSON",
            "invalid_json",
        ),
        (
            "non-object data",
            br#"{"event":"E","channels":["c"],"data":[1,2]}"#.to_vec(),
            "`data`",
            "invalid_field",
        ),
        (
            "missing event",
            br#"{"channels":["c"],"data":{}}"#.to_vec(),
            "`event`",
            "missing_field",
        ),
        (
            "2 MiB envelope",
            huge.into_bytes(),
            "over the limit of 1048576",
            "payload_too_large",
        ),
        (
            "bad channel name",
            br#"{"event":"E","channels":["orders 1"],"data":{}}"#.to_vec(),
            "orders 1",
            "bad_channel",
        ),
    ]
}

/// Each kind of bad input is dead-lettered with its own code, a reason a person can act on, and
/// its exact bytes; the good event pushed after each of them is still delivered, once.
async fn bad_input_is_dead_lettered(d: Deployment) {
    let hook = WebhookFake::start(&[]).await;
    let routes = format!(
        "{}[events.Good]\nlisteners = [\"hook\"]\n",
        webhook_listener(&hook)
    );
    let herald = Running::start(d.config("concurrency = 1\nbatch_size = 3", &routes)).await;
    let bad = bad_inputs();
    let mut c = d.conn_for(keys::QUEUE).await;
    for (i, (_, raw, _, _)) in bad.iter().enumerate() {
        let good = format!(r#"{{"event":"Good","channels":["ok"],"data":{{"after":{i}}}}}"#);
        let _: () = ::redis::cmd("LPUSH")
            .arg(keys::QUEUE)
            .arg(raw.as_slice())
            .arg(good)
            .query_async(&mut c)
            .await
            .unwrap();
    }

    let after: HashSet<String> = hook
        .wait_for(bad.len())
        .await
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            v["data"]["after"].to_string()
        })
        .collect();
    let want: HashSet<String> = (0..bad.len()).map(|i| i.to_string()).collect();
    assert_eq!(after, want, "the good event after each bad one");

    let q = d.queue();
    let dead =
        crate::support::eventually("every bad envelope in the dead-letter store", || async {
            let d = q.failed_list(0, 100).await.unwrap();
            (d.len() == bad.len()).then_some(d)
        })
        .await;
    for (name, raw, needle, code) in &bad {
        let entry = dead
            .iter()
            .map(|(_, e)| e)
            .find(|e| &e.payload_bytes() == raw)
            .unwrap_or_else(|| panic!("{name}: no dead letter with its original bytes"));
        assert_eq!(entry.code, *code, "{name}: {}", entry.reason);
        assert!(
            entry.reason.contains(needle),
            "{name}: reason {:?} should mention {needle:?}",
            entry.reason
        );
        assert_eq!(entry.queue, keys::QUEUE);
    }
    let text = herald.metrics().await;
    assert!(
        text.contains(r#"herald_dead_letters_total{reason="invalid_json"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"herald_dead_letters_total{reason="payload_too_large"} 1"#));
    herald.stop().await.unwrap();
    assert_eq!(
        hook.requests().len(),
        bad.len(),
        "a good event delivered twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_dead_lettered_and_the_worker_keeps_serving() {
    bad_input_is_dead_lettered(Deployment::standalone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_a_cluster_is_dead_lettered_and_the_worker_keeps_serving() {
    bad_input_is_dead_lettered(Deployment::cluster()).await;
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
