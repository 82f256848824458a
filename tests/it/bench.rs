//! `herald bench` runs end to end and reports every figure, on one server and (with
//! `--local-cluster`) on a local Redis Cluster beside a local server; speed itself is never
//! asserted.

use serde_json::Value;

use crate::support::herald::cli;
use herald_testkit::RedisServer;

#[test]
fn bench_runs_w1_and_reports_every_figure_without_leaving_keys_behind() {
    let redis = RedisServer::start();
    let r = bench_json(
        &["--events", "3000", "--rate", "400", "--duration", "1s"],
        &[("REDIS_URL", redis.url())],
    );
    assert_eq!(r["events"], 3000);
    assert_eq!(r["mode"], "standalone");
    assert_eq!(
        r["nodes"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r["nodes"]
    );
    assert_eq!(r["latency_samples"], 400, "every latency event arrived");
    for k in [
        "events_per_sec",
        "ceiling_publish_per_sec",
        "ratio_of_ceiling",
        "redis_commands_per_event",
        "peak_rss_mb",
        "idle_rss_mb",
        "latency_p50_ms",
        "latency_p99_ms",
        "idle_wake_p50_ms",
    ] {
        assert!(r[k].as_f64().is_some_and(|v| v > 0.0), "{k} = {}", r[k]);
    }
    // The default subscriber checked every message's bytes (a wrong one fails the bench).
    assert_eq!(r["subscriber"], "verify");
    for party in ["herald", "redis", "subscriber"] {
        let us = &r["cpu_us_per_event"][party];
        assert!(us.as_f64().is_some_and(|v| v >= 0.0), "{party} = {us}");
    }
    assert!(r["idle_cpu_percent"].as_f64().is_some_and(|v| v >= 0.0));
    assert!(
        r["envelope_bytes"]
            .as_u64()
            .is_some_and(|b| (300..=360).contains(&b))
    );
    assert!(
        r["redis_version"].as_str().unwrap().starts_with('7')
            || r["redis_version"].as_str().unwrap().starts_with('6')
    );
    let mut c = redis.client().get_connection().unwrap();
    let left: Vec<String> = ::redis::cmd("KEYS").arg("*bench*").query(&mut c).unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn local_cluster_runs_w1_on_a_server_and_a_cluster_with_every_nodes_share() {
    let c = bench_json(&["--local-cluster", "--runs", "1", "--events", "3000"], &[]);
    let columns = c["columns"].as_array().expect("columns");
    let labels: Vec<&str> = columns.iter().filter_map(|c| c["label"].as_str()).collect();
    assert_eq!(
        labels,
        ["standalone", "cluster", "cluster, wait_replicas 1"]
    );
    for (column, (mode, wait, nodes)) in
        columns
            .iter()
            .zip([("standalone", 0, 1), ("cluster", 0, 6), ("cluster", 1, 6)])
    {
        let run = &column["runs"][0];
        assert_eq!(
            (run["mode"].as_str(), run["wait_replicas"].as_u64()),
            (Some(mode), Some(wait))
        );
        assert_eq!(run["events"], 3000);
        assert_eq!(
            run["queues"].as_array().map(Vec::len),
            Some(3),
            "one queue per master"
        );
        assert!(run["events_per_sec"].as_f64().is_some_and(|v| v > 0.0));
        let n = run["nodes"].as_array().expect("nodes");
        assert_eq!(n.len(), nodes, "{n:?}");
        if mode == "cluster" {
            assert_cluster_nodes(n);
        }
        let median = &column["median"]["events_per_sec"]["median"];
        assert!(median.as_f64().is_some_and(|v| v > 0.0), "{median}");
    }
}

/// Three masters serving one W1 queue each, three replicas serving none, the subscriber on a
/// replica, and every node's CPU read (each receives every relayed `PUBLISH`).
fn assert_cluster_nodes(nodes: &[Value]) {
    let masters: Vec<&Value> = nodes.iter().filter(|n| n["replica"] == false).collect();
    assert_eq!(masters.len(), 3, "{nodes:?}");
    for m in &masters {
        assert_eq!(m["queues"].as_array().map(Vec::len), Some(1), "{m}");
        assert!(
            m["commands_per_event"].as_f64().is_some_and(|v| v > 0.0),
            "{m}"
        );
    }
    let subscribers: Vec<&Value> = nodes.iter().filter(|n| n["subscriber"] == true).collect();
    assert_eq!(subscribers.len(), 1, "{nodes:?}");
    assert_eq!(subscribers[0]["replica"], true);
    for n in nodes {
        assert!(
            n["cpu_us_per_event"].as_f64().is_some_and(|v| v > 0.0),
            "{n}"
        );
    }
}

/// `herald bench <args> --json` with `env`; its report.
fn bench_json(args: &[&str], env: &[(&str, String)]) -> Value {
    let args: Vec<&str> = ["bench"]
        .iter()
        .chain(args)
        .chain(&["--json"])
        .copied()
        .collect();
    let (code, out, err) = cli(&args, env);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}
