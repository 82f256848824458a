//! Command-line interface: `run`, `enqueue`, `stats`, `failed …`, `migrate`, `check-config`.
//!
//! Owns: argument parsing and what each command prints. Does not own: any queue logic; every
//! command calls the library (`Herald::run`, `Queue`, `migrate`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use herald::config::{self, Config};
use herald::queue::{GlobalKeys, Queue, QueueKeys, Redis, reaper};
use herald::{Herald, migrate};

// Until the operations API owns it.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Fast, reliable event-broadcasting queue worker"
)]
pub struct Args {
    /// Config file (default: config/herald.toml; built-in defaults when that does not exist).
    #[arg(long, global = true, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the queues until SIGTERM/SIGINT.
    Run,
    /// Push events onto a queue, as a producer would.
    Enqueue {
        /// Event name, e.g. 'App\Events\OrderShipped'.
        event: String,
        /// Channel to broadcast on (repeatable).
        #[arg(short, long = "channel")]
        channels: Vec<String>,
        /// The data object, as JSON.
        #[arg(short, long, default_value = "{}")]
        data: String,
        /// Push this many copies (each with its own id), for load.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Queue list key (default: the first configured queue).
        #[arg(long)]
        queue: Option<String>,
    },
    /// Waiting, processing, delayed and failed counts per queue; live processes.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Inspect and act on the dead-letter store.
    Failed {
        #[command(subcommand)]
        action: FailedAction,
        /// Queue list key (default: the first configured queue).
        #[arg(long, global = true)]
        queue: Option<String>,
    },
    /// Apply pending keyspace migrations.
    Migrate,
    /// Measure throughput, latency and memory on the W1 workload against REDIS_URL.
    #[cfg(feature = "bench")]
    Bench {
        /// Envelopes in the throughput run.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Envelopes per second in the latency run.
        #[arg(long, default_value_t = 2000)]
        rate: u32,
        /// Length of the latency run, e.g. 10s.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Worker tasks (default: the config's worker.concurrency).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Envelopes per reserve (default: the config's worker.batch_size).
        #[arg(long)]
        batch_size: Option<usize>,
        /// Envelope size in bytes (W1 is ~330).
        #[arg(long, default_value_t = 330)]
        payload_bytes: usize,
        /// Also run W1 through the Pusher broadcaster against a local fake Pusher server.
        #[arg(long)]
        pusher: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config and print it as herald sees it, secrets masked.
    CheckConfig {
        /// Also check that Redis answers.
        #[arg(long)]
        ping: bool,
    },
}

#[derive(Subcommand)]
enum FailedAction {
    /// Newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[arg(long)]
        json: bool,
    },
    /// One dead letter, whole, as JSON.
    Show { id: String },
    /// Put dead letters back on their queue; only the deliveries that failed run again.
    Retry {
        ids: Vec<String>,
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Delete dead letters.
    Forget {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete every dead letter of the queue.
    Flush,
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None if Path::new(config::DEFAULT_PATH).exists() => {
            Ok(Config::load(Path::new(config::DEFAULT_PATH))?)
        }
        None => Ok(Config::parse("", "(built-in defaults)", &|k| {
            std::env::var(k).ok()
        })?),
    }
}

fn queue_for(config: &Config, redis: &Redis, name: Option<&str>) -> Queue {
    let name = name.unwrap_or(&config.worker.queues[0]);
    Queue::new(
        redis.clone(),
        QueueKeys::new(&config.redis.prefix, name),
        config.failed.max_entries,
    )
}

fn open_redis(config: &Config) -> Result<Redis> {
    Redis::open(&config.redis.url, 4)
        .with_context(|| format!("redis.url {}", config::mask_url_password(&config.redis.url)))
}

async fn reachable(redis: &Redis, config: &Config) -> Result<()> {
    if !redis.ping().await {
        bail!(
            "cannot reach Redis at {} (redis.url / REDIS_URL)",
            config::mask_url_password(&config.redis.url)
        );
    }
    Ok(())
}

pub async fn dispatch(args: Args) -> Result<i32> {
    let config = load_config(args.config.as_deref())?;
    match args.command {
        Command::Run => {
            Herald::new(config).run(herald::shutdown::signal()).await?;
            Ok(0)
        }
        Command::CheckConfig { ping } => {
            print!("{}", config.to_masked_toml());
            if ping {
                let redis = open_redis(&config)?;
                reachable(&redis, &config).await?;
                println!("# redis: reachable");
            }
            Ok(0)
        }
        Command::Enqueue {
            event,
            channels,
            data,
            count,
            queue,
        } => {
            let data: Value = serde_json::from_str(&data).context("--data is not JSON")?;
            if !data.is_object() {
                bail!("--data must be a JSON object");
            }
            let redis = open_redis(&config)?;
            reachable(&redis, &config).await?;
            let q = queue_for(&config, &redis, queue.as_deref());
            let now = now_ms() as f64 / 1000.0;
            let mut pushed = 0;
            while pushed < count {
                let n = (count - pushed).min(10_000);
                let batch: Vec<Vec<u8>> = (0..n)
                    .map(|_| {
                        serde_json::to_vec(&json!({
                            "id": uuid::Uuid::new_v4().to_string(),
                            "event": event,
                            "channels": channels,
                            "data": data,
                            "created_at": now,
                        }))
                        .expect("JSON values serialize")
                    })
                    .collect();
                q.push(&batch).await?;
                pushed += n;
            }
            println!("enqueued {count} onto {}", q.keys.list);
            Ok(0)
        }
        Command::Stats { json } => {
            let redis = open_redis(&config)?;
            reachable(&redis, &config).await?;
            let now = now_ms();
            let mut stats = Vec::new();
            for name in &config.worker.queues {
                stats.push(queue_for(&config, &redis, Some(name)).stats(now).await?);
            }
            let global = GlobalKeys::new(&config.redis.prefix);
            let procs = reaper::live_processes(&redis, &global).await?;
            if json {
                let procs: Vec<Value> = procs
                    .iter()
                    .map(|(id, beat, info)| json!({"id": id, "last_heartbeat_ms": beat, "info": info}))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"queues": stats, "processes": procs}))?
                );
            } else {
                println!(
                    "{:<32} {:>10} {:>10} {:>10} {:>10}",
                    "QUEUE", "WAITING", "PROCESSING", "DELAYED", "FAILED"
                );
                for s in &stats {
                    println!(
                        "{:<32} {:>10} {:>10} {:>10} {:>10}",
                        s.queue, s.waiting, s.processing, s.delayed, s.failed
                    );
                }
                println!("\n{} live process(es)", procs.len());
                for (id, beat, _) in &procs {
                    println!(
                        "  {id}  last heartbeat {} ms ago",
                        now.saturating_sub(*beat)
                    );
                }
            }
            Ok(0)
        }
        Command::Failed { action, queue } => {
            let redis = open_redis(&config)?;
            reachable(&redis, &config).await?;
            let q = queue_for(&config, &redis, queue.as_deref());
            failed(&q, action).await
        }
        #[cfg(feature = "bench")]
        Command::Bench {
            events,
            rate,
            duration,
            concurrency,
            batch_size,
            payload_bytes,
            pusher,
            json,
        } => {
            let redis = open_redis(&config)?;
            reachable(&redis, &config).await?;
            let options = crate::bench::Options {
                redis_url: config.redis.url.clone(),
                events,
                rate,
                duration,
                concurrency: concurrency.unwrap_or(config.worker.concurrency),
                batch_size: batch_size.unwrap_or(config.worker.batch_size),
                payload_bytes,
                pusher,
                exe: std::env::current_exe().context("locating the herald binary")?,
                progress: !json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let report = crate::bench::run(&options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            Ok(0)
        }
        Command::Migrate => {
            let redis = open_redis(&config)?;
            reachable(&redis, &config).await?;
            let queues: Vec<Queue> = config
                .worker
                .queues
                .iter()
                .map(|n| queue_for(&config, &redis, Some(n)))
                .collect();
            let global = GlobalKeys::new(&config.redis.prefix);
            let applied = migrate::migrate(&queues, &global, &config.redis.prefix).await?;
            if applied.is_empty() {
                println!(
                    "keyspace is at version {}; nothing to do",
                    migrate::current()
                );
            } else {
                for v in applied {
                    println!("applied migration {v}");
                }
            }
            Ok(0)
        }
    }
}

async fn failed(q: &Queue, action: FailedAction) -> Result<i32> {
    match action {
        FailedAction::List {
            limit,
            offset,
            json,
        } => {
            let entries = q.failed_list(offset, limit).await?;
            if json {
                let v: Vec<Value> = entries
                    .iter()
                    .map(|(id, e)| {
                        let mut v = serde_json::to_value(e).expect("dead letters serialize");
                        v["id"] = json!(id);
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if entries.is_empty() {
                println!("no dead letters in {}", q.keys.name);
            } else {
                for (id, e) in entries {
                    println!(
                        "{id}  {}  {}  attempts={}  {}: {}",
                        e.failed_at,
                        e.event.as_deref().unwrap_or("-"),
                        e.attempts,
                        e.code,
                        e.reason
                    );
                }
            }
            Ok(0)
        }
        FailedAction::Show { id } => match q.failed_get(&id).await? {
            Some(e) => {
                let mut v = serde_json::to_value(&e)?;
                v["id"] = json!(id);
                println!("{}", serde_json::to_string_pretty(&v)?);
                Ok(0)
            }
            None => bail!("no dead letter {id:?} in {}", q.keys.name),
        },
        FailedAction::Retry { ids, all } => {
            let ids = if all { q.failed_ids().await? } else { ids };
            if ids.is_empty() {
                bail!("name dead-letter ids to retry, or --all");
            }
            let mut missing = 0;
            for id in &ids {
                if q.failed_retry(id).await? {
                    println!("retried {id}");
                } else {
                    eprintln!("no dead letter {id:?}");
                    missing += 1;
                }
            }
            Ok(if missing > 0 { 1 } else { 0 })
        }
        FailedAction::Forget { ids } => {
            let mut missing = 0;
            for id in &ids {
                if q.failed_forget(id).await? {
                    println!("forgot {id}");
                } else {
                    eprintln!("no dead letter {id:?}");
                    missing += 1;
                }
            }
            Ok(if missing > 0 { 1 } else { 0 })
        }
        FailedAction::Flush => {
            let n = q.failed_flush().await?;
            println!("flushed {n} dead letter(s) from {}", q.keys.name);
            Ok(0)
        }
    }
}
