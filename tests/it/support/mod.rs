//! Test support: real processes and servers, no mocks of Redis.
//!
//! The servers themselves (`redis-server`, the Pusher and webhook fakes) and the W1 workload live
//! in `herald-testkit` (`testkit/`), shared with `herald bench`. Here:
//! - [`herald`]: herald in-process (`Herald::run`, the same code path as the binary) or as the
//!   real binary (for `kill -9` and SIGTERM), and the configs tests give it.
//! - [`deployment::Deployment`]: one `redis-server` or a Redis Cluster behind one interface, for
//!   the checks that run on both; [`events`]: the numbered envelopes they push and count.
//! - [`subscriber::Subscriber`]: a real `PSUBSCRIBE` client.
//! - [`peers`]: soketi and pusher-js from the npm registry, for the Pusher end-to-end tests;
//!   [`sockudo`]: sockudo, built by `scripts/test`, and a proxy that loses one answer.
//! - [`admin::Admin`]: the dashboard's HTTP API as curl uses it; [`browser::Browser`]: Debian's
//!   Chromium driven by playwright-core, for the dashboard.

pub mod admin;
pub mod browser;
pub mod deployment;
pub mod events;
pub mod herald;
pub mod keys;
pub mod peers;
pub mod sockudo;
pub mod subscriber;

use herald_testkit::RedisServer;
pub use herald_testkit::{GUARD, eventually, guard};

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

/// The default queue (`herald:default`, no prefix) of a test's Redis, through herald's own
/// operations API (what `herald stats` and `herald failed …` use).
pub fn queue(redis: &RedisServer) -> ::herald::ops::QueueOps {
    let config = herald::config(redis, "", "");
    ::herald::ops::Ops::new(&config).unwrap().queue(None)
}

/// Waits until nothing is waiting, reserved or delayed: everything pushed is settled.
pub async fn settled(q: &::herald::ops::QueueOps) {
    eventually("the queue to settle", || async {
        let s = q.stats().await.ok()?;
        (s.waiting == 0 && s.processing == 0 && s.delayed == 0 && s.parked == 0).then_some(())
    })
    .await
}

/// [`settled`], and not one dead letter.
pub async fn settled_and_clean(q: &::herald::ops::QueueOps) {
    settled(q).await;
    let failed = q.failed_list(0, 10).await.unwrap();
    assert!(
        failed.is_empty(),
        "dead letters on {}: {failed:?}",
        q.name()
    );
}

/// `LPUSH`es envelopes onto `herald:default`, in order and in chunks, as a producer would.
pub async fn push<T: ::redis::ToRedisArgs + Send + Sync>(redis: &RedisServer, envelopes: &[T]) {
    push_on(&mut redis.conn().await, envelopes).await
}

/// [`push`] on connection `c` to the node that serves `herald:default`.
pub async fn push_on<T: ::redis::ToRedisArgs + Send + Sync>(
    c: &mut ::redis::aio::MultiplexedConnection,
    envelopes: &[T],
) {
    for chunk in envelopes.chunks(1000) {
        let _: () = ::redis::cmd("LPUSH")
            .arg(keys::QUEUE)
            .arg(chunk)
            .query_async(c)
            .await
            .unwrap();
    }
}

/// Milliseconds since the Unix epoch, as herald stores times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
