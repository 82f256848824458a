use serde_json::Value;

use crate::support::herald::{Running, config};
use crate::support::keys;
use crate::support::subscriber::Subscriber;
use crate::support::{queue, settled};
use herald_testkit::RedisServer;
use herald_testkit::WebhookFake as Fake;

fn with_hook(redis: &RedisServer, hook: &Fake, max_attempts: u32) -> herald::Config {
    config(
        redis,
        "",
        &format!(
            r#"
            [retry]
            max_attempts = {max_attempts}
            delays = ["20ms"]
            [listeners.hook]
            type = "webhook"
            url = "{url}"
            secret = "s3cret"
            [events.OrderShipped]
            listeners = ["hook"]
            "#,
            url = hook.url()
        ),
    )
}

async fn push(redis: &RedisServer, raw: &str) {
    let mut c = redis.conn().await;
    let _: () = ::redis::cmd("LPUSH")
        .arg(keys::QUEUE)
        .arg(raw)
        .query_async(&mut c)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_failing_three_times_is_delivered_on_the_fourth_and_the_broadcast_is_not_repeated()
{
    let redis = RedisServer::start();
    let hook = Fake::start(&[500, 503, 500]).await;
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let herald = Running::start(with_hook(&redis, &hook, 10)).await;
    push(
        &redis,
        r#"{"id":"o1","event":"OrderShipped","channels":["orders.1"],"data":{"order_id":1}}"#,
    )
    .await;

    let calls = hook.wait_for(4).await;
    settled(&queue(&redis)).await;
    let attempts: Vec<&str> = calls
        .iter()
        .map(|r| r.headers["x-herald-attempt"].to_str().unwrap())
        .collect();
    assert_eq!(attempts, ["1", "2", "3", "4"]);
    for r in &calls {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["id"], "o1");
        assert_eq!(body["data"]["order_id"], 1);
        let sig = r.headers["x-herald-signature"].to_str().unwrap();
        assert_eq!(sig, herald::listeners::webhook_signature("s3cret", &r.body));
    }
    assert_eq!(
        sub.rest().await.len(),
        1,
        "the Redis broadcast happened exactly once"
    );
    assert!(queue(&redis).failed_list(0, 10).await.unwrap().is_empty());
    herald.stop().await.unwrap();
    assert_eq!(hook.requests().len(), 4);
    assert!(sub.rest().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_are_dead_lettered_and_failed_retry_reruns_only_what_failed() {
    let redis = RedisServer::start();
    let hook = Fake::start(&[500, 500, 502]).await;
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let herald = Running::start(with_hook(&redis, &hook, 3)).await;
    let raw = r#"{"id":"o2","event":"OrderShipped","channels":["orders.2"],"data":{"order_id":2},"extra":"kept"}"#;
    push(&redis, raw).await;

    let q = queue(&redis);
    let dead = crate::support::eventually("the dead letter", || async {
        q.failed_get("o2").await.unwrap()
    })
    .await;
    assert_eq!(dead.code, "retries_exhausted");
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.deliveries.len(), 1);
    assert_eq!(dead.deliveries[0].delivery, "listener:hook");
    assert_eq!(dead.deliveries[0].code, "http_5xx");
    assert!(dead.reason.contains("HTTP 502"), "{}", dead.reason);
    // The last queued form: every producer member kept, plus herald's bookkeeping.
    let payload: Value = serde_json::from_slice(&dead.payload_bytes()).unwrap();
    assert_eq!(payload["extra"], "kept");
    assert_eq!(payload["data"]["order_id"], 2);
    assert_eq!(hook.requests().len(), 3);
    assert_eq!(sub.rest().await.len(), 1);

    // The hook now answers 200: retrying the dead letter runs the webhook once more, and only it.
    let retried = q
        .retry(
            &herald::ops::Actor::cli(),
            &herald::ops::Selection::Ids(vec!["o2".into()]),
        )
        .await
        .unwrap();
    assert_eq!(retried.done, ["o2"]);
    hook.wait_for(4).await;
    settled(&q).await;
    assert!(q.failed_get("o2").await.unwrap().is_none());
    assert!(q.failed_list(0, 10).await.unwrap().is_empty());
    herald.stop().await.unwrap();
    assert_eq!(hook.requests().len(), 4);
    assert!(
        sub.rest().await.is_empty(),
        "broadcast repeated by the retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_4xx_is_dead_lettered_at_once_with_the_server_message() {
    let redis = RedisServer::start();
    let hook = Fake::start(&[422]).await;
    let herald = Running::start(with_hook(&redis, &hook, 10)).await;
    push(
        &redis,
        r#"{"id":"o3","event":"OrderShipped","channels":["c"],"data":{}}"#,
    )
    .await;
    let q = queue(&redis);
    let dead = crate::support::eventually("the dead letter", || async {
        q.failed_get("o3").await.unwrap()
    })
    .await;
    assert_eq!(dead.code, "http_4xx");
    assert_eq!(dead.attempts, 1);
    assert!(dead.reason.contains("HTTP 422"), "{}", dead.reason);
    herald.stop().await.unwrap();
    assert_eq!(hook.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_listener_pushes_the_envelope_onto_another_queue() {
    let redis = RedisServer::start();
    let herald = Running::start(config(
        &redis,
        "",
        r#"
        [listeners.archive]
        type = "forward"
        queue = "archive"
        [events.E]
        listeners = ["archive"]
        connections = []
        "#,
    ))
    .await;
    push(
        &redis,
        r#"{"id":"f1","event":"E","data":{"a":1},"custom":true}"#,
    )
    .await;
    let mut c = redis.conn().await;
    let forwarded: Vec<u8> = crate::support::eventually("the forwarded envelope", || {
        let mut c = c.clone();
        async move {
            ::redis::cmd("RPOP")
                .arg("archive")
                .query_async::<Option<Vec<u8>>>(&mut c)
                .await
                .unwrap()
        }
    })
    .await;
    let v: Value = serde_json::from_slice(&forwarded).unwrap();
    assert_eq!(v["id"], "f1");
    assert_eq!(v["custom"], true);
    assert_eq!(v["data"]["a"], 1);
    let _: i64 = ::redis::cmd("LLEN")
        .arg("archive")
        .query_async(&mut c)
        .await
        .unwrap();
    herald.stop().await.unwrap();
}
