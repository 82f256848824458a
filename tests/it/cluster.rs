//! herald on a real Redis Cluster (6 nodes: 3 masters, 3 replicas) and behind real sentinels:
//! a master killed mid-run, a busy queue's slot migrated mid-run, `wait_replicas` with a
//! replica stopped, a Sentinel failover (plain, and with passwords on both tiers configured by
//! environment only), operator commands on a password-protected cluster. The kill -9, SIGTERM
//! and bad-input checks run in cluster mode too, each written once over a `Deployment`
//! (`support::deployment`) in `reliability` and `bad_input`.
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

use std::collections::HashSet;

use herald::ops::Ops;
use herald_testkit::{RedisCluster, RedisSentinel, WebhookFake};

use crate::support::deployment::{Deployment, cluster_section, node_conn};
use crate::support::events::{delivered_all, distinct, envelopes, id_of};
use crate::support::herald::{
    Binary, Running, config_file, config_for, ops, parse_metrics, signal, webhook_listener,
};
use crate::support::keys;
use crate::support::{eventually, guard, settled, settled_and_clean};

/// Pushes onto `queue` on the node at `url` in chunks, each followed by `WAIT 1`: a replica
/// holds every push before the next, as the README asks of producers on a replicated Redis.
async fn push_replicated(url: &str, queue: &str, all: &[String]) {
    let mut c = node_conn(url).await;
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

/// Every queue settled (nothing waiting, reserved or delayed) and no dead letters.
async fn all_settled(ops: &Ops) {
    for q in ops.queues() {
        settled_and_clean(&q).await;
    }
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
        push_replicated(&cluster.node_url(cluster.master_of_key(q)), q, &all).await;
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
    all_settled(&ops(&cfg, &[])).await;
    first.assert_running();
    second.assert_running();
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
    push_replicated(&cluster.node_url(from), &queue, &envelopes(0, N / 2)).await;

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
    all_settled(&ops(&cfg, &[])).await;
    run.assert_running();
}

/// How herald finds the primary behind `sentinel`: a `[redis]` section in its config file, or
/// (`by_env`) nothing in the file and everything in `REDIS_*` variables, the sentinels'
/// credentials in their URLs and the data nodes' in `REDIS_PASSWORD`.
fn sentinel_settings(sentinel: &RedisSentinel, by_env: bool) -> (String, Vec<(&str, String)>) {
    if by_env {
        let mut env = vec![
            ("REDIS_MODE", "sentinel".to_string()),
            ("REDIS_NODES", sentinel.sentinel_env()),
            ("REDIS_SENTINEL_MASTER", sentinel.master_name().to_string()),
        ];
        env.extend(
            sentinel
                .data_password()
                .map(|p| ("REDIS_PASSWORD", p.to_string())),
        );
        return (String::new(), env);
    }
    let nodes: Vec<String> = sentinel
        .sentinel_urls()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    let section = format!(
        "[redis]\nmode = \"sentinel\"\nnodes = [{}]\nmaster_name = {:?}",
        nodes.join(", "),
        sentinel.master_name()
    );
    (section, vec![])
}

/// Two herald processes on `sentinel`'s primary, which is SIGKILLed at a random moment of a run
/// of `n`: the sentinels promote the replica, both processes follow it, nothing is lost, and
/// none of `secrets` shows in what they logged.
async fn sentinel_failover_mid_run(
    sentinel: RedisSentinel,
    by_env: bool,
    n: usize,
    secrets: &[&str],
) {
    let hook = WebhookFake::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (section, env) = sentinel_settings(&sentinel, by_env);
    let queues = vec!["herald:default".to_string()];
    let cfg = config_file(
        dir.path(),
        &section,
        &queues,
        &hook,
        "concurrency = 2\nbatch_size = 50",
    );
    let old = sentinel.primary_port();
    push_replicated(&sentinel.data_url(old), &queues[0], &envelopes(0, n)).await;

    let mut first = Binary::spawn(&["run", "--config", &cfg], &env);
    let mut second = Binary::spawn(&["run", "--config", &cfg], &env);
    let mark = n / 10 + fastrand::usize(..(n / 2));
    eventually("the run to reach the kill mark", || async {
        (distinct(&hook) >= mark).then_some(())
    })
    .await;
    tokio::task::block_in_place(|| sentinel.kill_primary());
    assert!(distinct(&hook) < n, "the kill came after the run finished");
    tokio::task::block_in_place(|| sentinel.wait_failover(old));

    let seen = delivered_all(&hook, n).await;
    assert_eq!(seen.len(), n);
    all_settled(&ops(&cfg, &env)).await;
    for run in [&mut first, &mut second] {
        run.assert_running();
        let log = run.stderr();
        assert!(
            !secrets.iter().any(|s| log.contains(s)),
            "a secret logged:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_mid_run_is_followed_and_loses_nothing() {
    let sentinel = RedisSentinel::start("herald-primary");
    sentinel_failover_mid_run(sentinel, false, 20_000, &[]).await;
}

/// Both tiers protected (data nodes and sentinels, different passwords), herald configured by
/// environment only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_with_passwords_configured_by_env_is_followed_and_loses_nothing() {
    let (data, sentinels) = ("data-pw-4b1c", "sentinel-pw-9e2d");
    let sentinel = RedisSentinel::start_with_password("herald-primary", data, sentinels);
    sentinel_failover_mid_run(sentinel, true, 5_000, &[data, sentinels]).await;
}

/// A process stopped with SIGSTOP, continued (SIGCONT) when this is dropped, even by a
/// failing test.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        signal(pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

/// `herald_redis_wait_short_total` of `queue` on `herald`'s `/metrics` (0 before the first).
async fn short_waits(herald: &Running, queue: &str) -> f64 {
    let series = format!("herald_redis_wait_short_total{{queue=\"{queue}\"}}");
    let metrics = parse_metrics(&herald.metrics().await);
    metrics.get(&series).copied().unwrap_or(0.0)
}

/// `wait_replicas = 1`: while the replicas are healthy every WAIT is answered in time and
/// nothing is counted; with the queue master's replica stopped, each WAIT ends at
/// `wait_timeout`, is counted, and herald still delivers every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_replicas_counts_short_waits_while_a_replica_is_stopped_and_delivers_everything() {
    const HEALTHY: usize = 2_000;
    const WHILE_STOPPED: usize = 200;
    let d = Deployment::cluster();
    let cluster = d.as_cluster().unwrap();
    let hook = WebhookFake::start(&[]).await;
    // Short enough that the stop stays brief; a replica stopped for longer than the cluster's
    // node timeout is only flagged failed (no replica holds slots), never a master's failover.
    let section = format!(
        "{}\nwait_replicas = 1\nwait_timeout = \"300ms\"",
        d.section()
    );
    let routes = format!(
        "{}[events.E]\nlisteners = [\"hook\"]\n",
        webhook_listener(&hook)
    );
    let config = config_for(&section, "concurrency = 2\nbatch_size = 50", &routes);
    let herald = Running::start(config).await;
    let q = d.queue();

    d.push(&envelopes(0, HEALTHY)).await;
    delivered_all(&hook, HEALTHY).await;
    settled(&q).await;
    assert_eq!(
        short_waits(&herald, keys::QUEUE).await,
        0.0,
        "a WAIT came up short with every replica healthy"
    );

    let master = cluster.master_of_key(keys::QUEUE);
    let replica = cluster.replica_of(master);
    let (_, pid) = *cluster
        .node_pids()
        .iter()
        .find(|(port, _)| *port == replica)
        .expect("the replica's process");
    let stopped = Stopped::stop(pid);
    d.push(&envelopes(HEALTHY, HEALTHY + WHILE_STOPPED)).await;
    let seen = delivered_all(&hook, HEALTHY + WHILE_STOPPED).await;
    assert_eq!(seen.len(), HEALTHY + WHILE_STOPPED);
    let short = short_waits(&herald, keys::QUEUE).await;
    drop(stopped);
    assert!(
        short >= 1.0,
        "no short WAIT counted with the replica stopped"
    );
    assert_eq!(
        cluster.master_of_key(keys::QUEUE),
        master,
        "the stopped replica took its master's slots"
    );

    settled_and_clean(&q).await;
    herald.stop().await.unwrap();
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
    let ops = ops(path.path().to_str().unwrap(), &[]);
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
    run.assert_running();
}
