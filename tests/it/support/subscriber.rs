//! A real pub/sub client: `PSUBSCRIBE`s before returning, then yields every message in order.
//!
//! "Nothing more arrives" is checked with a barrier, not a quiet period: [`Subscriber::rest`]
//! publishes a marker on a channel of its own and reads up to it. Redis handles commands one at
//! a time and queues a subscriber's messages in that order, so every message published before
//! the marker (by herald, on any connection) arrives before it.

use std::time::Duration;

use futures::StreamExt;
use herald_testkit::RedisServer;
use tokio::sync::mpsc;

/// The barrier's channel: no test publishes on it, and herald never does.
const BARRIER: &str = "herald-test:barrier";

/// A `PSUBSCRIBE` client of one test.
pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<(String, String)>,
    /// Publishes the barrier markers.
    publisher: ::redis::aio::MultiplexedConnection,
    markers: u64,
}

impl Subscriber {
    /// Subscribes to `pattern` (and the barrier channel) and returns once Redis confirmed both.
    pub async fn psubscribe(redis: &RedisServer, pattern: &str) -> Subscriber {
        let client = redis.client();
        let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
        pubsub.psubscribe(pattern).await.expect("PSUBSCRIBE");
        pubsub.subscribe(BARRIER).await.expect("SUBSCRIBE");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                let channel = msg.get_channel_name().to_string();
                let payload: String = msg.get_payload().unwrap_or_default();
                if tx.send((channel, payload)).is_err() {
                    break;
                }
            }
        });
        Subscriber {
            rx,
            publisher: redis.conn().await,
            markers: 0,
        }
    }

    /// The next message that is not a barrier marker, if one comes within `wait`. Only for
    /// checking that something *does* arrive soon; "nothing more" is [`Subscriber::rest`].
    pub async fn next_within(&mut self, wait: Duration) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((c, _))) if c == BARRIER => continue,
                Ok(m) => return m,
                Err(_) => return None,
            }
        }
    }

    /// The next `n` messages; fails the test if they stop coming.
    pub async fn take(&mut self, n: usize) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout(super::GUARD, self.rx.recv()).await {
                Ok(Some((c, _))) if c == BARRIER => {}
                Ok(Some(m)) => out.push(m),
                _ => panic!("only {} of {n} messages arrived", out.len()),
            }
        }
        out
    }

    /// Every message published before this call that was not read yet, in order (a marker
    /// published now, read up to).
    pub async fn rest(&mut self) -> Vec<(String, String)> {
        self.markers += 1;
        let marker = format!("marker-{}-{}", std::process::id(), self.markers);
        let _: i64 = ::redis::cmd("PUBLISH")
            .arg(BARRIER)
            .arg(&marker)
            .query_async(&mut self.publisher)
            .await
            .expect("PUBLISH the barrier marker");
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout(super::GUARD, self.rx.recv()).await {
                Ok(Some((c, p))) if c == BARRIER && p == marker => return out,
                Ok(Some((c, _))) if c == BARRIER => {}
                Ok(Some(m)) => out.push(m),
                _ => panic!("the barrier marker never arrived"),
            }
        }
    }
}
