//! Test support: real processes and servers, no mocks of Redis.
//!
//! - [`redis::RedisServer`]: a `redis-server` of the test's own on a free loopback port.
//! - [`herald`]: herald in-process (`Herald::run`, the same code path as the binary) or as the
//!   real binary (for `kill -9` and SIGTERM).
//! - [`subscriber::Subscriber`]: a real `PSUBSCRIBE` client.
//! - [`http::Fake`]: a local HTTP server that records requests and fails on command.
//! - [`peers`]: soketi and pusher-js from the npm registry, for the Pusher end-to-end tests.

#![allow(dead_code)]

pub mod herald;
pub mod http;
pub mod peers;
pub mod redis;
pub mod subscriber;

use std::time::Duration;

/// Guards every await that waits for herald to do something. It only turns a hang into a
/// failure; tests never rely on it for timing.
pub const GUARD: Duration = Duration::from_secs(60);

/// Awaits `f`, failing the test with `what` if it hangs.
pub async fn guard<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Polls `check` until it returns `Some`, for state only visible by asking (a Redis count).
/// Each poll is one round trip; the pause between polls is not what the test depends on.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    guard(what, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// A listener that records how often it handled each event, keyed by `data.i`.
#[derive(Default)]
pub struct Recorder {
    pub ids: std::sync::Mutex<std::collections::HashMap<u64, u32>>,
}

impl ::herald::listeners::Listener for Recorder {
    fn handle<'a>(
        &'a self,
        event: &'a ::herald::listeners::Event<'a>,
    ) -> futures::future::BoxFuture<'a, ::herald::delivery::DeliveryResult> {
        Box::pin(async move {
            let v: serde_json::Value = serde_json::from_str(event.data.get()).unwrap();
            *self
                .ids
                .lock()
                .unwrap()
                .entry(v["i"].as_u64().unwrap())
                .or_default() += 1;
            Ok(())
        })
    }
}

/// The default queue (`herald:default`, no prefix) of a test's Redis, through herald's own API.
pub fn queue(redis: &redis::RedisServer) -> ::herald::queue::Queue {
    ::herald::queue::Queue::new(
        ::herald::queue::Redis::open(&redis.url(), 2).unwrap(),
        ::herald::queue::QueueKeys::new("", "herald:default"),
        0,
    )
}

/// Waits until nothing is waiting, reserved or delayed: everything pushed is settled.
pub async fn settled(q: &::herald::queue::Queue) {
    eventually("the queue to settle", || async {
        let s = q.stats(::herald::settle::now_ms()).await.ok()?;
        (s.waiting == 0 && s.processing == 0 && s.delayed == 0).then_some(())
    })
    .await
}

/// `LPUSH`es envelopes onto `herald:default`, in order and in chunks, as a producer would.
pub async fn push<T: ::redis::ToRedisArgs + Send + Sync>(
    redis: &redis::RedisServer,
    envelopes: &[T],
) {
    let mut c = redis.conn().await;
    for chunk in envelopes.chunks(1000) {
        let _: () = ::redis::cmd("LPUSH")
            .arg("herald:default")
            .arg(chunk)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}
