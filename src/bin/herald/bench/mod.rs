//! `herald bench`: the W1 workload, measured the same way every time. Part of the binary, not
//! the library; built with the `bench` feature (on by default).
//!
//! Owns: generating W1 envelopes, driving a real `herald run` child process (the same code path
//! as production, not a fast path), the subscriber that counts what arrives, the Redis ceiling
//! beside it (`redis-benchmark -P 64` on `PUBLISH` with one pattern subscriber, or a pipelined
//! loop when the binary is absent), Redis commands per event from `INFO commandstats`, latency
//! percentiles at a fixed rate, peak/idle RSS of the herald process, its idle CPU and how fast
//! it wakes for an idle queue's event. Does not own: any herald behaviour; it only observes.
//!
//! W1: N envelopes of ~330 bytes preloaded on a private queue key; herald with the `redis`
//! broadcaster consumes them; a `PSUBSCRIBE orders.*` client counts messages. Throughput is
//! N / (time from starting the worker to the subscriber's N-th message). Latency is producer
//! timestamp → subscriber receipt at a fixed rate.

//!
//! Files: this one runs the scenario and assembles the [`Report`]; `child` is the `herald run`
//! process under test; `counter` preloads and counts; `ceiling` measures Redis alone; `measure`
//! reads CPU and command counts; `report` prints; `pusher` is the `--pusher` run;
//! `outage` is the `--outage` run.

mod ceiling;
mod child;
mod counter;
mod measure;
mod outage;
mod pusher;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use herald_testkit::w1::w1_envelope;
use indicatif::ProgressBar;

use self::child::Child;
pub(crate) use self::counter::Check;
use self::counter::{Counter, bar, preload};
use self::measure::{command_calls, now_us, process_cpu, redis_cpu};
pub(crate) use self::report::Report;
use self::report::{CpuSeconds, percentile};

/// `herald bench`'s flags.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Envelopes in the throughput run.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Envelopes per second in the latency run.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Length of the latency run, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Worker tasks (default: the config's worker.concurrency).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Envelopes per reserve (default: the config's worker.batch_size).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Envelope size in bytes (W1 is ~330).
    #[arg(long, default_value_t = 330)]
    payload_bytes: usize,
    /// What the subscriber does with each message: `verify` checks its channel and every byte
    /// against Laravel's message, as a real consumer reads it; `count` only counts.
    #[arg(long, value_enum, default_value = "verify")]
    subscriber: Check,
    /// Also run W1 through the Pusher broadcaster against a local fake Pusher server.
    #[arg(long)]
    pusher: bool,
    /// Also run issue 11 §7: the Pusher fake answers 503 for this long (e.g. 60s) while
    /// events arrive at --outage-rate, then recovers; reports loss, Redis memory, CPU, drain.
    #[arg(long, value_parser = humantime::parse_duration)]
    outage: Option<Duration>,
    /// Envelopes per second pushed during the outage.
    #[arg(long, default_value_t = 20_000)]
    outage_rate: u32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The herald binary to measure (default: this one), for before/after comparisons with the
    /// same bench.
    #[arg(long)]
    exe: Option<PathBuf>,
}

impl Args {
    /// Runs the bench against `config`'s Redis and prints the report.
    pub(crate) async fn run(self, config: &herald::Config) -> anyhow::Result<i32> {
        let options = Options {
            redis_url: config.redis.url.expose().to_string(),
            events: self.events,
            rate: self.rate,
            duration: self.duration,
            concurrency: self.concurrency.unwrap_or(config.worker.concurrency),
            batch_size: self.batch_size.unwrap_or(config.worker.batch_size),
            payload_bytes: self.payload_bytes,
            subscriber: self.subscriber,
            pusher: self.pusher,
            outage: self.outage.map(|d| (d, self.outage_rate)),
            exe: match self.exe {
                Some(exe) => exe,
                None => std::env::current_exe()
                    .map_err(|e| anyhow::anyhow!("locating the herald binary: {e}"))?,
            },
            progress: !self.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        let report = run(&options).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.table());
        }
        Ok(0)
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) redis_url: String,
    /// Envelopes in the throughput run.
    pub(crate) events: usize,
    /// Envelopes per second in the latency run.
    pub(crate) rate: u32,
    /// Length of the latency run.
    pub(crate) duration: Duration,
    pub(crate) concurrency: usize,
    pub(crate) batch_size: usize,
    /// Target envelope size in bytes (W1 is ~330; larger pads `data.note`).
    pub(crate) payload_bytes: usize,
    /// What the subscriber does with each message.
    pub(crate) subscriber: Check,
    /// Also run W1 with the Pusher broadcaster against a local Pusher-compatible endpoint.
    pub(crate) pusher: bool,
    /// The outage scenario: (how long the fake is down, envelopes per second meanwhile).
    pub(crate) outage: Option<(Duration, u32)>,
    /// The herald binary to run (normally the current executable).
    pub(crate) exe: PathBuf,
    /// Draw progress bars (off for `--json` or when stderr is not a terminal).
    pub(crate) progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Failed(String),
}

type Conn = redis::aio::MultiplexedConnection;

/// Runs W1 (throughput, commands per event, peak RSS), the latency run (and idle figures), the
/// Redis ceiling, and optionally the Pusher run.
pub(crate) async fn run(o: &Options) -> Result<Report, BenchError> {
    let client = redis::Client::open(o.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let redis_version = redis_version(&mut conn).await?;
    let tag = format!("{:08x}", fastrand::u32(..));
    let sample = w1_envelope(42, o.payload_bytes, None);

    // Ceiling first, on a quiet server.
    let (ceiling_rate, ceiling_method) = ceiling::ceiling(&client, &mut conn, &sample).await?;
    let w1 = throughput(o, &client, &mut conn, &tag).await?;
    let (idle, lat) = latency(o, &client, &mut conn, &tag).await?;
    let pusher = if o.pusher {
        Some(pusher::run(o, &mut conn, &tag).await?)
    } else {
        None
    };
    let outage = match o.outage {
        Some((length, rate)) => Some(outage::run(o, &mut conn, &tag, length, rate).await?),
        None => None,
    };
    cleanup(&mut conn, &tag).await?;

    let events_per_sec = o.events as f64 / w1.seconds;
    Ok(Report {
        redis_version,
        cores: cores(),
        events: o.events,
        envelope_bytes: w1.envelope_bytes,
        concurrency: o.concurrency,
        batch_size: o.batch_size,
        seconds: w1.seconds,
        events_per_sec,
        ceiling_publish_per_sec: ceiling_rate,
        ceiling_method,
        ratio_of_ceiling: events_per_sec / ceiling_rate,
        redis_commands_per_event: w1.commands_per_event,
        latency_rate: o.rate,
        latency_samples: lat.len(),
        latency_p50_ms: percentile(&lat, 50.0),
        latency_p99_ms: percentile(&lat, 99.0),
        latency_p999_ms: percentile(&lat, 99.9),
        latency_max_ms: lat.last().copied().unwrap_or(0.0),
        peak_rss_mb: w1.peak_rss_mb,
        idle_rss_mb: idle.rss_mb,
        idle_cpu_percent: idle.cpu_percent,
        idle_wake_p50_ms: percentile(&idle.wake_ms, 50.0),
        idle_wake_max_ms: idle.wake_ms.last().copied().unwrap_or(0.0),
        subscriber: o.subscriber,
        cpu_us_per_event: w1.cpu.per_event(o.events),
        cpu_seconds: w1.cpu,
        pusher,
        outage,
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

async fn redis_version(conn: &mut Conn) -> Result<String, BenchError> {
    let server: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    Ok(server
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_string())
}

/// What the W1 throughput run measured.
struct W1 {
    envelope_bytes: usize,
    seconds: f64,
    commands_per_event: f64,
    peak_rss_mb: f64,
    cpu: CpuSeconds,
}

/// W1: preload, start herald, time until the subscriber has every message.
async fn throughput(
    o: &Options,
    client: &redis::Client,
    conn: &mut Conn,
    tag: &str,
) -> Result<W1, BenchError> {
    let queue = format!("herald:bench:{tag}:w1");
    let preloading = bar(o.progress, o.events as u64, "preloading");
    let envelope_bytes = preload(conn, &queue, o.events, o.payload_bytes, &preloading).await?;
    let mut counter = Counter::start(client, o.subscriber, o.payload_bytes).await?;
    let before = command_calls(conn).await?;
    let redis_cpu_before = redis_cpu(conn).await?;
    let bench_cpu_before = process_cpu("self");
    counter.expect(o.events);
    let started = Instant::now();
    let child = Child::start(o, &queue, "\"redis\"", "").await?;
    let guard = Duration::from_secs(120 + o.events as u64 / 1000);
    let running = bar(o.progress, o.events as u64, "W1");
    let outcome = counter.wait(o.events, guard, &running).await;
    let wall = started.elapsed().as_secs_f64();
    let (_, peak_rss_mb) = child.rss_mb();
    let cpu = CpuSeconds {
        herald: child.pid().map_or(0.0, |p| process_cpu(&p.to_string())),
        redis: redis_cpu(conn).await? - redis_cpu_before,
        subscriber: process_cpu("self") - bench_cpu_before,
        available: wall * cores() as f64,
    };
    let after = command_calls(conn).await?;
    child.stop().await;
    let (last, _) = outcome?;
    // Our own INFO calls (commandstats, cpu ×2) are in the difference.
    let commands_per_event = after.saturating_sub(before + 3) as f64 / o.events as f64;
    Ok(W1 {
        envelope_bytes,
        seconds: last.duration_since(started).as_secs_f64(),
        commands_per_event,
        peak_rss_mb,
        cpu,
    })
}

/// Latency at a fixed rate, on a fresh process (its idle figures measured first): (idle
/// figures, sorted latencies in ms).
async fn latency(
    o: &Options,
    client: &redis::Client,
    conn: &mut Conn,
    tag: &str,
) -> Result<(Idle, Vec<f64>), BenchError> {
    let queue = format!("herald:bench:{tag}:latency");
    let mut counter = Counter::start(client, o.subscriber, o.payload_bytes).await?;
    let child = Child::start(o, &queue, "\"redis\"", "").await?;
    // Ready when one warm-up envelope went through.
    counter.expect(1);
    let _: () = redis::cmd("LPUSH")
        .arg(&queue)
        .arg(w1_envelope(0, o.payload_bytes, None))
        .query_async(conn)
        .await?;
    counter
        .wait(1, Duration::from_secs(30), &ProgressBar::hidden())
        .await?;
    let idle = idle(o, &mut counter, conn, &queue, &child).await?;
    let total = (o.rate as f64 * o.duration.as_secs_f64()) as usize;
    counter.expect(total);
    let producer = tokio::spawn(produce(conn.clone(), queue, o.rate, o.payload_bytes, total));
    let progress = bar(o.progress, total as u64, "latency");
    let (_, stamps) = counter
        .wait(total, o.duration + Duration::from_secs(60), &progress)
        .await?;
    let _ = producer.await;
    child.stop().await;
    let mut lat: Vec<f64> = stamps
        .iter()
        .map(|(sent, recv)| recv.saturating_sub(*sent) as f64 / 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    Ok((idle, lat))
}

/// An idle herald: RSS, CPU over [`IDLE_WINDOW`], and how long single envelopes pushed onto
/// its idle queue take to reach the subscriber.
struct Idle {
    rss_mb: f64,
    cpu_percent: f64,
    wake_ms: Vec<f64>,
}

const IDLE_WINDOW: Duration = Duration::from_secs(10);
const WAKES: usize = 10;

async fn idle(
    o: &Options,
    counter: &mut Counter,
    conn: &mut Conn,
    queue: &str,
    child: &Child,
) -> Result<Idle, BenchError> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_mb, _) = child.rss_mb();
    let pid = child
        .pid()
        .map_or_else(|| "0".to_string(), |p| p.to_string());
    let before = process_cpu(&pid);
    tokio::time::sleep(IDLE_WINDOW).await;
    let cpu_percent = (process_cpu(&pid) - before) / IDLE_WINDOW.as_secs_f64() * 100.0;
    let mut wake_ms = Vec::with_capacity(WAKES);
    for i in 0..WAKES {
        // Each envelope finds the queue idle: the worker is parked in its blocking pop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        counter.expect(1);
        let e = w1_envelope(i as u64, o.payload_bytes, Some(now_us()));
        let _: () = redis::cmd("LPUSH")
            .arg(queue)
            .arg(e)
            .query_async(conn)
            .await?;
        let (_, stamps) = counter
            .wait(1, Duration::from_secs(30), &ProgressBar::hidden())
            .await?;
        wake_ms.extend(
            stamps
                .iter()
                .map(|(s, r)| r.saturating_sub(*s) as f64 / 1000.0),
        );
    }
    wake_ms.sort_by(f64::total_cmp);
    Ok(Idle {
        rss_mb,
        cpu_percent,
        wake_ms,
    })
}

/// Pushes `total` stamped envelopes at `rate` per second, one `LPUSH` each.
async fn produce(mut conn: Conn, queue: String, rate: u32, pad: usize, total: usize) {
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
}

/// Leaves nothing of this run behind.
async fn cleanup(conn: &mut Conn, tag: &str) -> Result<(), BenchError> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*herald:bench:{tag}*"))
        .query_async(conn)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use herald::envelope::{Limits, decode};
    use herald_testkit::w1::{find_u64, w1_envelope};

    #[test]
    fn w1_envelopes_are_valid_and_about_330_bytes() {
        // Unpadded, small k makes it a little shorter than W1's ~330 bytes; the default
        // --payload-bytes pads to 330 exactly.
        let e = w1_envelope(42, 0, None);
        assert!((280..=330).contains(&e.len()), "{}", e.len());
        assert_eq!(w1_envelope(99_999, 330, None).len(), 330);
        let env = decode(e.into(), &Limits::default()).unwrap();
        assert_eq!(env.channels, ["orders.42"]);
        let padded = w1_envelope(42, 1000, Some(7));
        assert_eq!(padded.len(), 1000);
        decode(padded.clone().into(), &Limits::default()).unwrap();
        assert_eq!(find_u64(&padded, b"\"sent_us\":"), Some(7));
    }
}
