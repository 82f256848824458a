//! `herald bench` runs end to end and reports every figure; speed itself is never asserted.

use serde_json::Value;

use crate::support::herald::cli;
use herald_testkit::RedisServer;

#[test]
fn bench_runs_w1_and_reports_every_figure_without_leaving_keys_behind() {
    let redis = RedisServer::start();
    let (code, out, err) = cli(
        &[
            "bench",
            "--events",
            "3000",
            "--rate",
            "400",
            "--duration",
            "1s",
            "--json",
        ],
        &[("REDIS_URL", redis.url())],
    );
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(r["events"], 3000);
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
