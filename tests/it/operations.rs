//! What operators rely on: exact counters, a clean exposition, readiness that follows Redis, and a
//! real Prometheus scraping herald.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::Recorder;
use crate::support::herald::{Running, config, parse_metrics};
use crate::support::keys;
use herald_testkit::RedisServer;
use herald_testkit::WebhookFake as Fake;

fn promtool() -> &'static str {
    assert!(
        Command::new("promtool")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok(),
        "promtool is needed (Debian package `prometheus`; scripts/test installs it)"
    );
    "promtool"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_the_outcomes_of_a_run_and_pass_promtool() {
    const OK: usize = 40;
    const RETRIED: usize = 7;
    const DEAD: usize = 5;
    let redis = RedisServer::start();
    // The hook fails the first call for "flaky" events and always refuses "bad" ones.
    let failed_once: Arc<Mutex<HashSet<String>>> = Arc::default();
    let hook = Fake::respond_with({
        let failed_once = failed_once.clone();
        move |body| {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            match v["data"]["kind"].as_str().unwrap() {
                "bad" => 404,
                "flaky"
                    if failed_once
                        .lock()
                        .unwrap()
                        .insert(v["id"].as_str().unwrap().into()) =>
                {
                    503
                }
                _ => 200,
            }
        }
    })
    .await;
    let running = Running::start(config(
        &redis,
        "",
        &format!(
            "[retry]\ndelays = [\"10ms\"]\n[listeners.hook]\ntype = \"webhook\"\nurl = \"{}\"\n[events.Known]\nlisteners = [\"hook\"]\n",
            hook.url()
        ),
    ))
    .await;
    let mut c = redis.conn().await;
    for (kind, n) in [("ok", OK), ("flaky", RETRIED), ("bad", DEAD)] {
        for i in 0..n {
            let e = format!(
                r#"{{"id":"{kind}{i}","event":"Known","channels":["c"],"data":{{"kind":"{kind}"}}}}"#
            );
            let _: () = ::redis::cmd("LPUSH")
                .arg(keys::QUEUE)
                .arg(e)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    }
    // One bad input too: counted as a dead letter by its own reason.
    let _: () = ::redis::cmd("LPUSH")
        .arg(keys::QUEUE)
        .arg("{oops")
        .query_async(&mut c)
        .await
        .unwrap();
    hook.wait_for(OK + 2 * RETRIED + DEAD).await;
    let text = crate::support::eventually("counters to settle", || async {
        let text = running.metrics().await;
        let m = parse_metrics(&text);
        (m.get(r#"herald_dead_letters_total{reason="http_4xx"}"#) == Some(&(DEAD as f64))
            && m.get(r#"herald_deliveries_total{delivery="listener:hook",outcome="ok"}"#)
                == Some(&((OK + RETRIED) as f64)))
        .then_some(text)
    })
    .await;
    let m = parse_metrics(&text);
    let get = |s: &str| {
        m.get(s)
            .copied()
            .unwrap_or_else(|| panic!("missing {s}\n{text}"))
    };
    assert_eq!(
        get(r#"herald_deliveries_total{delivery="listener:hook",outcome="ok"}"#),
        (OK + RETRIED) as f64
    );
    assert_eq!(
        get(r#"herald_deliveries_total{delivery="listener:hook",outcome="retry"}"#),
        RETRIED as f64
    );
    assert_eq!(
        get(r#"herald_deliveries_total{delivery="listener:hook",outcome="dead"}"#),
        DEAD as f64
    );
    // The broadcast succeeded on each event's first attempt and was never repeated.
    assert_eq!(
        get(r#"herald_deliveries_total{delivery="broadcast:redis",outcome="ok"}"#),
        (OK + RETRIED + DEAD) as f64
    );
    assert_eq!(
        get(r#"herald_dead_letters_total{reason="http_4xx"}"#),
        DEAD as f64
    );
    assert_eq!(
        get(r#"herald_dead_letters_total{reason="invalid_json"}"#),
        1.0
    );
    assert_eq!(
        get(r#"herald_events_received_total{queue="herald:default"}"#),
        (OK + 2 * RETRIED + DEAD + 1) as f64
    );
    assert_eq!(
        get(r#"herald_events_processed_total{event="Known",queue="herald:default"}"#),
        (OK + 2 * RETRIED + DEAD) as f64
    );
    assert_eq!(
        get(r#"herald_events_processed_total{event="other",queue="herald:default"}"#),
        1.0
    );
    assert_eq!(
        get(r#"herald_delivery_duration_seconds_count{delivery="listener:hook"}"#),
        (OK + 2 * RETRIED + DEAD) as f64
    );
    assert_eq!(
        get(r#"herald_event_age_seconds_count{delivery="listener:hook"}"#),
        (OK + RETRIED) as f64
    );
    assert_eq!(
        get(&format!(
            r#"herald_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    running.stop().await.unwrap();

    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_redis_and_herald_reconnects_without_losing_what_was_pushed() {
    const N: usize = 20_000;
    let mut redis = RedisServer::start_with_aof();
    let mut c = redis.conn().await;
    let all: Vec<String> = (0..N)
        .map(|i| format!(r#"{{"id":"r{i}","event":"E","channels":["c"],"data":{{"i":{i}}}}}"#))
        .collect();
    crate::support::push(&redis, &all).await;
    let recorder = Arc::new(Recorder::default());
    let cfg = config(
        &redis,
        "concurrency = 1\nbatch_size = 10",
        "[events.E]\nlisteners = [\"rec\"]\n",
    );
    let running =
        Running::start_herald(herald::Herald::new(cfg).with_listener("rec", recorder.clone()))
            .await;
    let addr = running.started.metrics_addr.unwrap();
    let readyz = move || async move {
        match reqwest::Client::new()
            .get(format!("http://{addr}/readyz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    };
    assert_eq!(readyz().await, 200);
    assert_eq!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("http://{addr}/nope"))
            .await
            .unwrap()
            .status(),
        404
    );

    let waiting: i64 = ::redis::cmd("LLEN")
        .arg(keys::QUEUE)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        waiting > 0,
        "the backlog was gone before the outage; nothing would be tested"
    );
    redis.stop();
    crate::support::eventually("/readyz to report Redis down", || async {
        (readyz().await == 503).then_some(())
    })
    .await;
    assert_eq!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .status(),
        200,
        "alive while Redis is down"
    );
    redis.restart();
    crate::support::eventually("/readyz to recover", || async {
        (readyz().await == 200).then_some(())
    })
    .await;

    // Everything pushed before the outage is handled by the same process, without a restart.
    let q = crate::support::queue(&redis);
    crate::support::settled(&q).await;
    assert!(q.failed_list(0, 1).await.unwrap().is_empty());
    running.stop().await.unwrap();
    let ids = recorder.ids.lock().unwrap();
    let missing: Vec<u64> = (0..N as u64).filter(|i| !ids.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "{} events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_herald() {
    promtool();
    let redis = RedisServer::start();
    let running = Running::start(config(&redis, "", "")).await;
    let mut c = redis.conn().await;
    let _: () = ::redis::cmd("LPUSH")
        .arg(keys::QUEUE)
        .arg(r#"{"event":"E","channels":["c"],"data":{}}"#)
        .query_async(&mut c)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let target = running.started.metrics_addr.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!("global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: herald\n    static_configs: [ {{ targets: ['{target}'] }} ]\n"),
    )
    .unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package `prometheus`; scripts/test installs it)");
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=herald_deliveries_total%7Bdelivery%3D%22broadcast%3Aredis%22%2Coutcome%3D%22ok%22%7D"
    );
    let body = crate::support::eventually("Prometheus to have scraped herald", || {
        let url = url.clone();
        async move {
            let v: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            // Every delivery's series exists from start-up at 0; wait for the scrape that
            // saw this event's broadcast.
            let result = v["data"]["result"].as_array()?;
            (result.len() == 1 && result[0]["value"][1] == "1").then(|| v.clone())
        }
    })
    .await;
    let _ = prom.kill();
    let _ = prom.wait();
    let series = &body["data"]["result"][0];
    assert_eq!(series["metric"]["job"], "herald");
    assert_eq!(series["metric"]["delivery"], "broadcast:redis");
    assert_eq!(series["metric"]["outcome"], "ok");
    assert_eq!(series["value"][1], "1");
    running.stop().await.unwrap();
}

/// The log contract operators rely on: JSON lines; one line per retry and per dead letter with
/// envelope id, queue, delivery, attempt and reason; nothing per successful event at info; no
/// secret anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_have_one_line_per_retry_and_dead_letter_and_no_secrets() {
    let redis = RedisServer::start();
    let flaky: Arc<Mutex<HashSet<String>>> = Arc::default();
    let hook = Fake::respond_with({
        let flaky = flaky.clone();
        move |body| {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            if id == "flaky" && flaky.lock().unwrap().insert(id) {
                503
            } else {
                200
            }
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.toml");
    std::fs::write(
        &path,
        format!(
            "[redis]\nurl = \"{}\"\n[worker]\nheartbeat_interval = \"100ms\"\nprocess_timeout = \"1s\"\npromote_interval = \"50ms\"\n\
             [metrics]\naddr = \"\"\n[retry]\ndelays = [\"10ms\"]\n\
             [listeners.hook]\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"s3cr3t-hook\"\n[events.E]\nlisteners = [\"hook\"]\n",
            redis.url(),
            hook.url()
        ),
    )
    .unwrap();
    let run = crate::support::herald::Binary::spawn(
        &["run", "--config", path.to_str().unwrap()],
        &[("RUST_LOG", "info".into())],
    );
    crate::support::push(
        &redis,
        &[
            r#"{"id":"fine","event":"E","channels":["c"],"data":{}}"#,
            r#"{"id":"flaky","event":"E","channels":["c"],"data":{}}"#,
            "{not json",
        ],
    )
    .await;
    hook.wait_for(3).await;
    let q = crate::support::queue(&redis);
    crate::support::eventually("the dead letter", || async {
        (q.failed_list(0, 1).await.ok()?.len() == 1).then_some(())
    })
    .await;
    crate::support::settled(&q).await;
    run.signal("TERM");
    let (status, stderr) = run.wait().await;
    assert!(status.success());

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let retry: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "Delivery failed; will retry.")
        .collect();
    assert_eq!(retry.len(), 1, "{stderr}");
    let r = retry[0];
    assert_eq!(
        (r["envelope_id"].as_str(), r["queue"].as_str()),
        (Some("flaky"), Some(keys::QUEUE))
    );
    assert_eq!(
        (r["delivery"].as_str(), r["attempt"].as_u64()),
        (Some("listener:hook"), Some(1))
    );
    assert_eq!(r["level"], "WARN");
    assert!(r["error"].as_str().unwrap().contains("HTTP 503"), "{r}");
    let dead: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "Envelope rejected; dead-lettered.")
        .collect();
    assert_eq!(dead.len(), 1, "{stderr}");
    assert_eq!(dead[0]["code"], "invalid_json");
    assert!(dead[0]["reason"].as_str().unwrap().contains("invalid JSON"));
    assert!(dead[0]["envelope_id"].is_string() && dead[0]["queue"] == keys::QUEUE);
    // Nothing about the events that simply went through.
    assert!(
        !stderr.contains("\"fine\""),
        "a line about a successful event: {stderr}"
    );
    assert!(
        !stderr.contains("s3cr3t-hook"),
        "the webhook secret was logged"
    );
}
