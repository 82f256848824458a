//! `herald bench`: the W1 workload, measured the same way every time.
//!
//! Owns: generating W1 envelopes, driving a real `herald run` child process (the same code path
//! as production, not a fast path), the subscriber that counts what arrives, the Redis ceiling
//! beside it (`redis-benchmark -P 64` on `PUBLISH` with one pattern subscriber, or a pipelined
//! loop when the binary is absent), Redis commands per event from `INFO commandstats`, latency
//! percentiles at a fixed rate, and peak/idle RSS of the herald process. Does not own: any
//! herald behaviour; it only observes.
//!
//! W1: N envelopes of ~330 bytes preloaded on a private queue key; herald with the `redis`
//! broadcaster consumes them; a `PSUBSCRIBE orders.*` client counts messages. Throughput is
//! N / (time from starting the worker to the subscriber's N-th message). Latency is producer
//! timestamp → subscriber receipt at a fixed rate.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub redis_url: String,
    /// Envelopes in the throughput run.
    pub events: usize,
    /// Envelopes per second in the latency run.
    pub rate: u32,
    /// Length of the latency run.
    pub duration: Duration,
    pub concurrency: usize,
    pub batch_size: usize,
    /// Target envelope size in bytes (W1 is ~330; larger pads `data.note`).
    pub payload_bytes: usize,
    /// Also run W1 with the Pusher broadcaster against a local Pusher-compatible endpoint.
    pub pusher: bool,
    /// The herald binary to run (normally the current executable).
    pub exe: PathBuf,
    /// Draw progress bars (off for `--json` or when stderr is not a terminal).
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Failed(String),
}

/// Everything `herald bench` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub redis_version: String,
    pub cores: usize,
    pub events: usize,
    pub envelope_bytes: usize,
    pub concurrency: usize,
    pub batch_size: usize,
    pub seconds: f64,
    pub events_per_sec: f64,
    /// `PUBLISH`/s Redis itself manages here, pipelined, with one pattern subscriber.
    pub ceiling_publish_per_sec: f64,
    pub ceiling_method: String,
    pub ratio_of_ceiling: f64,
    pub redis_commands_per_event: f64,
    pub latency_rate: u32,
    pub latency_samples: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_p999_ms: f64,
    pub latency_max_ms: f64,
    pub peak_rss_mb: f64,
    pub idle_rss_mb: f64,
    /// CPU seconds spent during the W1 run, per party: what limits throughput.
    pub cpu_seconds: CpuSeconds,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pusher: Option<PusherReport>,
}

/// CPU time (user + system) used during W1 by each party on the machine.
#[derive(Debug, Clone, Serialize)]
pub struct CpuSeconds {
    pub herald: f64,
    pub redis: f64,
    /// This process: the subscriber that counts messages (preloading happens before).
    pub subscriber: f64,
    /// Wall-clock seconds of the run, times the cores: the budget all three shared.
    pub available: f64,
}

/// user + system CPU seconds of a process, from /proc/<pid>/stat (0 where /proc is absent).
fn process_cpu(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    100.0
}

async fn redis_cpu(conn: &mut redis::aio::MultiplexedConnection) -> Result<f64, BenchError> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_sys:") + field("used_cpu_user:"))
}

/// The `--pusher` run.
#[derive(Debug, Clone, Serialize)]
pub struct PusherReport {
    pub events: usize,
    pub events_per_sec: f64,
    pub requests: u64,
    pub requests_per_1000_events: f64,
}

/// One W1 envelope. `k` picks the order; `sent_us`, when given, stamps the producer's clock.
pub fn w1_envelope(k: u64, pad_to: usize, sent_us: Option<u64>) -> Vec<u8> {
    let customer = k % 100_000;
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let stamp = sent_us
        .map(|t| format!(",\"sent_us\":{t}"))
        .unwrap_or_default();
    let mut e = format!(
        r#"{{"id":"{id}","event":"App\\Events\\OrderShipped","channels":["orders.{ch}"],"data":{{"order_id":{k},"status":"shipped","total":"123.45","carrier":"DHL","tracking":"TRK{k:010}","customer":{{"id":{customer},"name":"Customer {customer:05}","email":"customer{customer:05}@example.com"}}{stamp}"#,
        ch = k % 1000,
    );
    let tail = "}}";
    let note_overhead = ",\"note\":\"\"".len();
    if pad_to > e.len() + tail.len() + note_overhead {
        let pad = pad_to - e.len() - tail.len() - note_overhead;
        e.push_str(",\"note\":\"");
        e.extend(std::iter::repeat_n('x', pad));
        e.push('"');
    }
    e.push_str(tail);
    e.into_bytes()
}

fn bar(progress: bool, len: u64, msg: &'static str) -> ProgressBar {
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

/// A `herald run` child process on a private queue.
struct Child {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Child {
    async fn start(
        o: &Options,
        queue: &str,
        connections: &str,
        extra: &str,
    ) -> Result<Child, BenchError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            format!(
                "[redis]\nurl = \"{url}\"\n[worker]\nqueues = [\"{queue}\"]\nconcurrency = {c}\nbatch_size = {b}\n[metrics]\naddr = \"\"\n[broadcasting]\ndefault = [{connections}]\n{extra}",
                url = o.redis_url,
                c = o.concurrency,
                b = o.batch_size,
            ),
        )?;
        let child = tokio::process::Command::new(&o.exe)
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .env("HERALD_LOG_FORMAT", "json")
            .env_remove("REDIS_URL")
            .env_remove("HERALD_QUEUE")
            .env_remove("BROADCAST_CONNECTION")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Child { child, _dir: dir })
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// (current RSS, peak RSS) in MB, from /proc.
    fn rss_mb(&self) -> (f64, f64) {
        let Some(pid) = self.pid() else {
            return (0.0, 0.0);
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    async fn stop(mut self) {
        if let Some(pid) = self.pid() {
            let _ = tokio::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Counts messages on `PSUBSCRIBE orders.*` and records (sent, received) stamps of stamped ones.
/// Counting happens in the task that reads the connection, with no per-message hand-off: the
/// subscriber shares the machine with herald and Redis, and every cycle it spends is one they
/// do not get.
struct Counter {
    rx: tokio::sync::mpsc::UnboundedReceiver<(Instant, Vec<(u64, u64)>)>,
    want: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Counter {
    async fn start(client: &redis::Client) -> Result<Counter, BenchError> {
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
    async fn take(
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

fn find_u64(hay: &[u8], needle: &[u8]) -> Option<u64> {
    let start = hay.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let digits: Vec<u8> = hay[start..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn preload(
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

/// Total `calls` over every command in `INFO commandstats` (commands inside scripts included).
async fn command_calls(conn: &mut redis::aio::MultiplexedConnection) -> Result<u64, BenchError> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(info
        .lines()
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum())
}

/// `PUBLISH`/s Redis manages pipelined with one pattern subscriber attached (median of three).
///
/// The subscriber must receive every message. At `-P 64` Redis produces output faster than
/// any reader on the same machine drains it, and at the default pub/sub output-buffer limit
/// (32 MB) it disconnects the subscriber, after which PUBLISH is much cheaper and the "ceiling"
/// a fiction. So the limit is lifted for the measurement and restored afterwards; where
/// `CONFIG` is not allowed the run is void and the bench says so.
async fn ceiling(
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
    let result = match which("redis-benchmark") {
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
            if let Some(pw) = info.redis_settings().password() {
                cmd.env("REDISCLI_AUTH", pw);
            }
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank; the epsilon keeps 99.9% of 1000 at rank 999 despite float rounding.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs W1 (throughput, commands per event, peak RSS), the latency run (and idle RSS), the
/// Redis ceiling, and optionally the Pusher run.
pub async fn run(o: &Options) -> Result<Report, BenchError> {
    let client = redis::Client::open(o.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let server: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await?;
    let redis_version = server
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    let tag = format!("{:08x}", fastrand::u32(..));
    let sample = w1_envelope(42, o.payload_bytes, None);

    // Ceiling first, on a quiet server.
    let (ceiling_rate, ceiling_method) = ceiling(&client, &mut conn, &sample).await?;

    // W1 throughput.
    let queue = format!("herald:bench:{tag}:w1");
    let envelope_bytes = preload(
        &mut conn,
        &queue,
        o.events,
        o.payload_bytes,
        &bar(o.progress, o.events as u64, "preloading"),
    )
    .await?;
    let mut counter = Counter::start(&client).await?;
    let before = command_calls(&mut conn).await?;
    let redis_cpu_before = redis_cpu(&mut conn).await?;
    let bench_cpu_before = process_cpu("self");
    let started = Instant::now();
    let child = Child::start(o, &queue, "\"redis\"", "").await?;
    let guard = Duration::from_secs(120 + o.events as u64 / 1000);
    let running = bar(o.progress, o.events as u64, "W1");
    let outcome = counter.take(o.events, guard, &running).await;
    let wall = started.elapsed().as_secs_f64();
    let (_, peak_rss) = child.rss_mb();
    let herald_cpu = child.pid().map_or(0.0, |p| process_cpu(&p.to_string()));
    let cpu_seconds = CpuSeconds {
        herald: herald_cpu,
        redis: redis_cpu(&mut conn).await? - redis_cpu_before,
        subscriber: process_cpu("self") - bench_cpu_before,
        available: wall * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
    };
    let after = command_calls(&mut conn).await?;
    child.stop().await;
    let (last, _) = outcome?;
    let seconds = last.duration_since(started).as_secs_f64();
    drop(counter);
    // Our own INFO calls (commandstats, cpu ×2) are in the difference.
    let per_event = after.saturating_sub(before + 3) as f64 / o.events as f64;

    // Latency at a fixed rate, on a fresh process (its idle RSS measured first).
    let queue = format!("herald:bench:{tag}:latency");
    let mut counter = Counter::start(&client).await?;
    let child = Child::start(o, &queue, "\"redis\"", "").await?;
    // Ready when one warm-up envelope went through.
    let _: () = redis::cmd("LPUSH")
        .arg(&queue)
        .arg(w1_envelope(0, o.payload_bytes, None))
        .query_async(&mut conn)
        .await?;
    counter
        .take(1, Duration::from_secs(30), &ProgressBar::hidden())
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_rss, _) = child.rss_mb();
    let total = (o.rate as f64 * o.duration.as_secs_f64()) as usize;
    let producer = {
        let mut conn = conn.clone();
        let queue = queue.clone();
        let (rate, pad) = (o.rate, o.payload_bytes);
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for i in 0..total {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
                let e = w1_envelope(i as u64, pad, Some(now_us()));
                let _: Result<(), _> = redis::cmd("LPUSH")
                    .arg(&queue)
                    .arg(e)
                    .query_async(&mut conn)
                    .await;
            }
        })
    };
    let (_, stamps) = counter
        .take(
            total,
            o.duration + Duration::from_secs(60),
            &bar(o.progress, total as u64, "latency"),
        )
        .await?;
    let _ = producer.await;
    child.stop().await;
    let mut lat: Vec<f64> = stamps
        .iter()
        .map(|(sent, recv)| recv.saturating_sub(*sent) as f64 / 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);

    let pusher = if o.pusher {
        Some(run_pusher(o, &mut conn, &tag).await?)
    } else {
        None
    };

    // Leave nothing behind.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*herald:bench:{tag}*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }

    let events_per_sec = o.events as f64 / seconds;
    Ok(Report {
        redis_version,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        events: o.events,
        envelope_bytes,
        concurrency: o.concurrency,
        batch_size: o.batch_size,
        seconds,
        events_per_sec,
        ceiling_publish_per_sec: ceiling_rate,
        ceiling_method,
        ratio_of_ceiling: events_per_sec / ceiling_rate,
        redis_commands_per_event: per_event,
        latency_rate: o.rate,
        latency_samples: lat.len(),
        latency_p50_ms: percentile(&lat, 50.0),
        latency_p99_ms: percentile(&lat, 99.0),
        latency_p999_ms: percentile(&lat, 99.9),
        latency_max_ms: lat.last().copied().unwrap_or(0.0),
        peak_rss_mb: peak_rss,
        idle_rss_mb: idle_rss,
        cpu_seconds,
        pusher,
    })
}

/// W1 through the Pusher broadcaster (and nothing else) against the local Pusher-compatible
/// fake (`herald::testing::PusherFake`, which verifies every signature as strictly as sockudo),
/// counting the HTTP requests herald needed.
async fn run_pusher(
    o: &Options,
    conn: &mut redis::aio::MultiplexedConnection,
    tag: &str,
) -> Result<PusherReport, BenchError> {
    let fake = crate::testing::PusherFake::start().await?;
    fake.keep_details(false);
    let queue = format!("herald:bench:{tag}:pusher");
    preload(
        conn,
        &queue,
        o.events,
        o.payload_bytes,
        &bar(o.progress, o.events as u64, "preloading"),
    )
    .await?;
    let started = Instant::now();
    let child = Child::start(o, &queue, "\"pusher\"", &fake.connection_toml("pusher", "")).await?;
    let progress = bar(o.progress, o.events as u64, "W1 pusher");
    let deadline = started + Duration::from_secs(300 + o.events as u64 / 100);
    let mut last = (0, Instant::now());
    loop {
        let n = fake.event_count();
        if n != last.0 {
            last = (n, Instant::now());
        }
        progress.set_position(n as u64);
        if n >= o.events {
            break;
        }
        if Instant::now() > deadline {
            child.stop().await;
            return Err(BenchError::Failed(format!(
                "only {n} of {} events reached the Pusher fake",
                o.events
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    progress.finish_and_clear();
    let seconds = last.1.duration_since(started).as_secs_f64();
    child.stop().await;
    let requests = fake.request_count() as u64;
    Ok(PusherReport {
        events: o.events,
        events_per_sec: o.events as f64 / seconds,
        requests,
        requests_per_1000_events: requests as f64 * 1000.0 / o.events as f64,
    })
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: String| s.push_str(&format!("{k:<26}{v}\n"));
        line(
            "workload",
            format!(
                "W1: {} envelopes of {} bytes, redis broadcaster",
                self.events, self.envelope_bytes
            ),
        );
        line(
            "machine",
            format!(
                "{} cores; redis {} on the same machine",
                self.cores, self.redis_version
            ),
        );
        line(
            "worker",
            format!(
                "concurrency {} x batch {}",
                self.concurrency, self.batch_size
            ),
        );
        line(
            "throughput",
            format!(
                "{:.0} events/s ({:.2} s)",
                self.events_per_sec, self.seconds
            ),
        );
        line(
            "redis ceiling",
            format!(
                "{:.0} PUBLISH/s ({})",
                self.ceiling_publish_per_sec, self.ceiling_method
            ),
        );
        line("ratio to ceiling", format!("{:.3}", self.ratio_of_ceiling));
        line(
            "redis commands / event",
            format!("{:.3}", self.redis_commands_per_event),
        );
        line(
            "latency",
            format!(
                "p50 {:.3} ms, p99 {:.3} ms, p999 {:.3} ms, max {:.3} ms ({} events at {}/s)",
                self.latency_p50_ms,
                self.latency_p99_ms,
                self.latency_p999_ms,
                self.latency_max_ms,
                self.latency_samples,
                self.latency_rate
            ),
        );
        let c = &self.cpu_seconds;
        line(
            "CPU during W1",
            format!(
                "herald {:.2} s, redis {:.2} s, subscriber {:.2} s, of {:.2} s available",
                c.herald, c.redis, c.subscriber, c.available
            ),
        );
        line("peak RSS (W1)", format!("{:.1} MB", self.peak_rss_mb));
        line("idle RSS", format!("{:.1} MB", self.idle_rss_mb));
        if let Some(p) = &self.pusher {
            line(
                "pusher throughput",
                format!("{:.0} events/s ({} events)", p.events_per_sec, p.events),
            );
            line(
                "pusher requests",
                format!(
                    "{} ({:.1} per 1000 events)",
                    p.requests, p.requests_per_1000_events
                ),
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w1_envelopes_are_valid_and_about_330_bytes() {
        // Unpadded, small k makes it a little shorter than W1's ~330 bytes; the default
        // --payload-bytes pads to 330 exactly.
        let e = w1_envelope(42, 0, None);
        assert!((280..=330).contains(&e.len()), "{}", e.len());
        assert_eq!(w1_envelope(99_999, 330, None).len(), 330);
        let env = crate::envelope::decode(e.into(), &crate::envelope::Limits::default()).unwrap();
        assert_eq!(env.channels, ["orders.42"]);
        let padded = w1_envelope(42, 1000, Some(7));
        assert_eq!(padded.len(), 1000);
        crate::envelope::decode(padded.clone().into(), &crate::envelope::Limits::default())
            .unwrap();
        assert_eq!(find_u64(&padded, b"\"sent_us\":"), Some(7));
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
