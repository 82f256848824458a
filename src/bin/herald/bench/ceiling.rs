//! The Redis ceiling: how many `PUBLISH`es per second Redis itself manages here, pipelined, with
//! one pattern subscriber that must receive every message.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::BenchError;

/// `PUBLISH`/s Redis manages pipelined with one pattern subscriber attached (median of three).
///
/// The subscriber must receive every message. At `-P 64` Redis produces output faster than
/// any reader on the same machine drains it, and at the default pub/sub output-buffer limit
/// (32 MB) it disconnects the subscriber, after which PUBLISH is much cheaper and the "ceiling"
/// a fiction. So the limit is lifted for the measurement and restored afterwards; where
/// `CONFIG` is not allowed the run is void and the bench says so.
pub(super) async fn ceiling(
    client: &redis::Client,
    conn: &mut redis::aio::MultiplexedConnection,
    payload: &[u8],
) -> Result<(f64, String), BenchError> {
    let info = client.get_connection_info();
    let saved: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("client-output-buffer-limit")
        .query_async(conn)
        .await?;
    let saved = saved.get(1).cloned().unwrap_or_default();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 0 0 0")
        .query_async(conn)
        .await?;
    let mut runs = Vec::new();
    let mut failure = None;
    for _ in 0..3 {
        let drain = Drain::start(info).await?;
        let run = ceiling_once(client, info, payload).await;
        let received = drain
            .finish(CEILING_PUBLISHES * payload.len() as u64)
            .await?;
        match run {
            Ok(r) if received => runs.push(r),
            Ok(_) => {
                failure = Some(BenchError::Failed(
                    "the ceiling's pattern subscriber missed messages; the measurement is void"
                        .into(),
                ));
                break;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg(&saved)
        .query_async(conn)
        .await?;
    if let Some(e) = failure {
        return Err(e);
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (rate, method) = runs.swap_remove(1);
    Ok((rate, format!("{method}, median of 3")))
}

/// Publishes per ceiling run: ~0.4 GB of subscriber output at most, drained as it goes.
const CEILING_PUBLISHES: u64 = 1_000_000;

/// A raw `PSUBSCRIBE orders.*` connection that counts the bytes it reads and discards them.
struct Drain {
    task: tokio::task::JoinHandle<()>,
    total: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Drain {
    async fn start(info: &redis::ConnectionInfo) -> Result<Drain, BenchError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = match info.addr() {
            redis::ConnectionAddr::Tcp(h, p) => format!("{h}:{p}"),
            other => {
                return Err(BenchError::Failed(format!(
                    "the ceiling needs a TCP Redis, not {other:?}"
                )));
            }
        };
        let mut sock = tokio::net::TcpStream::connect(addr).await?;
        let settings = info.redis_settings();
        if let Some(pw) = settings.password() {
            let user = settings.username().unwrap_or("default");
            let auth = format!(
                "*3\r\n$4\r\nAUTH\r\n${}\r\n{user}\r\n${}\r\n{pw}\r\n",
                user.len(),
                pw.len()
            );
            sock.write_all(auth.as_bytes()).await?;
        }
        sock.write_all(b"*2\r\n$10\r\nPSUBSCRIBE\r\n$8\r\norders.*\r\n")
            .await?;
        // Wait for the subscription to be confirmed before anything is published.
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = Vec::new();
        while !got.windows(8).any(|w| w == b"orders.*") {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                return Err(BenchError::Failed(
                    "Redis closed the subscriber connection".into(),
                ));
            }
            got.extend_from_slice(&buf[..n]);
        }
        let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = total.clone();
        let task = tokio::spawn(async move {
            while let Ok(n) = sock.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                counted.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            }
        });
        Ok(Drain { task, total })
    }

    /// Waits (bounded) until at least `bytes` arrived; whether they did before the connection
    /// closed.
    async fn finish(self, bytes: u64) -> Result<bool, BenchError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let read = || self.total.load(std::sync::atomic::Ordering::Relaxed);
        while read() < bytes && !self.task.is_finished() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ok = read() >= bytes;
        self.task.abort();
        Ok(ok)
    }
}

async fn ceiling_once(
    client: &redis::Client,
    info: &redis::ConnectionInfo,
    payload: &[u8],
) -> Result<(f64, String), BenchError> {
    // redis-benchmark takes a password only on its command line (it ignores REDISCLI_AUTH),
    // where every local user could read it: with one, the in-process loop measures instead.
    let benchmark = which("redis-benchmark").filter(|_| info.redis_settings().password().is_none());
    let result = match benchmark {
        Some(bin) => {
            let (host, port) = match info.addr() {
                redis::ConnectionAddr::Tcp(h, p)
                | redis::ConnectionAddr::TcpTls {
                    host: h, port: p, ..
                } => (h.clone(), *p),
                _ => ("127.0.0.1".to_string(), 6379),
            };
            let mut cmd = tokio::process::Command::new(bin);
            let n = CEILING_PUBLISHES.to_string();
            cmd.args([
                "-h",
                &host,
                "-p",
                &port.to_string(),
                "-P",
                "64",
                "-n",
                &n,
                "-q",
            ]);
            cmd.arg("PUBLISH")
                .arg("orders.1")
                .arg(String::from_utf8_lossy(payload).as_ref());
            let out = cmd.output().await?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let rate = text
                .split(" requests per second")
                .next()
                .and_then(|s| s.rsplit(": ").next())
                .and_then(|s| s.trim().parse::<f64>().ok())
                .ok_or_else(|| {
                    BenchError::Failed(format!("cannot read redis-benchmark output: {text}"))
                })?;
            (
                rate,
                "redis-benchmark -P 64 PUBLISH, one pattern subscriber".to_string(),
            )
        }
        None => {
            let mut conn = client.get_multiplexed_async_connection().await?;
            let n = CEILING_PUBLISHES;
            let start = Instant::now();
            for _ in 0..n / 1000 {
                let mut pipe = redis::pipe();
                for _ in 0..1000 {
                    pipe.cmd("PUBLISH").arg("orders.1").arg(payload).ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
            }
            (
                n as f64 / start.elapsed().as_secs_f64(),
                "pipelined PUBLISH loop (1000 per round trip), one pattern subscriber".to_string(),
            )
        }
    };
    Ok(result)
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}
