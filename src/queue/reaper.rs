//! Liveness and recovery: process heartbeats and the reaper.
//!
//! Owns: `herald:processes` (live process ids scored by last heartbeat), each process's info
//! hash, registering processing lists in their queue's `…:workers` set, and returning the
//! processing lists of processes that stopped heartbeating. Every function here is one tick; the
//! loop that calls them lives in `worker`. Does not own: promoting due retries
//! ([`Queue::promote`](super::Queue::promote)).
//!
//! **Invariant:** reaping is safe in every replica at once. Each queue's return is one script;
//! a second reaper finds the lists already empty. A process wrongly presumed dead (paused longer
//! than `process_timeout`) only causes duplicates: its settle finds its processing list gone
//! and applies nothing (see settle.lua), and its next heartbeat registers it again.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::{Cmd, Value};

use super::{GlobalKeys, NO_QUEUE, Queue, QueueError, Redis, Spread};

/// This process, as other processes and `herald stats` see it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ProcessInfo {
    pub(crate) id: String,
    pub(crate) hostname: String,
    pub(crate) pid: u32,
    pub(crate) queues: Vec<String>,
    pub(crate) concurrency: usize,
    pub(crate) started_at: u64,
    pub(crate) version: String,
}

/// A process id unique across hosts and restarts: `<host>:<pid>:<random>`.
pub(crate) fn new_process_id() -> String {
    format!(
        "{}:{}:{:08x}",
        hostname(),
        std::process::id(),
        fastrand::u32(..)
    )
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
        .replace(':', "-")
}

/// Records that `info` is alive at `now_ms` and (re)registers its processing lists, so a process
/// that was presumed dead and reaped becomes reapable again. `paused` lists the queues whose
/// tasks all stopped for a pause (comma-separated).
pub(crate) async fn heartbeat(
    redis: &Redis,
    global: &GlobalKeys,
    info: &ProcessInfo,
    paused: &str,
    processing: &[(&Queue, Vec<String>)],
    now_ms: u64,
    ttl: Duration,
) -> Result<(), QueueError> {
    let info_key = global.process_info(&info.id);
    let mut process = Spread::default();
    process.add(Cmd::zadd(&global.processes, &info.id, now_ms));
    process.add(Cmd::hset_multiple(
        &info_key,
        &[
            ("hostname", info.hostname.clone()),
            ("pid", info.pid.to_string()),
            ("queues", info.queues.join(",")),
            ("concurrency", info.concurrency.to_string()),
            ("started_at", info.started_at.to_string()),
            ("version", info.version.clone()),
            ("beat", now_ms.to_string()),
            ("paused", paused.to_string()),
        ],
    ));
    process.add(Cmd::pexpire(&info_key, ttl.as_millis() as i64));
    redis
        .run_spread::<Value>(NO_QUEUE, "heartbeat", &process)
        .await?;
    // The lists after their process is known: on a cluster they are other slots' keys, and a
    // list registered for a process no reaper knows would never be returned.
    let mut lists = Spread::default();
    for (queue, held) in processing {
        if !held.is_empty() {
            lists.add(Cmd::sadd(&queue.keys.workers, held));
        }
    }
    redis
        .run_spread::<Value>(NO_QUEUE, "heartbeat", &lists)
        .await?;
    Ok(())
}

/// What one reap did.
#[derive(Debug, Default)]
pub(crate) struct Reaped {
    /// Processes found dead and removed.
    pub(crate) processes: Vec<String>,
    /// Envelopes returned to each queue (list key → count).
    pub(crate) returned: BTreeMap<String, u64>,
}

/// Returns the processing lists of every process silent for longer than `timeout` to their
/// queues (counting a redelivery in each envelope), then forgets those processes.
pub(crate) async fn reap(
    redis: &Redis,
    global: &GlobalKeys,
    queues: &[Queue],
    timeout: Duration,
    now_ms: u64,
) -> Result<Reaped, QueueError> {
    let cutoff = now_ms.saturating_sub(timeout.as_millis() as u64);
    let mut silent = redis::cmd("ZRANGEBYSCORE");
    silent
        .arg(&global.processes)
        .arg("-inf")
        .arg(format!("({cutoff}"));
    let dead: Vec<String> = redis.run(NO_QUEUE, "reap", &silent).await?;
    let mut reaped = Reaped::default();
    for queue in queues {
        let orphans = orphaned_lists(queue, &dead).await?;
        let n = queue.requeue(&orphans, true).await?;
        if n > 0 {
            reaped.returned.insert(queue.keys.name.clone(), n);
        }
    }
    if !dead.is_empty() {
        let mut forget = Spread::default();
        forget.add(Cmd::zrem(&global.processes, &dead));
        for id in &dead {
            forget.add(Cmd::del(global.process_info(id)));
        }
        redis.run_spread::<Value>(NO_QUEUE, "reap", &forget).await?;
    }
    reaped.processes = dead;
    Ok(reaped)
}

/// Processing lists of `queue` whose process is in `dead`. Lists are registered in the same
/// pipeline as the heartbeat that makes their process known, and a clean shutdown deregisters
/// its process only after its lists were returned, so every list has a process to time out.
async fn orphaned_lists(queue: &Queue, dead: &[String]) -> Result<Vec<String>, QueueError> {
    let lists = queue.processing_lists().await?;
    if lists.is_empty() {
        return Ok(lists);
    }
    Ok(lists
        .into_iter()
        .filter(|l| {
            queue
                .keys
                .process_of(l)
                .is_some_and(|p| dead.iter().any(|d| d == p))
        })
        .collect())
}

/// Removes this process from the live set after a clean shutdown.
pub(crate) async fn deregister(
    redis: &Redis,
    global: &GlobalKeys,
    id: &str,
) -> Result<(), QueueError> {
    let mut forget = Spread::default();
    forget.add(Cmd::zrem(&global.processes, id));
    forget.add(Cmd::del(global.process_info(id)));
    redis
        .run_spread::<Value>(NO_QUEUE, "deregister", &forget)
        .await?;
    Ok(())
}

/// How many processes heartbeated within `timeout` of `now_ms` (one command).
pub(crate) async fn count_live(
    redis: &Redis,
    global: &GlobalKeys,
    timeout: Duration,
    now_ms: u64,
) -> Result<usize, QueueError> {
    let mut cmd = redis::cmd("ZCOUNT");
    cmd.arg(&global.processes)
        .arg(now_ms.saturating_sub(timeout.as_millis() as u64))
        .arg("+inf");
    redis.run(NO_QUEUE, "processes", &cmd).await
}

/// Live processes with their last heartbeat (ms) and what they report, newest first.
pub(crate) async fn live_processes(
    redis: &Redis,
    global: &GlobalKeys,
) -> Result<Vec<(String, u64, BTreeMap<String, String>)>, QueueError> {
    let mut range = redis::cmd("ZREVRANGE");
    range
        .arg(&global.processes)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES");
    let ids: Vec<(String, f64)> = redis.run(NO_QUEUE, "processes", &range).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut read = Spread::default();
    for (id, _) in &ids {
        read.add(Cmd::hgetall(global.process_info(id)));
    }
    let infos: Vec<BTreeMap<String, String>> =
        redis.run_spread(NO_QUEUE, "processes", &read).await?;
    Ok(ids
        .into_iter()
        .zip(infos)
        .map(|((id, beat), info)| (id, beat as u64, info))
        .collect())
}
