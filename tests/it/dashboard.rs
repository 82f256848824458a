//! The admin API behind the dashboard, as curl uses it: the same numbers as `herald stats
//! --json`, retry and forget doing exactly what `herald failed …` does, pages and filters over
//! the dead-letter store, the connections panel. Who may call it: `dashboard_access`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::support::admin::{Admin, free_port};
use crate::support::herald::{Running, cli, config};
use crate::support::{eventually, push, queue, settled};
use herald_testkit::{RedisServer, WebhookFake};

fn env(redis: &RedisServer) -> Vec<(&'static str, String)> {
    vec![("REDIS_URL", redis.url())]
}

fn admin(h: &Running) -> Admin {
    Admin::new(h.started.metrics_addr.expect("served"), None)
}

/// Waits until every live process reports that all its tasks of `herald:default` stopped for
/// the pause, so nothing pushed from now on is reserved.
async fn paused_everywhere(api: &Admin) {
    eventually("the pause to take hold", || async {
        let p = api.json("/api/processes").await;
        let procs = p["processes"].as_array()?.clone();
        (!procs.is_empty()
            && procs
                .iter()
                .all(|p| p["info"]["paused"] == "herald:default"))
        .then_some(())
    })
    .await
}

fn cli_json(args: &[&str], redis: &RedisServer) -> Value {
    let (code, out, err) = cli(args, &env(redis));
    assert_eq!(code, 0, "herald {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_stats_are_the_numbers_of_herald_stats_json() {
    let redis = RedisServer::start();
    // Three inputs that are dead letters at once, and one event whose webhook cannot be reached:
    // retried in an hour, so it waits in the delayed set.
    let closed = format!("http://127.0.0.1:{}/hook", free_port());
    push(&redis, &["bad 1", "bad 2", "bad 3"]).await;
    push(
        &redis,
        &[r#"{"id":"slow","event":"Slow","channels":["c"],"data":{}}"#],
    )
    .await;
    let h = Running::start(config(
        &redis,
        "",
        &format!("[retry]\ndelays = [\"1h\"]\n[listeners.hook]\ntype = \"webhook\"\nurl = \"{closed}\"\n[events.Slow]\nlisteners = [\"hook\"]\n"),
    ))
    .await;
    let api = admin(&h);
    let q = queue(&redis);
    eventually("3 dead letters and 1 delayed", || async {
        let s = q.stats().await.ok()?;
        (s.failed == 3 && s.delayed == 1 && s.processing == 0).then_some(())
    })
    .await;
    // Paused (through the CLI), the queue holds what is pushed next: the numbers stand still.
    let (code, out, err) = cli(&["pause"], &env(&redis));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paused herald:default"), "{out}");
    paused_everywhere(&api).await;
    let five: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"id":"w{i}","event":"E","channels":["c"],"data":{{}}}}"#))
        .collect();
    push(&redis, &five).await;

    let from_cli = cli_json(&["stats", "--json"], &redis);
    let from_api = api.json("/api/stats").await;
    assert_eq!(from_api["queues"], from_cli["queues"]);
    let queue0 = &from_api["queues"][0];
    assert_eq!(
        (
            queue0["waiting"].as_u64(),
            queue0["delayed"].as_u64(),
            queue0["failed"].as_u64()
        ),
        (Some(5), Some(1), Some(3)),
        "{queue0}"
    );
    let ids = |v: &Value| -> Vec<(Value, Value, Value)> {
        v["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["id"].clone(),
                    p["inflight"].clone(),
                    p["info"]["started_at"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(ids(&from_api), ids(&from_cli));
    assert_eq!(ids(&from_api)[0].0, json!(h.started.process_id));

    // The dashboard's own view agrees, and resuming through the API delivers what waited.
    let overview = api.json("/api/queues").await;
    let o = &overview["queues"][0];
    assert_eq!(
        (o["waiting"].as_u64(), o["delayed_later"].as_u64()),
        (Some(5), Some(1))
    );
    assert!(o["paused"].as_str().unwrap().contains("(cli)"), "{o}");
    let r = api
        .post("/api/queues/resume", &json!({"queue": "herald:default"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("the waiting five to be delivered", || async {
        (q.stats().await.ok()?.waiting == 0).then_some(())
    })
    .await;
    let activity = api
        .json("/api/activity?queue=herald:default&minutes=5")
        .await;
    let settled_total: u64 = activity["minutes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["settled"].as_u64().unwrap())
        .sum();
    let dead_total: u64 = activity["minutes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["dead"].as_u64().unwrap())
        .sum();
    // 3 dead letters + 1 retried + 5 delivered, every one counted once by the fleet's counters.
    assert_eq!((settled_total, dead_total), (9, 3), "{activity}");
    h.stop().await.unwrap();
}

/// Retry and forget through the API and through `herald failed …` leave the same bytes behind:
/// one implementation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_and_forget_through_the_api_do_exactly_what_the_cli_does() {
    let redis = RedisServer::start();
    let refuse = Arc::new(AtomicBool::new(true));
    let hook = WebhookFake::respond_with({
        let refuse = refuse.clone();
        move |_| {
            if refuse.load(Ordering::Relaxed) {
                404
            } else {
                200
            }
        }
    })
    .await;
    let envelopes: Vec<String> = [("d1", "A"), ("d2", "A"), ("d3", "A"), ("d4", "A"), ("d5", "B"), ("d6", "B")]
        .iter()
        .map(|(id, e)| format!(r#"{{"id":"{id}","event":"Known{e}","channels":["c"],"data":{{"n":1}},"created_at":1764268800.5,"extra":"kept"}}"#))
        .collect();
    push(&redis, &envelopes).await;
    let extra = format!(
        "[listeners.hook]\ntype = \"webhook\"\nurl = \"{}\"\n[events.\"Known*\"]\nlisteners = [\"hook\"]\n",
        hook.url()
    );
    let h = Running::start(config(&redis, "", &extra)).await;
    let api = admin(&h);
    let q = queue(&redis);
    eventually("six dead letters", || async {
        (q.stats().await.ok()?.failed == 6).then_some(())
    })
    .await;
    let r = api.post("/api/queues/pause", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    paused_everywhere(&api).await;

    // One by id each way.
    let (code, out, err) = cli(&["failed", "retry", "d1"], &env(&redis));
    assert_eq!((code, out.trim()), (0, "retried d1"), "{err}");
    let r = api
        .post(
            "/api/dead-letters/retry",
            &json!({"queue": "herald:default", "ids": ["d2", "gone"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"done": ["d2"], "missing": ["gone"]}));
    let mut c = redis.conn().await;
    let waiting: Vec<String> = ::redis::cmd("LRANGE")
        .arg("herald:default")
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(waiting.len(), 2, "{waiting:?}");
    let (by_api, by_cli) = (&waiting[0], &waiting[1]);
    assert!(
        by_cli.contains(r#""id":"d1""#) && by_api.contains(r#""id":"d2""#),
        "{waiting:?}"
    );
    assert_eq!(
        by_api.replace("d2", "dX"),
        by_cli.replace("d1", "dX"),
        "the same envelope back"
    );
    assert!(
        by_api.starts_with(r#"{"attempts":0,"pending":["listener:hook"]"#),
        "{by_api}"
    );

    // By filter each way: forget the two KnownB's through the CLI, two KnownA's through the API.
    let (code, out, err) = cli(
        &["failed", "forget", "--matching", "--event", "knownb"],
        &env(&redis),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let r = api
        .post(
            "/api/dead-letters/forget",
            &json!({"filter": {"event": "KnownA"}, "queue": "herald:default"}),
        )
        .await;
    assert_eq!(
        r.json()["done"],
        json!(["d3", "d4"]),
        "oldest first: {}",
        r.body
    );
    assert!(q.failed_list(0, 10).await.unwrap().is_empty());
    let r = api
        .post("/api/dead-letters/retry", &json!({"all": true}))
        .await;
    assert_eq!(r.json(), json!({"done": [], "missing": []}));

    // The two retried events are delivered to the hook once each when the queue resumes.
    refuse.store(false, Ordering::Relaxed);
    let (code, _, err) = cli(&["resume"], &env(&redis));
    assert_eq!(code, 0, "{err}");
    hook.wait_for(8).await;
    settled(&q).await;
    h.stop().await.unwrap();
    let delivered: Vec<String> = hook.requests()[6..]
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(delivered.len(), 2);
    assert!(
        delivered.contains(&"d1".into()) && delivered.contains(&"d2".into()),
        "{delivered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_page_newest_first_and_filter_like_the_cli() {
    let redis = RedisServer::start();
    let bad: Vec<String> = (0..130)
        .map(|i| {
            if i % 2 == 0 {
                format!("{{oops {i}")
            } else {
                format!(r#"{{"id":"m{i}","data":{{}}}}"#)
            }
        })
        .collect();
    push(&redis, &bad).await;
    let h = Running::start(config(&redis, "", "")).await;
    let api = admin(&h);
    let q = queue(&redis);
    eventually("130 dead letters", || async {
        (q.stats().await.ok()?.failed == 130).then_some(())
    })
    .await;

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = api
            .json(&format!("/api/dead-letters?limit=50&after={after}"))
            .await;
        assert_eq!(page["total"], 130);
        for e in page["entries"].as_array().unwrap() {
            assert!(e.get("payload").is_none(), "a listing carries no payloads");
            seen.push((
                e["failed_at"].as_u64().unwrap(),
                e["id"].as_str().unwrap().to_string(),
            ));
        }
        match page["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    let mut ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (seen.len(), ids.len()),
        (130, 130),
        "every dead letter once"
    );
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");

    // The CLI's --offset counts in the same order.
    let tail = cli_json(
        &[
            "failed", "list", "--json", "--offset", "120", "--limit", "500",
        ],
        &redis,
    );
    let tail: Vec<&str> = tail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = seen[120..].iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(tail, expected);

    let missing = api
        .json("/api/dead-letters?reason=missing_field&limit=500")
        .await;
    let api_ids: Vec<&str> = missing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(api_ids.len(), 65);
    assert_eq!(
        missing["total"],
        Value::Null,
        "counting a content filter is not free"
    );
    let from_cli = cli_json(
        &[
            "failed",
            "list",
            "--json",
            "--reason",
            "missing_field",
            "--limit",
            "500",
        ],
        &redis,
    );
    let cli_ids: Vec<&str> = from_cli
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(api_ids, cli_ids);
    let later = api
        .json(&format!(
            "/api/dead-letters?since={}",
            crate::support::now_ms() + 3_600_000
        ))
        .await;
    assert_eq!(
        (
            later["entries"].as_array().unwrap().len(),
            later["total"].as_u64()
        ),
        (0, Some(0))
    );

    let one = api.json("/api/dead-letters/m1").await;
    assert_eq!(
        one["payload"], r#"{"id":"m1","data":{}}"#,
        "the exact bytes"
    );
    assert_eq!(
        one["payload_pretty"],
        "{\n  \"id\": \"m1\",\n  \"data\": {}\n}"
    );
    assert_eq!(api.get("/api/dead-letters/nope").await.status, 404);
    assert_eq!(
        api.get("/api/dead-letters?queue=other").await.status,
        404,
        "only configured queues"
    );
    assert_eq!(
        api.get("/api/dead-letters?since=yesterday").await.status,
        400
    );
    h.stop().await.unwrap();
}

/// The connections panel: the shared circuit as every replica sees it, and the fleet's Pusher
/// requests by status, per minute and most recent first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connections_panel_shows_the_circuit_and_the_requests_by_status() {
    let redis = RedisServer::start();
    let fake = herald_testkit::PusherFake::start().await.unwrap();
    let extra = format!(
        "[retry]\ndelays = [\"10ms\"]\n[broadcasting]\ndefault = [\"pusher\"]\n{}",
        fake.connection_toml("pusher", "circuit_failures = 2\ncircuit_open_for = \"1h\"")
    );
    let h = Running::start(config(&redis, "", &extra)).await;
    let api = admin(&h);
    let event = |id: &str| format!(r#"{{"id":"{id}","event":"E","channels":["c"],"data":{{}}}}"#);
    push(&redis, &[event("ok")]).await;
    fake.wait_for_events(1).await;
    fake.fail_next(503, 2);
    push(&redis, &[event("fails")]).await;
    let c = eventually(
        "the circuit to open and the requests to be counted",
        || async {
            let r = api.json("/api/connections?minutes=5").await;
            let c = r["connections"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == "pusher")?
                .clone();
            let n503: u64 = c["minutes"]
                .as_array()?
                .iter()
                .filter_map(|m| m["statuses"]["503"].as_u64())
                .sum();
            (c["circuit"]["state"] == "open" && n503 == 2).then_some(c)
        },
    )
    .await;
    assert!(
        c["circuit"]["reason"].as_str().unwrap().contains("503"),
        "{c}"
    );
    assert_eq!(
        (c["in_use"].as_bool(), c["configured"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(
        !c.to_string().contains(fake.secret()),
        "no secret in the answer"
    );
    let n200: u64 = c["minutes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["statuses"]["200"].as_u64())
        .sum();
    assert_eq!(n200, 1);
    let recent: Vec<&str> = c["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(recent, ["503", "503", "200"], "newest first");
    h.stop().await.unwrap();
}
