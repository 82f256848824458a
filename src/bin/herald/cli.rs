//! Command-line interface: `run`, `enqueue`, `stats`, `failed …`, `pause`, `resume`, `migrate`,
//! `check-config`.
//!
//! Owns: argument parsing and what each command prints. Does not own: any queue logic; every
//! command calls the library (`Herald::run`, or an action of `herald::ops`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use herald::Herald;
use herald::config::{self, Config};
use herald::ops::{Actor, Cursor, Filter, Ops, QueueOps, Selection};

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
    /// Stop every replica from reserving from a queue (in-flight batches finish).
    Pause {
        /// Queue list key (default: the first configured queue).
        #[arg(long)]
        queue: Option<String>,
    },
    /// Let workers reserve from a paused queue again.
    Resume {
        /// Queue list key (default: the first configured queue).
        #[arg(long)]
        queue: Option<String>,
    },
    /// Apply pending keyspace migrations.
    Migrate,
    /// Measure throughput, latency and memory on the W1 workload against the configured Redis
    /// (one server or a cluster), or W1 on a local cluster beside a local server.
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
    /// Newest first; the filters narrow it.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Start after this cursor (a previous `--json` page's `next`).
        #[arg(long, conflicts_with = "offset")]
        after: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        json: bool,
    },
    /// One dead letter, whole, as JSON.
    Show { id: String },
    /// Put dead letters back on their queue; only the deliveries that failed run again.
    Retry {
        ids: Vec<String>,
        /// Every dead letter (that the filters match).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Delete dead letters.
    Forget {
        ids: Vec<String>,
        /// Every dead letter that the filters match (at least one filter is required).
        #[arg(long, conflicts_with = "ids")]
        matching: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Delete every dead letter of the queue.
    Flush,
}

/// Which dead letters: every flag given must match.
#[derive(clap::Args, Default)]
struct FilterArgs {
    /// Their code (`retries_exhausted`, `http_4xx`, `invalid_json`, …).
    #[arg(long)]
    reason: Option<String>,
    /// A failed delivery (`broadcast:pusher`, `listener:audit`, or the name alone).
    #[arg(long)]
    delivery: Option<String>,
    /// Text the event name contains (any case).
    #[arg(long)]
    event: Option<String>,
    /// Failed since: a duration ago (`90m`, `2h`) or a time (`2026-11-01T03:00:00Z`).
    #[arg(long, value_parser = parse_time)]
    since: Option<u64>,
    /// Failed until: a duration ago or a time.
    #[arg(long, value_parser = parse_time)]
    until: Option<u64>,
}

impl FilterArgs {
    fn filter(self) -> Filter {
        Filter {
            reason: self.reason,
            delivery: self.delivery,
            event: self.event,
            since_ms: self.since,
            until_ms: self.until,
        }
    }
}

/// `2h` (that long ago) or an RFC 3339 time, as ms since the epoch.
fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(ago) = humantime::parse_duration(s) {
        return Ok(Ops::now_ms().saturating_sub(ago.as_millis() as u64));
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|_| format!("{s:?} is neither a duration (2h) nor a time (2026-11-01T03:00:00Z)"))?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| format!("{s:?} is before 1970"))
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
        Command::Pause { queue } => {
            let q = connect(&config).await?.configured_queue(queue.as_deref())?;
            if q.pause(&Actor::cli()).await? {
                println!(
                    "paused {}; workers stop reserving within a heartbeat",
                    q.name()
                );
            } else {
                println!("{} was already paused", q.name());
            }
            Ok(0)
        }
        Command::Resume { queue } => {
            let q = connect(&config).await?.configured_queue(queue.as_deref())?;
            if q.resume(&Actor::cli()).await? {
                println!("resumed {}", q.name());
            } else {
                println!("{} was not paused", q.name());
            }
            Ok(0)
        }
        Command::Failed { action, queue } => {
            failed(&connect(&config).await?.queue(queue.as_deref()), action).await
        }
        #[cfg(feature = "bench")]
        Command::Bench(b) => {
            if b.uses_configured_redis() {
                connect(&config).await?;
            }
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
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(0);
    }
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "QUEUE", "WAITING", "PROCESSING", "DELAYED", "PARKED", "FAILED"
    );
    for s in &stats.queues {
        println!(
            "{:<32} {:>10} {:>10} {:>10} {:>10} {:>10}",
            s.queue, s.waiting, s.processing, s.delayed, s.parked, s.failed
        );
    }
    println!("\n{} live process(es)", stats.processes.len());
    let now = Ops::now_ms();
    for p in &stats.processes {
        println!(
            "  {}  last heartbeat {} ms ago, {} in flight",
            p.id,
            now.saturating_sub(p.last_heartbeat_ms),
            p.inflight
        );
    }
    Ok(0)
}

fn entry_json(id: &str, e: &herald::ops::DeadLetter) -> Value {
    let mut v = serde_json::to_value(e).expect("dead letters serialize");
    v["id"] = json!(id);
    v
}

async fn failed(q: &QueueOps, action: FailedAction) -> Result<i32> {
    match action {
        FailedAction::List {
            limit,
            offset,
            after,
            filter,
            json,
        } => {
            let after = after
                .map(|a| a.parse::<Cursor>())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let filter = filter.filter();
            // --offset skips matches: read pages until that many more are in, then drop them.
            let (mut all, mut next, mut after) = (Vec::new(), None, after);
            while all.len() < offset + limit {
                let page = q
                    .failed_page(&filter, after, offset + limit - all.len())
                    .await?;
                all.extend(page.entries);
                next = page.next;
                match next.as_deref().map(str::parse::<Cursor>) {
                    Some(Ok(c)) => after = Some(c),
                    _ => break,
                }
            }
            let entries: Vec<_> = all.iter().skip(offset).take(limit).collect();
            if json {
                let v: Vec<Value> = entries.iter().map(|(id, e)| entry_json(id, e)).collect();
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
                if let Some(next) = next {
                    eprintln!("more: --after {next}");
                }
            }
            Ok(0)
        }
        FailedAction::Show { id } => match q.failed_get(&id).await? {
            Some(e) => {
                println!("{}", serde_json::to_string_pretty(&entry_json(&id, &e))?);
                Ok(0)
            }
            None => bail!("no dead letter {id:?} in {}", q.name()),
        },
        FailedAction::Retry { ids, all, filter } => {
            let filter = filter.filter();
            let selection = if all || filter != Filter::default() {
                Selection::Matching(filter)
            } else if ids.is_empty() {
                bail!(
                    "name dead-letter ids to retry, or --all, or a filter (--reason, --delivery, --event, --since, --until)"
                );
            } else {
                Selection::Ids(ids)
            };
            report(q.retry(&Actor::cli(), &selection).await?, "retried")
        }
        FailedAction::Forget {
            ids,
            matching,
            filter,
        } => {
            let filter = filter.filter();
            let selection = if matching {
                if filter == Filter::default() {
                    bail!(
                        "--matching needs a filter (to delete every dead letter, use `failed flush`)"
                    );
                }
                Selection::Matching(filter)
            } else if ids.is_empty() {
                bail!("name dead-letter ids to forget, or --matching with a filter");
            } else {
                Selection::Ids(ids)
            };
            report(q.forget(&Actor::cli(), &selection).await?, "forgot")
        }
        FailedAction::Flush => {
            let n = q.flush(&Actor::cli()).await?;
            println!("flushed {n} dead letter(s) from {}", q.name());
            Ok(0)
        }
    }
}

/// Prints what a retry or forget did; exit code 1 when some named id was not there.
fn report(done: herald::ops::Done, verb: &str) -> Result<i32> {
    for id in &done.done {
        println!("{verb} {id}");
    }
    for id in &done.missing {
        eprintln!("no dead letter {id:?}");
    }
    Ok(if done.missing.is_empty() { 0 } else { 1 })
}
