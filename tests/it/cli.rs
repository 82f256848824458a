use serde_json::Value;

use crate::support::herald::{Running, cli, config};
use crate::support::keys;
use herald_testkit::RedisServer;

fn env(redis: &RedisServer) -> Vec<(&'static str, String)> {
    vec![("REDIS_URL", redis.url())]
}

#[test]
fn enqueue_stats_and_the_failed_commands() {
    let redis = RedisServer::start();
    let e = env(&redis);
    let (code, out, err) = cli(
        &[
            "enqueue",
            r"App\Events\OrderShipped",
            "-c",
            "orders.1",
            "-d",
            r#"{"order_id":1}"#,
            "--count",
            "250",
        ],
        &e,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("enqueued 250 onto herald:default"), "{out}");

    let (code, out, _) = cli(&["stats", "--json"], &e);
    assert_eq!(code, 0);
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["queues"][0]["queue"], keys::QUEUE);
    assert_eq!(stats["queues"][0]["waiting"], 250);
    assert_eq!(stats["queues"][0]["failed"], 0);

    // Two dead letters, through the worker.
    let mut c = redis.client().get_connection().unwrap();
    let _: () = ::redis::cmd("DEL").arg(keys::QUEUE).query(&mut c).unwrap();
    let _: () = ::redis::cmd("LPUSH")
        .arg(keys::QUEUE)
        .arg("not json")
        .arg(r#"{"id":"m1","data":{}}"#)
        .query(&mut c)
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let h = Running::start(config(&redis, "", "")).await;
        crate::support::eventually("two dead letters", || async {
            let (_, out, _) = cli(&["stats", "--json"], &env(&redis));
            let v: Value = serde_json::from_str(&out).ok()?;
            (v["queues"][0]["failed"] == 2).then_some(())
        })
        .await;
        h.stop().await.unwrap();
    });

    let (code, out, err) = cli(&["failed", "list", "--json"], &e);
    assert_eq!(code, 0, "{err}");
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 2);
    let codes: Vec<&str> = list.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert!(
        codes.contains(&"invalid_json") && codes.contains(&"missing_field"),
        "{codes:?}"
    );

    let (code, out, _) = cli(&["failed", "show", "m1"], &e);
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["payload"], r#"{"id":"m1","data":{}}"#);
    assert!(shown["reason"].as_str().unwrap().contains("`event`"));

    let (code, _, err) = cli(&["failed", "show", "nope"], &e);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: no dead letter \"nope\""), "{err}");

    let (code, out, _) = cli(&["failed", "retry", "m1"], &e);
    assert_eq!(code, 0, "{out}");
    let back: Vec<String> = ::redis::cmd("LRANGE")
        .arg(keys::QUEUE)
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    assert_eq!(back.len(), 1);
    assert!(back[0].contains(r#""id":"m1""#));

    let other = list.iter().find(|d| d["code"] == "invalid_json").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out, _) = cli(&["failed", "forget", &other], &e);
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = cli(&["failed", "list", "--json"], &e);
    assert_eq!(serde_json::from_str::<Vec<Value>>(&out).unwrap().len(), 0);
    let (code, out, _) = cli(&["failed", "flush"], &e);
    assert_eq!(code, 0);
    assert!(out.contains("flushed 0"), "{out}");
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    std::fs::write(
        &path,
        "[listeners.h]\ntype = \"webhook\"\nurl = \"https://example.test/h\"\nsecret = \"${HOOK_SECRET}\"\n",
    )
    .unwrap();
    let (code, out, err) = cli(
        &["check-config", "--config", path.to_str().unwrap()],
        &[
            ("HOOK_SECRET", "s3cr3t-value".into()),
            ("REDIS_URL", "redis://:hunter2@10.0.0.1:6379/0".into()),
            ("HERALD_CONCURRENCY", "12".into()),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("s3cr3t-value") && !out.contains("hunter2"),
        "{out}"
    );
    assert!(out.contains("redis://:****@10.0.0.1:6379/0"), "{out}");
    assert!(out.contains("concurrency = 12"), "{out}");
    assert!(out.contains("secret = \"****\""), "{out}");
}

#[test]
fn user_mistakes_are_one_line_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    for (text, needle) in [
        ("[worker]\nbatch_size = 5000\n", "worker.batch_size"),
        ("[worker]\nconcurency = 1\n", "concurency"),
        ("[broadcasting]\ndefault = [\"pusherr\"]\n", "pusherr"),
        (
            "[redis]\nurl = \"${NOT_SET_ANYWHERE}\"\n",
            "NOT_SET_ANYWHERE",
        ),
        ("not = [valid toml", "h.toml"),
    ] {
        std::fs::write(&path, text).unwrap();
        let (code, out, err) = cli(&["check-config", "--config", path.to_str().unwrap()], &[]);
        assert_eq!(code, 1, "{text}: {out}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(needle), "{text}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
    }
    let (code, _, err) = cli(&["check-config", "--config", "/nonexistent/h.toml"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/h.toml"), "{err}");
    let (code, _, err) = cli(&["stats"], &[("REDIS_URL", "redis://127.0.0.1:1".into())]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach Redis at redis://127.0.0.1:1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_a_keyspace_newer_than_it_knows_and_migrate_records_versions() {
    let redis = RedisServer::start();
    let e = env(&redis);
    let (code, out, err) = cli(&["migrate"], &e);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied migration 1"), "{out}");
    let (code, out, _) = cli(&["migrate"], &e);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to do"), "{out}");

    let mut c = redis.conn().await;
    let _: () = ::redis::cmd("HSET")
        .arg(keys::SCHEMA)
        .arg("version")
        .arg(99)
        .query_async(&mut c)
        .await
        .unwrap();
    let err = herald::Herald::new(config(&redis, "", ""))
        .run(std::future::pending())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("version 99, newer than this herald knows"),
        "{err}"
    );

    // Herald data without a version: an operator must migrate first.
    let _: () = ::redis::cmd("DEL")
        .arg(keys::SCHEMA)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = ::redis::cmd("ZADD")
        .arg(keys::DELAYED)
        .arg(1)
        .arg("x")
        .query_async(&mut c)
        .await
        .unwrap();
    let err = herald::Herald::new(config(&redis, "", ""))
        .run(std::future::pending())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("run `herald migrate` first"),
        "{err}"
    );
}

/// `HERALD_THREADS` picks the runtime: a bad value is a one-line error, and a multi-thread
/// runtime runs the same commands.
#[test]
fn herald_threads_is_checked_and_either_runtime_serves() {
    let redis = RedisServer::start();
    for bad in ["0", "two", "-1"] {
        let (code, _, err) = cli(&["stats"], &[("HERALD_THREADS", bad.into())]);
        assert_eq!(code, 1, "{bad}");
        assert!(
            err.contains("HERALD_THREADS: expected a positive integer"),
            "{err}"
        );
    }
    for threads in ["1", "2"] {
        let mut vars = env(&redis);
        vars.push(("HERALD_THREADS", threads.into()));
        let (code, out, err) = cli(&["stats", "--json"], &vars);
        assert_eq!(code, 0, "{threads}: {err}");
        let stats: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert!(stats.is_object() || stats.is_array(), "{out}");
    }
}
