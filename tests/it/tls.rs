//! herald over TLS (`rediss://`) against real TLS-only servers, in each mode: one server, a
//! six-node Redis Cluster (cluster bus and replication over TLS too), and a primary and replica
//! behind three sentinels (both tiers TLS only, each with its own password). The servers'
//! certificates come from a throwaway CA (testkit's `Tls`), which the herald binary trusts
//! through `SSL_CERT_FILE`, as an operator with a private CA does.
//!
//! In each mode the same story: `check-config --ping` fails clearly with a wrong trust root
//! (another CA, or none: the system's roots) and never prints a password; with the test's CA
//! it passes; `herald run` delivers every event to a webhook and publishes it to a TLS
//! subscriber; `herald stats` then shows everything settled.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use herald_testkit::{Options, RedisCluster, RedisSentinel, RedisServer, Tls, WebhookFake};
use serde_json::{Value, json};

use crate::pusher::envelope;
use crate::support::herald::Binary;
use crate::support::{eventually, keys};

/// Events per mode in the first wave: several batches on every task. A second, smaller wave
/// arrives once herald is idle, while its tasks wait in the blocking `BLMOVE` on their
/// dedicated connections.
const N: usize = 300;
const LATE: usize = 20;

/// The data nodes' password in every mode, and the sentinels' own.
const DATA_PW: &str = "tls-data-pw";
const SENTINEL_PW: &str = "tls-sentinel-pw";

/// Where an operator's trust roots come from, for one herald command.
enum Roots<'a> {
    /// `SSL_CERT_FILE` names this CA file.
    File(&'a Path),
    /// Neither `SSL_CERT_FILE` nor `SSL_CERT_DIR`: the system's roots.
    System,
}

/// The herald binary with `args`, the config file `cfg` and `roots`, to completion:
/// (exit code, stdout + stderr).
fn herald(args: &[&str], cfg: &str, roots: &Roots) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(args)
        .args(["--config", cfg])
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env("RUST_LOG", "warn");
    if let Roots::File(ca) = roots {
        cmd.env("SSL_CERT_FILE", ca);
    }
    let out = cmd.output().expect("run herald");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text.into_owned())
}

/// A config file in `dir`: `redis` (a `[redis]` section), the default queue, fast liveness,
/// `OrderShipped` sent to the webhook and broadcast on the default `redis` connection.
fn config_file(dir: &Path, redis: &str, hook: &WebhookFake) -> String {
    let text = format!(
        "{redis}\n[worker]\nconcurrency = 2\nbatch_size = 20\nheartbeat_interval = \"100ms\"\n\
         process_timeout = \"1s\"\nblock_timeout = \"200ms\"\n[metrics]\naddr = \"\"\n\
         [listeners.hook]\ntype = \"webhook\"\nurl = \"{}\"\n[events.OrderShipped]\nlisteners = [\"hook\"]\n",
        hook.url()
    );
    let path = dir.join("herald.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `[redis]` in `mode` with `nodes`, the data nodes' password set apart from the URLs.
fn nodes_section(mode: &str, nodes: &[String], extra: &str) -> String {
    let nodes: Vec<String> = nodes.iter().map(|u| format!("{u:?}")).collect();
    format!(
        "[redis]\nmode = \"{mode}\"\nnodes = [{}]\npassword = \"{DATA_PW}\"\n{extra}",
        nodes.join(", ")
    )
}

/// `check-config --ping` with a wrong trust root fails, saying the certificate is not trusted,
/// without a password in the output; with the servers' CA it passes.
fn ping_checks(cfg: &str, tls: &Tls) {
    let other = tempfile::tempdir().unwrap();
    let stranger = Tls::generate(other.path());
    for wrong in [Roots::File(stranger.ca_file()), Roots::System] {
        let (code, out) = herald(&["check-config", "--ping"], cfg, &wrong);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains("not trusted"), "{out}");
        assert!(!out.contains("reachable"), "{out}");
        assert_no_password(&out);
    }
    let (code, out) = herald(
        &["check-config", "--ping"],
        cfg,
        &Roots::File(tls.ca_file()),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("# redis: reachable"), "{out}");
    assert_no_password(&out);
}

fn assert_no_password(out: &str) {
    for pw in [DATA_PW, SENTINEL_PW] {
        assert!(!out.contains(pw), "a password in the output:\n{out}");
    }
}

/// Envelopes `from..to` (`OrderShipped`), each `{"i": n}` on channel `tls.<n % 5>`.
fn envelopes(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| {
            envelope(
                &format!("t{i}"),
                &[&format!("tls.{}", i % 5)],
                json!({ "i": i }),
            )
        })
        .collect()
}

fn id_of(json: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(json).unwrap();
    v["data"]["i"].as_u64().unwrap()
}

/// Ids that `PSUBSCRIBE tls.*` on `node` received, collected in the background.
async fn subscribe(node: &::redis::Client) -> Arc<Mutex<HashSet<u64>>> {
    let mut pubsub = node
        .get_async_pubsub()
        .await
        .expect("TLS pubsub connection");
    pubsub.psubscribe("tls.*").await.expect("PSUBSCRIBE");
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        while let Some(m) = stream.next().await {
            s.lock().unwrap().insert(id_of(m.get_payload_bytes()));
        }
    });
    seen
}

/// The whole story of one mode: `cfg` reaches the TLS servers whose CA is `tls`; `node` is
/// the data node holding the default queue (the primary, the queue's master).
async fn serves_over_tls(cfg: &str, tls: &Tls, node: ::redis::Client, hook: &WebhookFake) {
    tokio::task::block_in_place(|| ping_checks(cfg, tls));
    let seen = subscribe(&node).await;
    let mut producer = node.get_multiplexed_async_connection().await.unwrap();
    push(&mut producer, 0, N).await;

    let ca = tls.ca_file().display().to_string();
    let mut run = Binary::spawn(&["run", "--config", cfg], &[("SSL_CERT_FILE", ca)]);
    delivered(hook, &seen, N).await;
    push(&mut producer, N, N + LATE).await;
    delivered(hook, &seen, N + LATE).await;
    eventually("herald stats to show it settled", || async {
        let (code, out) = herald(&["stats", "--json"], cfg, &Roots::File(tls.ca_file()));
        let v: Value = serde_json::from_str(out.trim())
            .ok()
            .filter(|_| code == 0)?;
        let q = &v["queues"][0];
        let settled = ["waiting", "processing", "delayed", "failed"]
            .iter()
            .all(|k| q[k] == 0);
        settled.then_some(())
    })
    .await;
    let exited = run.child.try_wait().unwrap();
    assert!(
        exited.is_none(),
        "herald exited: {exited:?}\n{}",
        run.stderr()
    );
    // Not one reconnect or failed command over TLS (the binary logs warnings and errors).
    let log = run.stderr();
    let complaints: Vec<&str> = (log.lines())
        .filter(|l| l.contains(r#""level":"WARN""#) || l.contains(r#""level":"ERROR""#))
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}

/// `LPUSH`es envelopes `from..to` onto the default queue.
async fn push(conn: &mut ::redis::aio::MultiplexedConnection, from: usize, to: usize) {
    let _: i64 = ::redis::cmd("LPUSH")
        .arg(keys::QUEUE)
        .arg(envelopes(from, to))
        .query_async(conn)
        .await
        .unwrap();
}

/// Waits until the webhook and the TLS subscriber both saw exactly the ids `0..n`.
async fn delivered(hook: &WebhookFake, seen: &Mutex<HashSet<u64>>, n: usize) {
    let all: HashSet<u64> = (0..n as u64).collect();
    eventually("every event at the webhook", || async {
        let got: HashSet<u64> = hook.requests().iter().map(|r| id_of(&r.body)).collect();
        (got == all).then_some(())
    })
    .await;
    eventually("every event at the TLS subscriber", || async {
        (*seen.lock().unwrap() == all).then_some(())
    })
    .await;
}

fn tls_options() -> Options {
    Options::default().password(DATA_PW).tls()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_over_tls_pings_runs_and_refuses_a_wrong_root() {
    let redis = RedisServer::start_with(&tls_options());
    assert!(redis.url().starts_with("rediss://"));
    let hook = WebhookFake::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let section = format!("[redis]\nurl = {:?}", redis.url());
    let cfg = config_file(dir.path(), &section, &hook);
    serves_over_tls(&cfg, redis.tls().unwrap(), redis.client(), &hook).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_pings_runs_and_refuses_a_wrong_root() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start_with(&tls_options()));
    // Seeds without credentials: the password comes from `[redis] password`.
    let seeds: Vec<String> = (cluster.ports().iter())
        .map(|p| format!("rediss://127.0.0.1:{p}"))
        .collect();
    let hook = WebhookFake::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), &nodes_section("cluster", &seeds, ""), &hook);
    let master = tokio::task::block_in_place(|| cluster.master_of_key(keys::QUEUE));
    let node = cluster.node_client(master);
    serves_over_tls(&cfg, cluster.tls().unwrap(), node, &hook).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_over_tls_find_a_tls_primary_and_refuse_a_wrong_root() {
    let name = "herald-tls";
    let sentinel = tokio::task::block_in_place(|| {
        RedisSentinel::start_with(name, &tls_options(), Some(SENTINEL_PW))
    });
    let sentinels = sentinel.sentinel_urls();
    assert!(sentinels.iter().all(|u| u.starts_with("rediss://")));
    let hook = WebhookFake::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("master_name = {name:?}");
    let cfg = config_file(
        dir.path(),
        &nodes_section("sentinel", &sentinels, &extra),
        &hook,
    );
    let primary = tokio::task::block_in_place(|| sentinel.primary_port());
    let node = sentinel.data_client(primary);
    serves_over_tls(&cfg, sentinel.tls().unwrap(), node, &hook).await;
}
