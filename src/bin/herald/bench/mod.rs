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
//! On a Redis Cluster (`[redis] mode = "cluster"`) W1 is spread over one queue per master, each
//! preloaded on its master; the subscriber listens on one node (a replica: the cluster relays
//! every `PUBLISH` to every node); CPU and commands are read from every node and reported per
//! node. `--local-cluster` starts a local cluster and a local server and prints W1 on both side
//! by side (`compare`).

//!
//! Files: this one runs the scenario and assembles the [`Report`]; `child` is the `herald run`
//! process under test; `counter` preloads and counts; `ceiling` measures Redis alone; `measure`
//! reads CPU and command counts; `report` prints; `pusher` is the `--pusher` run;
//! `outage` is the `--outage` run; `target` is the Redis (its nodes); `compare` is
//! `--local-cluster`.

mod ceiling;
mod child;
mod compare;
mod counter;
mod measure;
mod outage;
mod pusher;
mod report;
mod target;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use herald_testkit::w1::w1_envelope;
use indicatif::ProgressBar;

use self::child::Child;
pub(crate) use self::counter::Check;
use self::counter::{Counter, bar, preload};
use self::measure::{load_average, now_us, process_cpu};
pub(crate) use self::report::Report;
use self::report::{CpuSeconds, NodeFigures, NodeMeta, W1Figures, node_totals, percentile};
use self::target::{Endpoint, Role, Target};

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
    /// Queues W1 is spread over (default: one per master: 1 on one server, 3 on a 3-master
    /// cluster). Each gets --concurrency worker tasks.
    #[arg(long)]
    queues: Option<usize>,
    /// `[redis] wait_replicas` of the herald under test (default: the config's): after each
    /// reserve and settle it waits (`WAIT`) for this many replicas.
    #[arg(long)]
    wait_replicas: Option<u32>,
    /// Ignore the config's Redis: start a local 6-node Redis Cluster (3 masters, 3 replicas)
    /// and a local redis-server on free ports, run W1 on the server, on the cluster, and on the
    /// cluster with wait_replicas = --wait-replicas (default 1), --runs times each, and print
    /// them side by side with the ratios (throughput, CPU per event per party and per node).
    #[arg(long, conflicts_with_all = ["pusher", "outage"])]
    local_cluster: bool,
    /// W1 runs of each column with --local-cluster (medians and ranges are printed).
    #[arg(long, default_value_t = 3, requires = "local_cluster")]
    runs: usize,
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
    /// Whether the bench uses the config's Redis (not with `--local-cluster`).
    pub(crate) fn uses_configured_redis(&self) -> bool {
        !self.local_cluster
    }

    /// Runs the bench against `config`'s Redis (or local ones) and prints the report.
    pub(crate) async fn run(self, config: &herald::Config) -> anyhow::Result<i32> {
        let wait = self.wait_replicas.unwrap_or(config.redis.wait_replicas);
        let options = Options {
            endpoint: Endpoint::of(&config.redis, wait)?,
            queues: self.queues,
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
        if self.local_cluster {
            let waited = self.wait_replicas.unwrap_or(1).max(1);
            let c = compare::local_cluster(&options, waited, self.runs.max(1)).await?;
            if self.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                print!("{}", c.table());
            }
            return Ok(0);
        }
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
    pub(crate) endpoint: Endpoint,
    /// Queues W1 is spread over (default: one per master).
    pub(crate) queues: Option<usize>,
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
    let load_average = load_average();
    let mut target = Target::connect(&o.endpoint).await?;
    let redis_version = redis_version(&mut target.subscriber().conn.clone()).await?;
    let tag = format!("{:08x}", fastrand::u32(..));
    let sample = w1_envelope(42, o.payload_bytes, None);

    // Ceiling first, on a quiet server (on a cluster: the subscriber's node).
    let sub = target.subscriber();
    let (ceiling_rate, ceiling_method) =
        ceiling::ceiling(&sub.client, &mut sub.conn.clone(), &sample).await?;
    let w1 = throughput(o, &mut target, &tag).await?;
    let (idle, lat) = latency(o, &mut target, &tag).await?;
    let pusher = if o.pusher {
        Some(pusher::run(o, &mut target, &tag).await?)
    } else {
        None
    };
    let outage = match o.outage {
        Some((length, rate)) => Some(outage::run(o, &mut target, &tag, length, rate).await?),
        None => None,
    };
    target.cleanup(&tag).await?;

    Ok(Report {
        redis_version,
        cores: cores(),
        load_average,
        concurrency: o.concurrency,
        batch_size: o.batch_size,
        ceiling_publish_per_sec: ceiling_rate,
        ceiling_method,
        ratio_of_ceiling: w1.events_per_sec / ceiling_rate,
        w1,
        latency_rate: o.rate,
        latency_samples: lat.len(),
        latency_p50_ms: percentile(&lat, 50.0),
        latency_p99_ms: percentile(&lat, 99.0),
        latency_p999_ms: percentile(&lat, 99.9),
        latency_max_ms: lat.last().copied().unwrap_or(0.0),
        idle_rss_mb: idle.rss_mb,
        idle_cpu_percent: idle.cpu_percent,
        idle_wake_p50_ms: percentile(&idle.wake_ms, 50.0),
        idle_wake_max_ms: idle.wake_ms.last().copied().unwrap_or(0.0),
        subscriber: o.subscriber,
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

/// W1: preload every queue on its master, start herald on all of them, time until the
/// subscriber has every message; CPU and commands from every node.
async fn throughput(o: &Options, target: &mut Target, tag: &str) -> Result<W1Figures, BenchError> {
    let n = o.queues.unwrap_or(target.masters()).max(1);
    let queues = target.queues(&format!("herald:bench:{tag}:w1"), n).await?;
    let envelope_bytes = preload_spread(o, target, &queues).await?;
    let metas = metas(target, &queues).await?;
    let mut counter =
        Counter::start(&target.subscriber().client, o.subscriber, o.payload_bytes).await?;
    let before = target.sample().await?;
    let bench_cpu_before = process_cpu("self");
    counter.expect(o.events);
    let started = Instant::now();
    let child = Child::start(o, &queues, "\"redis\"", "").await?;
    let guard = Duration::from_secs(120 + o.events as u64 / 1000);
    let running = bar(o.progress, o.events as u64, "W1");
    let outcome = counter.wait(o.events, guard, &running).await;
    let wall = started.elapsed().as_secs_f64();
    let (_, peak_rss_mb) = child.rss_mb();
    let herald_cpu = child.pid().map_or(0.0, |p| process_cpu(&p.to_string()));
    let subscriber_cpu = process_cpu("self") - bench_cpu_before;
    let after = target.sample().await?;
    child.stop().await;
    let (last, _) = outcome?;
    target.check_unchanged().await?;
    let nodes: Vec<NodeFigures> = metas
        .into_iter()
        .zip(before.into_iter().zip(after))
        .map(|(m, (b, a))| NodeFigures::between(m, b, a, o.events))
        .collect();
    let (redis_cpu, commands, master_commands) = node_totals(&nodes);
    let cpu = CpuSeconds {
        herald: herald_cpu,
        redis: redis_cpu,
        subscriber: subscriber_cpu,
        available: wall * cores() as f64,
    };
    let seconds = last.duration_since(started).as_secs_f64();
    Ok(W1Figures {
        mode: target.mode,
        wait_replicas: o.endpoint.wait_replicas,
        queues,
        events: o.events,
        envelope_bytes,
        seconds,
        events_per_sec: o.events as f64 / seconds,
        redis_commands_per_event: commands,
        redis_master_commands_per_event: master_commands,
        peak_rss_mb,
        cpu_us_per_event: cpu.per_event(o.events),
        cpu_seconds: cpu,
        nodes,
    })
}

/// Preloads `o.events` W1 envelopes, a share on each queue, each through its master's
/// connection; returns the envelope size.
async fn preload_spread(
    o: &Options,
    target: &mut Target,
    queues: &[String],
) -> Result<usize, BenchError> {
    let preloading = bar(o.progress, o.events as u64, "preloading");
    let mut envelope_bytes = 0;
    for (q, orders) in queues.iter().zip(shares(o.events, queues.len())) {
        let mut conn = target.conn_for(q).await?;
        envelope_bytes = preload(&mut conn, q, orders, o.payload_bytes, &preloading).await?;
    }
    preloading.finish_and_clear();
    Ok(envelope_bytes)
}

/// Order ids `0..events` cut into `queues` contiguous shares, the first ones larger by one.
fn shares(events: usize, queues: usize) -> Vec<std::ops::Range<u64>> {
    let (each, rest) = (events / queues, events % queues);
    let mut start = 0u64;
    (0..queues)
        .map(|i| {
            let len = (each + usize::from(i < rest)) as u64;
            start += len;
            start - len..start
        })
        .collect()
}

/// Each node's place in the run: its role, whether the subscriber is on it, its W1 queues.
async fn metas(target: &mut Target, queues: &[String]) -> Result<Vec<NodeMeta>, BenchError> {
    let mut served = vec![Vec::new(); target.nodes.len()];
    for q in queues {
        served[target.master_of(q).await?].push(q.clone());
    }
    let sub = target.subscriber().addr.clone();
    Ok(target
        .nodes
        .iter()
        .zip(served)
        .map(|(n, queues)| NodeMeta {
            node: n.role.label(),
            addr: n.addr.clone(),
            replica: matches!(n.role, Role::Replica(_)),
            subscriber: n.addr == sub,
            queues,
        })
        .collect())
}

/// Latency at a fixed rate, on a fresh process (its idle figures measured first): (idle
/// figures, sorted latencies in ms).
async fn latency(
    o: &Options,
    target: &mut Target,
    tag: &str,
) -> Result<(Idle, Vec<f64>), BenchError> {
    let queue = format!("herald:bench:{tag}:latency");
    let conn = &mut target.conn_for(&queue).await?;
    let client = &target.subscriber().client;
    let mut counter = Counter::start(client, o.subscriber, o.payload_bytes).await?;
    let child = Child::start(o, std::slice::from_ref(&queue), "\"redis\"", "").await?;
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

#[cfg(test)]
mod tests {
    use herald::envelope::{Limits, decode};
    use herald_testkit::w1::{find_u64, w1_envelope};

    #[test]
    fn shares_cover_every_order_once() {
        assert_eq!(super::shares(10, 3), [0..4, 4..7, 7..10]);
        assert_eq!(super::shares(9, 1).len(), 1);
        assert_eq!(super::shares(9, 1)[0], 0..9);
        assert_eq!(super::shares(2, 3), [0..1, 1..2, 2..2]);
    }

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
