//! Filling the queue and counting what arrives: the W1 preload, and the subscriber that counts
//! messages and collects latency stamps.

use std::time::{Duration, Instant};

use futures::StreamExt;
use herald_testkit::w1::{find_u64, w1_envelope};
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

/// Counts messages on `PSUBSCRIBE orders.*` and records (sent, received) stamps of stamped ones.
/// Counting happens in the task that reads the connection, with no per-message hand-off: the
/// subscriber shares the machine with herald and Redis, and every cycle it spends is one they
/// do not get.
pub(super) struct Counter {
    rx: tokio::sync::mpsc::UnboundedReceiver<(Instant, Vec<(u64, u64)>)>,
    want: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Counter {
    pub(super) async fn start(client: &redis::Client) -> Result<Counter, BenchError> {
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
            let mut count = 0usize;
            while let Some(msg) = stream.next().await {
                count += 1;
                if let Some(sent) = find_u64(msg.get_payload_bytes(), b"\"sent_us\":") {
                    stamps.push((sent, now_us()));
                }
                if count.is_multiple_of(256) {
                    n.store(count, Ordering::Relaxed);
                }
                if count >= w.load(Ordering::Relaxed) {
                    n.store(count, Ordering::Relaxed);
                    if tx
                        .send((Instant::now(), std::mem::take(&mut stamps)))
                        .is_err()
                    {
                        break;
                    }
                    count = 0;
                    w.store(usize::MAX, Ordering::Relaxed);
                }
            }
        });
        Ok(Counter { rx, want, seen })
    }

    /// Waits for `n` more messages; returns when the last arrived and the (sent, received)
    /// stamps among them.
    pub(super) async fn take(
        &mut self,
        n: usize,
        guard: Duration,
        progress: &ProgressBar,
    ) -> Result<(Instant, Vec<(u64, u64)>), BenchError> {
        use std::sync::atomic::Ordering;
        self.seen.store(0, Ordering::Relaxed);
        self.want.store(n, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + guard;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                got = self.rx.recv() => {
                    progress.finish_and_clear();
                    return got.ok_or_else(|| BenchError::Failed("the subscriber connection closed".into()));
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

/// Pushes `n` W1 envelopes onto `queue` in pipelined `LPUSH`es; returns the envelope size.
pub(super) async fn preload(
    conn: &mut redis::aio::MultiplexedConnection,
    queue: &str,
    n: usize,
    pad: usize,
    progress: &ProgressBar,
) -> Result<usize, BenchError> {
    let mut size = 0;
    let mut k = 0u64;
    while (k as usize) < n {
        let chunk = (n - k as usize).min(5000);
        let mut pipe = redis::pipe();
        for part in 0..chunk.div_ceil(500) {
            let mut cmd = redis::cmd("LPUSH");
            cmd.arg(queue);
            for _ in 0..500.min(chunk - part * 500) {
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
    progress.finish_and_clear();
    Ok(size)
}
