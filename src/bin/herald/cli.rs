//! Command-line interface: `run`, `enqueue`, `stats`, `failed …`, `migrate`, `check-config`.
//!
//! Owns: argument parsing and what each command prints. Does not own: any queue logic; every
//! command calls the library (`Herald::run`, or an action of `herald::ops`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use herald::Herald;
use herald::config::{self, Config};
use herald::ops::{Ops, QueueOps};

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
    Bench(crate::bench::Args),
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

/// The one way a command reaches Redis: the operations of `config`, checked to answer.
async fn connect(config: &Config) -> Result<Ops> {
    let ops = Ops::new(config)?;
    ops.reachable().await?;
    Ok(ops)
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
                connect(&config).await?;
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
            let q = connect(&config).await?.queue(queue.as_deref());
            q.enqueue(&event, &channels, &data, count).await?;
            println!("enqueued {count} onto {}", q.list_key());
            Ok(0)
        }
        Command::Stats { json } => stats(&connect(&config).await?, json).await,
        Command::Failed { action, queue } => {
            failed(&connect(&config).await?.queue(queue.as_deref()), action).await
        }
        #[cfg(feature = "bench")]
        Command::Bench(b) => {
            connect(&config).await?;
            b.run(&config).await
        }
        Command::Migrate => {
            let applied = connect(&config).await?.migrate().await?;
            if applied.is_empty() {
                println!(
                    "keyspace is at version {}; nothing to do",
                    Ops::schema_version()
                );
            }
            for v in applied {
                println!("applied migration {v}");
            }
            Ok(0)
        }
    }
}

async fn stats(ops: &Ops, json: bool) -> Result<i32> {
    let stats = ops.stats().await?;
    let procs = ops.processes().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"queues": stats, "processes": procs}))?
        );
        return Ok(0);
    }
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for p in &procs {
        println!(
            "  {}  last heartbeat {} ms ago",
            p.id,
            now.saturating_sub(p.last_heartbeat_ms)
        );
    }
    Ok(0)
}

async fn failed(q: &QueueOps, action: FailedAction) -> Result<i32> {
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
                println!("no dead letters in {}", q.name());
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
            None => bail!("no dead letter {id:?} in {}", q.name()),
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
            println!("flushed {n} dead letter(s) from {}", q.name());
            Ok(0)
        }
    }
}
