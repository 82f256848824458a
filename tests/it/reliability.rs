use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use herald::delivery::DeliveryResult;
use herald::listeners::{Event, Listener};
use serde_json::Value;

use crate::support::Recorder;
use crate::support::herald::{Binary, Running, config};
use crate::support::keys;
use crate::support::queue;
use crate::support::subscriber::Subscriber;
use herald_testkit::RedisServer;

/// `n` envelopes with ids `e0..`, pushed in order.
async fn preload(redis: &RedisServer, n: usize) {
    let all: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id":"e{i}","event":"E","channels":["c.{}"],"data":{{"i":{i}}}}}"#,
                i % 10
            )
        })
        .collect();
    crate::support::push(redis, &all).await;
}

fn id_of(payload: &str) -> u64 {
    let v: Value = serde_json::from_str(payload).unwrap();
    v["data"]["i"].as_u64().unwrap()
}

/// A config file for the binary, with fast liveness so a second process reaps the first quickly.
fn config_file(dir: &std::path::Path, redis: &RedisServer, worker: &str) -> String {
    let path = dir.join("herald.toml");
    std::fs::write(
        &path,
        format!(
            "[redis]\nurl = \"{}\"\n[worker]\nheartbeat_interval = \"100ms\"\nprocess_timeout = \"1s\"\npromote_interval = \"50ms\"\nblock_timeout = \"200ms\"\n{worker}\n[metrics]\naddr = \"\"\n",
            redis.url()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Every id in the processing lists right now (what a killed process held).
async fn in_flight_ids(redis: &RedisServer) -> HashSet<u64> {
    let mut c = redis.conn().await;
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
        ids.extend(items.iter().map(|s| id_of(s)));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_loses_nothing_and_duplicates_only_the_killed_batches() {
    const N: usize = 20_000;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), &redis, "concurrency = 4\nbatch_size = 100");
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    preload(&redis, N).await;

    // Kill when the backlog falls below a random mark: a random moment of the run.
    let mark = 2_000 + fastrand::i64(0..16_000);
    let mut first = Binary::spawn(&["run", "--config", &cfg], &[]);
    let mut c = redis.conn().await;
    crate::support::eventually("the run to reach the kill mark", || {
        let mut c = c.clone();
        async move {
            let waiting: i64 = ::redis::cmd("LLEN")
                .arg(keys::QUEUE)
                .query_async(&mut c)
                .await
                .unwrap();
            (waiting <= mark).then_some(())
        }
    })
    .await;
    first.kill9();
    // What the dead process held: the only envelopes allowed to arrive twice.
    let held = in_flight_ids(&redis).await;
    let waiting: i64 = ::redis::cmd("LLEN")
        .arg(keys::QUEUE)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        waiting > 0 || !held.is_empty(),
        "the kill came after the run finished; nothing was tested"
    );
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for (_, p) in sub.rest().await {
        *seen.entry(id_of(&p)).or_default() += 1;
    }

    let _second = Binary::spawn(&["run", "--config", &cfg], &[]);
    while seen.len() < N {
        for (_, p) in sub.take(1).await {
            *seen.entry(id_of(&p)).or_default() += 1;
        }
    }
    let dups: Vec<u64> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    for id in &dups {
        assert!(
            held.contains(id),
            "e{id} was delivered twice but was not in a killed batch"
        );
    }
    assert!(seen.values().all(|n| *n <= 2));
    assert!(
        held.len() <= 4 * 100,
        "at most one batch per task was in flight"
    );
    // Nothing left anywhere once the second process has caught up.
    let q = queue(&redis);
    crate::support::settled(&q).await;
    assert!(q.failed_list(0, 1).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_exits_0_loses_nothing_and_leaves_no_processing_list() {
    const N: usize = 20_000;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        dir.path(),
        &redis,
        "concurrency = 4\nshutdown_timeout = \"20s\"",
    );
    let mut sub = Subscriber::psubscribe(&redis, "*").await;
    preload(&redis, N).await;

    let run = Binary::spawn(&["run", "--config", &cfg], &[]);
    let mut seen: HashSet<u64> = sub
        .take(1_000 + fastrand::usize(..8_000))
        .await
        .iter()
        .map(|(_, p)| id_of(p))
        .collect();
    run.signal("TERM");
    let (status, stderr) = run.wait().await;
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(
        !stderr.contains("Shutdown timeout reached"),
        "drain hit the timeout: {stderr}"
    );

    // Everything published before exit: read up to a barrier.
    let mut c = redis.conn().await;
    let mut received = seen.len();
    for (_, p) in sub.rest().await {
        seen.insert(id_of(&p));
        received += 1;
    }
    assert_eq!(
        received,
        seen.len(),
        "a clean shutdown delivers nothing twice"
    );
    let waiting: Vec<String> = ::redis::cmd("LRANGE")
        .arg(keys::QUEUE)
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    let left: HashSet<u64> = waiting.iter().map(|s| id_of(s)).collect();
    assert!(seen.is_disjoint(&left));
    assert_eq!(
        seen.len() + left.len(),
        N,
        "every envelope is either delivered or back in the queue"
    );
    let lists: Vec<String> = ::redis::cmd("KEYS")
        .arg("*processing*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(lists.is_empty(), "processing lists left: {lists:?}");
    let workers: i64 = ::redis::cmd("SCARD")
        .arg(keys::WORKERS)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(workers, 0);
    let live: i64 = ::redis::cmd("ZCARD")
        .arg(keys::PROCESSES)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(live, 0, "a clean exit deregisters the process");
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
    let order: Vec<u64> = items.iter().rev().map(|s| id_of(s)).collect();
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
