//! Who may call the dashboard and its admin API: a token (or the login form's cookie) when one
//! is set, nothing off loopback without one, loopback host names only without one, and never a
//! mutating request from another origin. Each with herald as its own process where the log or
//! the bind address matters.

use serde_json::{Value, json};

use crate::support::admin::{Admin, free_port};
use crate::support::herald::{Binary, Running, config};
use crate::support::{eventually, push, queue};
use herald_testkit::RedisServer;
const TOKEN: &str = "t0ken-for-the-dashboard-test";

async fn wait_up(api: &Admin) {
    eventually("the admin server", || async {
        (reqwest::get(format!("{}/healthz", api.base))
            .await
            .ok()?
            .status()
            == 200)
            .then_some(())
    })
    .await;
}

/// With a token: nothing without it (the page is the login form), the probes stay open, the
/// login form's cookie counts, a mutating request from another origin is refused, and every
/// action is logged with who did it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_page_and_call_and_cross_origin_actions_are_refused() {
    let redis = RedisServer::start();
    push(
        &redis,
        &[r#"{"id":"secret-order","event":"E","data":"not an object"}"#],
    )
    .await;
    let port = free_port();
    let herald = Binary::spawn(
        &["run"],
        &[
            ("REDIS_URL", redis.url()),
            ("HERALD_METRICS_ADDR", format!("127.0.0.1:{port}")),
            ("HERALD_ADMIN_TOKEN", TOKEN.into()),
            ("RUST_LOG", "info".into()),
        ],
    );
    let api = Admin::new(format!("127.0.0.1:{port}").parse().unwrap(), Some(TOKEN));
    let anon = api.without_token();
    wait_up(&api).await;
    let q = queue(&redis);
    eventually("the dead letter", || async {
        (q.stats().await.ok()?.failed == 1).then_some(())
    })
    .await;

    for path in [
        "/",
        "/api/stats",
        "/api/dead-letters",
        "/api/dead-letters/secret-order",
        "/api/config",
    ] {
        let a = anon.get(path).await;
        assert_eq!(a.status, 401, "{path}");
        assert!(
            !a.body.contains("secret-order") && !a.body.contains("herald:default"),
            "{path} shows data: {}",
            a.body
        );
    }
    assert!(
        anon.get("/").await.body.contains(r#"action="/login""#),
        "the page is the login form"
    );
    let wrong = Admin::new(format!("127.0.0.1:{port}").parse().unwrap(), Some("wrong"));
    assert_eq!(wrong.get("/api/stats").await.status, 401);
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(anon.get(path).await.status, 200, "{path} stays open");
    }
    assert_eq!(api.get("/api/stats").await.status, 200);

    // The login form sets a cookie that counts like the token.
    let origin = format!("http://127.0.0.1:{port}");
    let same = [("origin", origin.as_str())];
    let bad_login = anon
        .post_raw(
            "/login",
            "application/x-www-form-urlencoded",
            "token=nope",
            &same,
        )
        .await;
    assert_eq!(bad_login.status, 401);
    let login = anon
        .post_raw(
            "/login",
            "application/x-www-form-urlencoded",
            &format!("token={TOKEN}"),
            &same,
        )
        .await;
    assert_eq!(login.status, 303);
    let cookie = login.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains(TOKEN),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let page = anon.get_with("/", &[("cookie", session.as_str())]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/assets/app.js"), "the dashboard itself");

    // Another origin cannot retry, even with the cookie or the token; this origin can.
    let retry = json!({"queue": "herald:default", "ids": ["secret-order"]});
    for headers in [
        vec![
            ("origin", "http://evil.example"),
            ("cookie", session.as_str()),
        ],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("cookie", session.as_str()),
        ],
    ] {
        let a = anon
            .post_with("/api/dead-letters/retry", &retry, &headers)
            .await;
        assert_eq!(a.status, 403, "{headers:?}: {}", a.body);
        assert!(a.body.contains("cross-origin"), "{}", a.body);
    }
    let a = api
        .post_with(
            "/api/dead-letters/flush",
            &json!({}),
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(a.status, 403);
    let form = anon
        .post_raw(
            "/api/dead-letters/retry",
            "application/x-www-form-urlencoded",
            "ids=secret-order",
            &[("cookie", session.as_str())],
        )
        .await;
    assert_eq!(form.status, 415, "actions take JSON only: {}", form.body);
    assert_eq!(q.stats().await.unwrap().failed, 1, "nothing was retried");
    let ok = anon
        .post_with(
            "/api/dead-letters/retry",
            &retry,
            &[
                ("cookie", session.as_str()),
                ("origin", origin.as_str()),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["done"], json!(["secret-order"]));

    let log = eventually("the action's log line", || async {
        let log = herald.stderr();
        log.lines()
            .any(|l| l.contains("Operator action.") && l.contains(r#""action":"retry""#))
            .then_some(log)
    })
    .await;
    let line = log
        .lines()
        .find(|l| l.contains("Operator action."))
        .unwrap();
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        (v["via"].as_str(), v["selection"].as_str()),
        (Some("dashboard"), Some("ids secret-order")),
        "{line}"
    );
    assert!(
        v["actor"].as_str().unwrap().starts_with("127.0.0.1:")
            && v["actor"].as_str().unwrap().ends_with("(cookie)"),
        "{line}"
    );
    assert!(
        log.contains("Dashboard login failed"),
        "failed logins are logged"
    );
    assert!(!log.contains(TOKEN), "the token is never logged");
}

/// Off loopback without a token the dashboard and API are off, saying why; the probes work.
/// With a token the same address serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_without_a_token_the_dashboard_is_disabled() {
    let redis = RedisServer::start();
    let port = free_port();
    let herald = Binary::spawn(
        &["run"],
        &[
            ("REDIS_URL", redis.url()),
            ("HERALD_METRICS_ADDR", format!("0.0.0.0:{port}")),
        ],
    );
    let api = Admin::new(format!("127.0.0.1:{port}").parse().unwrap(), None);
    wait_up(&api).await;
    for path in ["/", "/api/stats", "/api/dead-letters"] {
        let a = api.get(path).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert!(
            a.body.contains("HERALD_ADMIN_TOKEN"),
            "it says why: {}",
            a.body
        );
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(api.get(path).await.status, 200, "{path}");
    }
    assert!(
        herald.stderr().contains("Dashboard and admin API disabled"),
        "{}",
        herald.stderr()
    );
    drop(herald);

    let port = free_port();
    let _herald = Binary::spawn(
        &["run"],
        &[
            ("REDIS_URL", redis.url()),
            ("HERALD_METRICS_ADDR", format!("0.0.0.0:{port}")),
            ("HERALD_ADMIN_TOKEN", TOKEN.into()),
        ],
    );
    let api = Admin::new(format!("127.0.0.1:{port}").parse().unwrap(), Some(TOKEN));
    wait_up(&api).await;
    assert_eq!(api.get("/api/stats").await.status, 200);
    assert_eq!(api.without_token().get("/api/stats").await.status, 401);
}

/// On loopback without a token, the dashboard answers only to a loopback host name: a page on
/// another site whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_on_loopback_answers_only_to_loopback_host_names() {
    let redis = RedisServer::start();
    let h = Running::start(config(&redis, "", "")).await;
    let api = Admin::new(h.started.metrics_addr.expect("served"), None);
    let port = h.started.metrics_addr.unwrap().port();
    assert_eq!(api.get("/api/stats").await.status, 200);
    assert_eq!(
        api.get_with("/", &[("host", &format!("localhost:{port}"))])
            .await
            .status,
        200
    );
    let rebound = api
        .get_with("/api/stats", &[("host", &format!("evil.example:{port}"))])
        .await;
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    assert_eq!(
        api.get_with("/metrics", &[("host", "evil.example")])
            .await
            .status,
        200
    );
    let config = api.get("/api/config").await;
    assert_eq!(config.body, config_of(&redis), "check-config's text");
    h.stop().await.unwrap();
}

/// What `herald check-config` prints for the same settings.
fn config_of(redis: &RedisServer) -> String {
    config(redis, "", "").to_masked_toml()
}
