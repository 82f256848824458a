//! Filling the queue and taking what arrives: the W1 preload, and the subscriber that checks
//! every message's channel and bytes against what Laravel would publish (or, with
//! `--subscriber count`, only counts), and collects latency stamps.

use std::time::{Duration, Instant};

use futures::StreamExt;
use herald_testkit::w1::{find_u64, w1_channel, w1_envelope, w1_message};
use indicatif::{ProgressBar, ProgressStyle};

use super::BenchError;
use super::measure::now_us;

/// A progress bar, or a hidden one.
pub(super) fn bar(progress: bool, len: u64, msg: &'static str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    b.set_message(msg);
    b
}

/// What the subscriber does with each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Check {
    /// Compare channel and bytes with Laravel's message for that order, as a real consumer
    /// that reads every message would pay for.
    Verify,
    /// Only count messages (the cheapest subscriber; for comparison).
    Count,
}

/// What the subscriber hands over once it has the messages it was asked for.
type Batch = (Instant, Vec<(u64, u64)>, Option<String>);

/// Takes messages on `PSUBSCRIBE orders.*` and records (sent, received) stamps of stamped ones.
/// Checking happens in the task that reads the connection, with no per-message hand-off: the
/// subscriber shares the machine with herald and Redis, and every cycle it spends is one they
/// do not get.
pub(super) struct Counter {
    rx: tokio::sync::mpsc::UnboundedReceiver<Batch>,
    want: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Counter {
    /// Subscribes; `pad` is the W1 envelopes' size, which the expected messages depend on.
    pub(super) async fn start(
        client: &redis::Client,
        check: Check,
        pad: usize,
    ) -> Result<Counter, BenchError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe("orders.*").await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let want = std::sync::Arc::new(AtomicUsize::new(usize::MAX));
        let seen = std::sync::Arc::new(AtomicUsize::new(0));
        let (w, n) = (want.clone(), seen.clone());
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            let mut stamps = Vec::new();
            let mut wrong = None;
            let mut count = 0usize;
            while let Some(msg) = stream.next().await {
                count += 1;
                let payload = msg.get_payload_bytes();
                let sent = find_u64(payload, b"\"sent_us\":");
                if let Some(sent) = sent {
                    stamps.push((sent, now_us()));
                }
                if check == Check::Verify && wrong.is_none() {
                    wrong = verify(msg.get_channel_name(), payload, pad, sent);
                }
                if count.is_multiple_of(256) {
                    n.store(count, Ordering::Relaxed);
                }
                if count >= w.load(Ordering::Relaxed) {
                    n.store(count, Ordering::Relaxed);
                    let batch = (Instant::now(), std::mem::take(&mut stamps), wrong.take());
                    if tx.send(batch).is_err() {
                        break;
                    }
                    count = 0;
                    w.store(usize::MAX, Ordering::Relaxed);
                }
            }
        });
        Ok(Counter { rx, want, seen })
    }

    /// Asks for `n` more messages. Call it before pushing what they answer: a message that
    /// arrives before it is counted towards nothing.
    pub(super) fn expect(&mut self, n: usize) {
        use std::sync::atomic::Ordering;
        self.seen.store(0, Ordering::Relaxed);
        self.want.store(n, Ordering::Relaxed);
    }

    /// Waits for the `n` messages [`Counter::expect`] asked for; returns when the last arrived
    /// and the (sent, received) stamps among them.
    pub(super) async fn wait(
        &mut self,
        n: usize,
        guard: Duration,
        progress: &ProgressBar,
    ) -> Result<(Instant, Vec<(u64, u64)>), BenchError> {
        use std::sync::atomic::Ordering;
        let deadline = tokio::time::Instant::now() + guard;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                got = self.rx.recv() => {
                    progress.finish_and_clear();
                    return match got {
                        None => Err(BenchError::Failed("the subscriber connection closed".into())),
                        Some((_, _, Some(wrong))) => Err(BenchError::Failed(wrong)),
                        Some((last, stamps, None)) => Ok((last, stamps)),
                    };
                }
                _ = tick.tick() => {
                    progress.set_position(self.seen.load(Ordering::Relaxed) as u64);
                    if tokio::time::Instant::now() > deadline {
                        return Err(BenchError::Failed(format!(
                            "only {} of {n} messages arrived within {guard:?}",
                            self.seen.load(Ordering::Relaxed)
                        )));
                    }
                }
            }
        }
    }
}

/// Why a message is not what Laravel would publish for its order, if it is not.
fn verify(channel: &str, payload: &[u8], pad: usize, sent: Option<u64>) -> Option<String> {
    let Some(k) = find_u64(payload, b"\"order_id\":") else {
        return Some(format!(
            "a message without an order_id on {channel}: {}",
            lossy(payload)
        ));
    };
    if channel != w1_channel(k) {
        return Some(format!(
            "order {k} arrived on {channel}, not {}",
            w1_channel(k)
        ));
    }
    let expected = w1_message(k, pad, sent);
    (payload != expected).then(|| {
        format!(
            "order {k}'s message differs from Laravel's:\n  got      {}\n  expected {}",
            lossy(payload),
            lossy(&expected)
        )
    })
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Pushes W1 envelopes `orders` (their order ids) onto `queue` in pipelined `LPUSH`es, moving
/// `progress` to the last id pushed; returns the envelope size.
pub(super) async fn preload(
    conn: &mut redis::aio::MultiplexedConnection,
    queue: &str,
    orders: std::ops::Range<u64>,
    pad: usize,
    progress: &ProgressBar,
) -> Result<usize, BenchError> {
    let mut size = 0;
    let mut k = orders.start;
    while k < orders.end {
        let chunk = (orders.end - k).min(5000);
        let mut pipe = redis::pipe();
        let end = k + chunk;
        while k < end {
            let mut cmd = redis::cmd("LPUSH");
            cmd.arg(queue);
            for _ in 0..500.min(end - k) {
                let e = w1_envelope(k, pad, None);
                size = e.len();
                cmd.arg(e);
                k += 1;
            }
            pipe.add_command(cmd).ignore();
        }
        pipe.query_async::<()>(conn).await?;
        progress.set_position(k);
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_accepts_laravels_message_and_nothing_else() {
        let good = w1_message(42, 330, Some(7));
        assert_eq!(verify("orders.42", &good, 330, Some(7)), None);
        let wrong_channel = verify("orders.43", &good, 330, Some(7)).unwrap();
        assert!(wrong_channel.contains("not orders.42"), "{wrong_channel}");
        // herald's old bug: no socket in data.
        let text = String::from_utf8(good).unwrap();
        let without_socket = text.replacen(r#","socket":null}"#, "}", 1);
        let why = verify("orders.42", without_socket.as_bytes(), 330, Some(7)).unwrap();
        assert!(why.contains("differs from Laravel's"), "{why}");
        assert!(verify("orders.42", b"{}", 330, None).is_some());
    }
}
