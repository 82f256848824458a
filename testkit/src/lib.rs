//! herald-testkit: the local servers and workloads herald's tests and benchmarks run against.
//!
//! Owns: [`RedisServer`] (a real `redis-server` of a test's own on a free loopback port),
//! [`RedisCluster`] (a real six-node Redis Cluster, three masters and three replicas, with the
//! master kill, failover wait and slot migration a test causes), [`RedisSentinel`] (a real
//! primary, replica and three `redis-sentinel`s, with the primary kill and failover wait),
//! each plain or TLS only with or without passwords ([`Options`]; [`Tls`], a throwaway CA made
//! with `openssl`),
//! [`PusherFake`] (a strict local Pusher Channels HTTP API), [`WebhookFake`] (a local HTTP
//! endpoint that records requests and fails on command), the W1 workload ([`w1`]) and the
//! guards that turn a hang into a test failure. Does not own: anything herald runs in
//! production, and it does not depend on herald, so no fake can agree with herald by sharing
//! its code.
//!
//! Used by herald's own tests (a dev-dependency) and by `herald bench` (the optional `bench`
//! feature of the herald binary, on by default), never by the library.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod cluster;
mod node;
pub mod pusher;
mod redis;
mod sentinel;
mod tls;
pub mod w1;
mod webhook;

use std::time::Duration;

pub use cluster::RedisCluster;
pub use node::Options;
pub use pusher::{Action, FakeLimits, FakeRequest, PusherFake};
pub use redis::RedisServer;
pub use sentinel::RedisSentinel;
pub use tls::Tls;
pub use webhook::{WebhookFake, WebhookRequest};

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
