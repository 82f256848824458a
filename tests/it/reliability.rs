//! What a herald process's death or shutdown costs: kill -9 and SIGTERM mid-run (on one
//! `redis-server` and on a Redis Cluster), two processes on one queue, poison messages, the
//! shutdown timeout, a Redis restart. Not failures of Redis itself on a cluster or behind
//! Sentinel (`cluster`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use herald::delivery::DeliveryResult;
use herald::listeners::{Event, Listener};
use herald_testkit::{RedisServer, WebhookFake};

use crate::support::Recorder;
use crate::support::deployment::Deployment;
use crate::support::events::{calls_per_id, delivered_all, envelopes, id_of};
use crate::support::herald::{Binary, Running, config, config_file};
use crate::support::keys;
use crate::support::queue;
use crate::support::subscriber::Subscriber;

/// `n` envelopes with ids `e0..`, pushed in order.
async fn preload(redis: &RedisServer, n: usize) {
    crate::support::push(redis, &envelopes(0, n)).await;
}

/// Every id in the processing lists right now (what a killed process held).
async fn in_flight_ids(d: &Deployment) -> HashSet<u64> {
    let mut c = d.conn_for(keys::WORKERS).await;
    let lists: Vec<String> = ::redis::cmd("SMEMBERS")
        .arg(keys::WORKERS)
        .query_async(&mut c)
        .await
        .unwrap();
    let mut ids = HashSet::new();
    for l in lists {
        let items: Vec<String> = ::redis::cmd("LRANGE")
            .arg(&l)
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await
            .unwrap();
        ids.extend(items.iter().map(id_of));
    }
    ids
}

/// `herald run` on `d`, its `E` events sent to `hook`, with `worker` settings; the file is in
/// `dir`.
fn binary_config(
    d: &Deployment,
    dir: &tempfile::TempDir,
    hook: &WebhookFake,
    worker: &str,
) -> String {
    let queues = [keys::QUEUE.to_string()];
    config_file(dir.path(), &d.section(), &queues, hook, worker)
}

/// `<cmd> key` (a size: `SCARD`, `ZCARD`) on the node serving `key`.
async fn size(d: &Deployment, cmd: &str, key: &str) -> i64 {
    ::redis::cmd(cmd)
        .arg(key)
        .query_async(&mut d.conn_for(key).await)
        .await
        .unwrap()
}

/// How many envelopes wait in `herald:default`, on `c` (a connection to its node).
async fn waiting(c: &mut ::redis::aio::MultiplexedConnection) -> i64 {
    ::redis::cmd("LLEN")
        .arg(keys::QUEUE)
        .query_async(c)
        .await
        .unwrap()
}

/// One process killed with SIGKILL at a random moment of a run of `n`, a second one started
/// after: every event delivered, only what the dead one held delivered twice, nothing left.
async fn kill_9_mid_run(d: Deployment, n: usize) {
    const TASKS: usize = 4;
    const BATCH: usize = 100;
    let hook = WebhookFake::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = format!("concurrency = {TASKS}\nbatch_size = {BATCH}");
    let cfg = binary_config(&d, &dir, &hook, &worker);
    d.push(&envelopes(0, n)).await;

    // Kill when the backlog falls below a random mark: a random moment of the run.
    let mark = (n / 10 + fastrand::usize(..n * 8 / 10)) as i64;
    let mut first = Binary::spawn(&["run", "--config", &cfg], &[]);
    let mut c = d.conn_for(keys::QUEUE).await;
    crate::support::eventually("the run to reach the kill mark", || {
        let mut c = c.clone();
        async move { (waiting(&mut c).await <= mark).then_some(()) }
    })
    .await;
    first.kill9();
    // What the dead process held: the only envelopes allowed to arrive twice.
    let held = in_flight_ids(&d).await;
    assert!(
        waiting(&mut c).await > 0 || !held.is_empty(),
        "the kill came after the run finished; nothing was tested"
    );
    assert!(
        held.len() <= TASKS * BATCH,
        "at most one batch per task was in flight"
    );

    let _second = Binary::spawn(&["run", "--config", &cfg], &[]);
    delivered_all(&hook, n).await;
    // Nothing left anywhere once the second process has caught up; then every call is in.
    crate::support::settled_and_clean(&d.queue()).await;
    let seen = calls_per_id(&hook);
    assert_eq!(seen.len(), n);
    for (id, calls) in &seen {
        assert!(
            *calls == 1 || held.contains(id),
            "e{id} was delivered {calls} times but was not in a killed batch"
        );
        assert!(*calls <= 2, "e{id} was delivered {calls} times");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_loses_nothing_and_duplicates_only_the_killed_batches() {
    kill_9_mid_run(Deployment::standalone(), 20_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_on_a_cluster_loses_nothing_and_duplicates_only_the_killed_batches() {
    kill_9_mid_run(Deployment::cluster(), 5_000).await;
}

/// SIGTERM at a random moment of a run of `n`: exit 0 after the drain, every event either
/// delivered once or back in the queue, no processing list, worker set or process left.
async fn sigterm_mid_run(d: Deployment, n: usize) {
    let hook = WebhookFake::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = binary_config(&d, &dir, &hook, "concurrency = 4");
    d.push(&envelopes(0, n)).await;

    let run = Binary::spawn(&["run", "--config", &cfg], &[]);
    hook.wait_for(n / 20 + fastrand::usize(..n * 4 / 10)).await;
    run.signal("TERM");
    let (status, stderr) = run.wait().await;
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(
        !stderr.contains("Shutdown timeout reached"),
        "drain hit the timeout: {stderr}"
    );

    // herald settles a batch only once its webhook calls were answered, so every call is in.
    let seen = calls_per_id(&hook);
    assert!(
        seen.values().all(|c| *c == 1),
        "a clean shutdown delivers nothing twice"
    );
    let mut c = d.conn_for(keys::QUEUE).await;
    let waiting: Vec<String> = ::redis::cmd("LRANGE")
        .arg(keys::QUEUE)
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    let left: HashSet<u64> = waiting.iter().map(id_of).collect();
    assert!(seen.keys().all(|id| !left.contains(id)));
    assert_eq!(
        seen.len() + left.len(),
        n,
        "every envelope is either delivered or back in the queue"
    );
    let lists = d.keys("*processing*").await;
    assert!(lists.is_empty(), "processing lists left: {lists:?}");
    assert_eq!(size(&d, "SCARD", keys::WORKERS).await, 0);
    assert_eq!(
        size(&d, "ZCARD", keys::PROCESSES).await,
        0,
        "a clean exit deregisters the process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_exits_0_loses_nothing_and_leaves_no_processing_list() {
    sigterm_mid_run(Deployment::standalone(), 20_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_on_a_cluster_exits_0_loses_nothing_and_leaves_no_processing_list() {
    sigterm_mid_run(Deployment::cluster(), 5_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_queue_process_each_event_once() {
    const N: usize = 5_000;
    let redis = RedisServer::start();
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let a = Running::start(config(&redis, "concurrency = 2\nbatch_size = 20", "")).await;
    let b = Running::start(config(&redis, "concurrency = 2\nbatch_size = 20", "")).await;
    preload(&redis, N).await;
    let got = sub.take(N).await;
    let ids: HashSet<u64> = got.iter().map(|(_, p)| id_of(p)).collect();
    assert_eq!(ids.len(), N, "each event exactly once");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    assert!(sub.rest().await.is_empty(), "an event delivered twice");
}

/// A listener that panics on one event: the task dies with the batch in its processing list.
struct Crashes {
    calls: AtomicU32,
}

impl Listener for Crashes {
    fn handle<'a>(&'a self, event: &'a Event<'a>) -> BoxFuture<'a, DeliveryResult> {
        Box::pin(async move {
            if event.data.get().contains("poison") {
                self.calls.fetch_add(1, Ordering::SeqCst);
                panic!("this event kills the worker");
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_kills_workers_is_dead_lettered_after_max_attempts() {
    let redis = RedisServer::start();
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    let crashes = Arc::new(Crashes {
        calls: AtomicU32::new(0),
    });
    let herald = herald::Herald::new(config(
        &redis,
        "concurrency = 1\nbatch_size = 1",
        "[retry]\nmax_attempts = 3\n[events.E]\nlisteners = [\"crashes\"]\n",
    ))
    .with_listener("crashes", crashes.clone());
    let running = Running::start_herald(herald).await;
    let mut c = redis.conn().await;
    let _: () = ::redis::cmd("LPUSH")
        .arg(keys::QUEUE)
        .arg(r#"{"id":"p1","event":"E","channels":["c"],"data":{"poison":true}}"#)
        .arg(r#"{"id":"ok","event":"E","channels":["after"],"data":{}}"#)
        .query_async(&mut c)
        .await
        .unwrap();
    let (channel, _) = sub.take(1).await.remove(0);
    assert_eq!(
        channel, "after",
        "the worker kept serving after the poison message"
    );
    let q = queue(&redis);
    let dead = crate::support::eventually("the poison dead letter", || async {
        q.failed_get("p1").await.unwrap()
    })
    .await;
    assert_eq!(dead.code, "redelivered_too_often");
    assert_eq!(dead.attempts, 3);
    assert_eq!(
        crashes.calls.load(Ordering::SeqCst),
        3,
        "run max_attempts times, then no more"
    );
    running.stop().await.unwrap();
}

/// A listener that takes longer than the shutdown timeout.
struct Slow;

impl Listener for Slow {
    fn handle<'a>(&'a self, _: &'a Event<'a>) -> BoxFuture<'a, DeliveryResult> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_unfinished_at_the_shutdown_timeout_goes_back_to_the_queue() {
    let redis = RedisServer::start();
    let mut cfg = config(
        &redis,
        "concurrency = 1",
        "[events.E]\nlisteners = [\"slow\"]\n",
    );
    cfg.worker.shutdown_timeout = Duration::from_millis(300);
    // Pushed before the worker starts, so its first reserve takes all five as one batch (an
    // idle worker woken by a push takes just the envelope that woke it).
    preload(&redis, 5).await;
    let running =
        Running::start_herald(herald::Herald::new(cfg).with_listener("slow", Arc::new(Slow))).await;
    let q = queue(&redis);
    crate::support::eventually("the batch to be reserved", || async {
        let s = q.stats().await.unwrap();
        (s.processing == 5).then_some(())
    })
    .await;
    running.stop().await.unwrap();
    let s = q.stats().await.unwrap();
    assert_eq!((s.waiting, s.processing), (5, 0));
    // In their original order, with no redelivery counted (a clean shutdown is not a crash).
    let mut c = redis.conn().await;
    let items: Vec<String> = ::redis::cmd("LRANGE")
        .arg(keys::QUEUE)
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    let order: Vec<u64> = items.iter().rev().map(id_of).collect();
    assert_eq!(order, [0, 1, 2, 3, 4]);
    assert!(items.iter().all(|s| !s.contains("attempts")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_aof_mid_run_loses_nothing() {
    const N: usize = 20_000;
    let mut redis = RedisServer::start_with_aof();
    let recorder = Arc::new(Recorder::default());
    let cfg = config(
        &redis,
        "concurrency = 2\nbatch_size = 10",
        "[events.E]\nlisteners = [\"rec\"]\nconnections = []\n",
    );
    preload(&redis, N).await;
    let running =
        Running::start_herald(herald::Herald::new(cfg).with_listener("rec", recorder.clone()))
            .await;
    crate::support::eventually("a part of the run to be handled", || async {
        (recorder.ids.lock().unwrap().len() >= 500).then_some(())
    })
    .await;
    let mut c = redis.conn().await;
    let waiting: i64 = ::redis::cmd("LLEN")
        .arg(keys::QUEUE)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        waiting > 0,
        "the run ended before the restart; nothing would be tested"
    );
    redis.restart();
    let q = queue(&redis);
    crate::support::eventually("every event handled after the restart", || async {
        let done = recorder.ids.lock().unwrap().len() == N;
        let s = q.stats().await.ok()?;
        (done && s.waiting == 0 && s.processing == 0 && s.delayed == 0).then_some(())
    })
    .await;
    running.stop().await.unwrap();
    assert!(q.failed_list(0, 1).await.unwrap().is_empty());
    let ids = recorder.ids.lock().unwrap();
    assert!((0..N as u64).all(|i| ids.contains_key(&i)));
}
