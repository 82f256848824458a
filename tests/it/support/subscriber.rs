//! A real pub/sub client: `PSUBSCRIBE`s before returning, then yields every message in order.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use herald_testkit::RedisServer;

pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<(String, String)>,
}

impl Subscriber {
    /// Subscribes to `pattern` and returns once Redis confirmed the subscription.
    pub async fn psubscribe(redis: &RedisServer, pattern: &str) -> Subscriber {
        let mut pubsub = redis
            .client()
            .get_async_pubsub()
            .await
            .expect("pubsub connection");
        pubsub.psubscribe(pattern).await.expect("PSUBSCRIBE");
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
        Subscriber { rx }
    }

    /// The next message, or `None` if none arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<(String, String)> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next `n` messages; fails the test if they stop coming.
    pub async fn take(&mut self, n: usize) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout(super::GUARD, self.rx.recv()).await {
                Ok(Some(m)) => out.push(m),
                _ => panic!("only {} of {n} messages arrived", out.len()),
            }
        }
        out
    }

    /// Messages already received, without waiting.
    pub fn drain(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            out.push(m);
        }
        out
    }
}
