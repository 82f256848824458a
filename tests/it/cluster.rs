//! herald on a real Redis Cluster (6 nodes: 3 masters, 3 replicas) and behind real sentinels:
//! a master killed mid-run, a busy queue's slot migrated mid-run, a Sentinel failover, and the
//! kill -9, SIGTERM and bad-input checks once in cluster mode.
//!
//! Producers here do what the README tells a producer on a replicated Redis to do: `WAIT` for a
//! replica after each `LPUSH`, so a failover cannot undo a push. What herald moved and settled
//! but a replica had not yet received comes back after a failover and is delivered again: at
//! least once, never lost.
//!
//! Delivery is checked at a webhook listener, which acknowledges each call. Redis pub/sub
//! itself is fire-and-forget: a `PUBLISH` a dying node answered but had not yet relayed over
//! the cluster bus is gone for subscribers on other nodes, whatever the publisher does; the
//! subscriber here may miss at most what was in flight at the kill.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use herald::Config;
use herald::ops::{Ops, QueueOps};
use herald_testkit::{RedisCluster, RedisSentinel, WebhookFake};
use serde_json::Value;

use crate::support::herald::Binary;
use crate::support::{eventually, guard};

/// Envelopes `e{from}..e{to}` for `queue`, each `{"i": n}` on channel `c.{n % 10}`.
fn envelopes(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| {
            format!(
                r#"{{"id":"e{i}","event":"E","channels":["c.{}"],"data":{{"i":{i}}}}}"#,
                i % 10
            )
        })
        .collect()
}

/// Pushes onto `queue` on the node at `port` in chunks, each followed by `WAIT 1`: a replica
/// holds every push before the next, as the README asks of producers on a replicated Redis.
async fn push_replicated(port: u16, queue: &str, all: &[String]) {
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for chunk in all.chunks(500) {
        let (_, acked): (i64, i64) = ::redis::pipe()
            .cmd("LPUSH")
            .arg(queue)
            .arg(chunk)
            .cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(acked, 1, "a replica acknowledged the push");
    }
}

fn id_of(json: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(json).unwrap();
    v["data"]["i"].as_u64().unwrap()
}

/// Waits until the webhook saw every id in `0..n` at least once; returns calls per id.
async fn delivered_all(hook: &WebhookFake, n: usize) -> HashMap<u64, u32> {
    let mut calls = 0;
    loop {
        let reqs = hook.wait_for(calls + 1).await;
        calls = reqs.len();
        let mut seen: HashMap<u64, u32> = HashMap::new();
        for r in &reqs {
            *seen.entry(id_of(&r.body)).or_default() += 1;
        }
        if seen.len() >= n {
            assert!(seen.keys().all(|i| (*i as usize) < n));
            return seen;
        }
    }
}

/// How many distinct ids the webhook has seen so far.
fn distinct(hook: &WebhookFake) -> usize {
    let ids: HashSet<u64> = hook.requests().iter().map(|r| id_of(&r.body)).collect();
    ids.len()
}

/// A herald config file for `redis` (a `[redis]` section) serving `queues`, with fast liveness
/// and every `E` event sent to the webhook.
fn config_file(
    dir: &Path,
    redis: &str,
    queues: &[String],
    hook: &WebhookFake,
    worker: &str,
) -> String {
    let queues: Vec<String> = queues.iter().map(|q| format!("{q:?}")).collect();
    let text = format!(
        "{redis}\n[worker]\nqueues = [{}]\nheartbeat_interval = \"100ms\"\nprocess_timeout = \"1s\"\npromote_interval = \"50ms\"\nblock_timeout = \"200ms\"\nshutdown_timeout = \"20s\"\n{worker}\n[metrics]\naddr = \"\"\n[retry]\ndelays = [\"50ms\"]\nmax_attempts = 50\n[listeners.hook]\ntype = \"webhook\"\nurl = \"{}\"\n[events.E]\nlisteners = [\"hook\"]\n",
        queues.join(", "),
        hook.url(),
    );
    let path = dir.join("herald.toml");
    std::fs::write(&path, &text).unwrap();
    path.display().to_string()
}

fn cluster_section(cluster: &RedisCluster) -> String {
    let nodes: Vec<String> = cluster
        .seed_urls()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    format!(
        "[redis]\nmode = \"cluster\"\nnodes = [{}]",
        nodes.join(", ")
    )
}

/// herald's own operations API on the config file at `path`: what `herald stats` and
/// `herald failed …` use, here in cluster or sentinel mode.
fn ops(path: &str) -> Ops {
    let text = std::fs::read_to_string(path).unwrap();
    let config = Config::parse(&text, path, &|_| None).unwrap();
    Ops::new(&config).unwrap()
}

/// Every queue settled (nothing waiting, reserved or delayed) and no dead letters.
async fn all_settled(ops: &Ops) {
    for q in ops.queues() {
        settled_and_clean(&q).await;
    }
}

async fn settled_and_clean(q: &QueueOps) {
    eventually("the queue to settle", || async {
        let s = q.stats().await.ok()?;
        (s.waiting == 0 && s.processing == 0 && s.delayed == 0).then_some(())
    })
    .await;
    let failed = q.failed_list(0, 10).await.unwrap();
    assert!(
        failed.is_empty(),
        "dead letters on {}: {failed:?}",
        q.name()
    );
}

fn still_running(b: &mut Binary) {
    let exited = b.child.try_wait().unwrap();
    assert!(
        exited.is_none(),
        "herald exited: {exited:?}\n{}",
        b.stderr()
    );
}

/// A `PSUBSCRIBE *` client on the node at `port`, counting distinct event ids.
struct Sub {
    seen: std::sync::Arc<std::sync::Mutex<HashSet<u64>>>,
}

impl Sub {
    async fn start(port: u16) -> Sub {
        use futures::StreamExt;
        let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.psubscribe("*").await.unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
        let s = seen.clone();
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(m) = stream.next().await {
                s.lock().unwrap().insert(id_of(m.get_payload_bytes()));
            }
        });
        Sub { seen }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_killed_mid_run_loses_nothing_and_both_processes_carry_on() {
    const PER_QUEUE: usize = 10_000;
    let cluster = RedisCluster::start();
    let queues = cluster.keys_on_distinct_masters("q", 3);
    let hook = WebhookFake::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        dir.path(),
        &cluster_section(&cluster),
        &queues,
        &hook,
        "concurrency = 2\nbatch_size = 50",
    );
    let victim = cluster.master_of_key(&queues[0]);
    let sub = Sub::start(cluster.master_of_key(&queues[1])).await;
    for (k, q) in queues.iter().enumerate() {
        let all = envelopes(k * PER_QUEUE, (k + 1) * PER_QUEUE);
        push_replicated(cluster.master_of_key(q), q, &all).await;
    }
    let n = 3 * PER_QUEUE;

    let mut first = Binary::spawn(&["run", "--config", &cfg], &[]);
    let mut second = Binary::spawn(&["run", "--config", &cfg], &[]);
    // Kill when a random share of the run is done.
    let mark = 2_000 + fastrand::usize(..(n / 2));
    eventually("the run to reach the kill mark", || async {
        (distinct(&hook) >= mark).then_some(())
    })
    .await;
    tokio::task::block_in_place(|| cluster.kill_master(victim));
    let at_kill = distinct(&hook);
    assert!(at_kill < n, "the kill came after the run finished");
    tokio::task::block_in_place(|| cluster.wait_failover(victim));

    let seen = delivered_all(&hook, n).await;
    assert_eq!(seen.len(), n, "every event reached the webhook");
    all_settled(&ops(&cfg)).await;
    still_running(&mut first);
    still_running(&mut second);
    let missed = n - sub.count();
    assert!(
        missed <= 2 * 3 * 2 * 50,
        "the subscriber missed {missed} events, more than were in flight at the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_queues_slot_migrated_mid_run_is_followed_and_loses_nothing() {
    const N: usize = 20_000;
    let cluster = RedisCluster::start();
    let queue = cluster.keys_on_distinct_masters("busy", 1).remove(0);
    let hook = WebhookFake::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        dir.path(),
        &cluster_section(&cluster),
        std::slice::from_ref(&queue),
        &hook,
        "concurrency = 4\nbatch_size = 20",
    );
    let from = cluster.master_of_key(&queue);
    let to = *cluster.masters().iter().find(|m| **m != from).unwrap();
    push_replicated(from, &queue, &envelopes(0, N / 2)).await;

    let mut run = Binary::spawn(&["run", "--config", &cfg], &[]);
    eventually("the run to start", || async {
        (distinct(&hook) >= 1_000).then_some(())
    })
    .await;
    // The producer keeps pushing while the slot moves: a busy queue.
    let q = queue.clone();
    let producer = tokio::spawn(async move {
        let client =
            ::redis::cluster::ClusterClient::new(vec![format!("redis://127.0.0.1:{from}")])
                .unwrap();
        let mut c = client.get_async_connection().await.unwrap();
        for chunk in envelopes(N / 2, N).chunks(100) {
            let _: i64 = ::redis::cmd("LPUSH")
                .arg(&q)
                .arg(chunk)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    });
    let slot = cluster.keyslot(&queue);
    tokio::task::block_in_place(|| cluster.migrate_slot(slot, to));
    assert_eq!(cluster.master_of_key(&queue), to, "the slot moved");
    guard("the producer", producer).await.unwrap();

    let seen = delivered_all(&hook, N).await;
    assert_eq!(seen.len(), N);
    all_settled(&ops(&cfg)).await;
    still_running(&mut run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_mid_run_is_followed_and_loses_nothing() {
    const N: usize = 20_000;
    let sentinel = RedisSentinel::start("herald-primary");
    let hook = WebhookFake::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<String> = sentinel
        .sentinel_urls()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    let section = format!(
        "[redis]\nmode = \"sentinel\"\nnodes = [{}]\nmaster_name = \"herald-primary\"",
        nodes.join(", ")
    );
    let queues = vec!["herald:default".to_string()];
    let cfg = config_file(
        dir.path(),
        &section,
        &queues,
        &hook,
        "concurrency = 2\nbatch_size = 50",
    );
    let old = sentinel.primary_port();
    push_replicated(old, &queues[0], &envelopes(0, N)).await;

    let mut first = Binary::spawn(&["run", "--config", &cfg], &[]);
    let mut second = Binary::spawn(&["run", "--config", &cfg], &[]);
    let mark = 2_000 + fastrand::usize(..(N / 2));
    eventually("the run to reach the kill mark", || async {
        (distinct(&hook) >= mark).then_some(())
    })
    .await;
    tokio::task::block_in_place(|| sentinel.kill_primary());
    assert!(distinct(&hook) < N, "the kill came after the run finished");
    tokio::task::block_in_place(|| sentinel.wait_failover(old));

    let seen = delivered_all(&hook, N).await;
    assert_eq!(seen.len(), N);
    all_settled(&ops(&cfg)).await;
    still_running(&mut first);
    still_running(&mut second);
}

/// What an operator runs works on a password-protected cluster, configured by environment only
/// (`REDIS_MODE`, `REDIS_NODES` without credentials, `REDIS_PASSWORD`): `check-config --ping`,
/// `migrate`, `enqueue`, `run` delivering, `stats`, and bad input dead-lettered with its reason
/// and listed by `failed list`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_and_bad_input_work_on_a_password_protected_cluster() {
    use crate::support::herald::cli;
    let cluster = RedisCluster::start_with_password("s3cret-pw");
    let queue = cluster.keys_on_distinct_masters("ops", 1).remove(0);
    let nodes: Vec<String> = cluster
        .ports()
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    let env = [
        ("REDIS_MODE", "cluster".to_string()),
        ("REDIS_NODES", nodes.join(",")),
        ("REDIS_PASSWORD", "s3cret-pw".to_string()),
        ("HERALD_QUEUE", queue.clone()),
        ("HERALD_METRICS_ADDR", String::new()),
    ];
    let (code, out, err) = cli(&["check-config", "--ping"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("reachable"), "{out}");
    assert!(!out.contains("s3cret-pw") && !err.contains("s3cret-pw"));
    let (code, out, err) = cli(&["migrate"], &env);
    assert_eq!(code, 0, "{out}{err}");

    // A wrong password is a clear failure, not a hang.
    let mut wrong = env.clone();
    wrong[2].1 = "nope".into();
    let (code, out, err) = cli(&["check-config", "--ping"], &wrong);
    assert_ne!(code, 0, "{out}{err}");

    let (code, out, err) = cli(
        &["enqueue", "App\\Events\\Ping", "-c", "ops", "--count", "50"],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let client = ::redis::Client::open(cluster.node_url(cluster.master_of_key(&queue))).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = ::redis::cmd("LPUSH")
        .arg(&queue)
        .arg("not json {")
        .query_async(&mut c)
        .await
        .unwrap();

    let mut run = Binary::spawn(&["run"], &env);
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        path.path(),
        format!(
            "[redis]\nmode = \"cluster\"\nnodes = [{}]\npassword = \"s3cret-pw\"\n[worker]\nqueues = [{queue:?}]\n",
            nodes.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
        ),
    )
    .unwrap();
    let ops = ops(path.path().to_str().unwrap());
    let q = ops.queue(Some(&queue));
    eventually(
        "the run to settle and dead-letter the bad envelope",
        || async {
            let s = q.stats().await.ok()?;
            (s.waiting == 0 && s.processing == 0 && s.failed == 1).then_some(())
        },
    )
    .await;
    let (code, out, err) = cli(&["failed", "list"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("invalid_json"), "{out}");
    let (code, out, err) = cli(&["stats"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&queue) && out.contains("1 live process"),
        "{out}"
    );
    still_running(&mut run);
}
