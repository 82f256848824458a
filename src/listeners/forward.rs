//! The `forward` listener: push the envelope onto another queue list (prefix applied), as a
//! producer would, with herald's own bookkeeping (`attempts`, `pending`) removed.

use futures::future::BoxFuture;

use super::{Event, Listener};
use crate::delivery::{DeliveryError, DeliveryResult};
use crate::queue::Redis;

pub(crate) struct Forward {
    redis: Redis,
    key: String,
}

impl Forward {
    pub(crate) fn new(redis: Redis, prefix: &str, queue: &str) -> Forward {
        Forward {
            redis,
            key: format!("{prefix}{queue}"),
        }
    }
}

impl Listener for Forward {
    fn handle<'a>(&'a self, event: &'a Event<'a>) -> BoxFuture<'a, DeliveryResult> {
        Box::pin(async move {
            let now = crate::clock::now_secs();
            let bytes = event.envelope.encode_forward(now);
            let mut conn = self
                .redis
                .get()
                .await
                .map_err(|e| DeliveryError::Redis(e.to_string()))?;
            redis::cmd("LPUSH")
                .arg(&self.key)
                .arg(bytes)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| DeliveryError::Redis(format!("LPUSH {}: {e}", self.key)))
        })
    }
}
