//! The config as a user writes it: defaults, the shipped file, expansion, overrides, errors
//! that name the key (and the variable), and secrets that never show.

use std::time::Duration;

use super::*;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

fn parse(text: &str, env: &'static [(&'static str, &'static str)]) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", &env_of(env))
}

#[test]
fn empty_file_gives_defaults() {
    let c = parse("", &[]).unwrap();
    assert_eq!(c.redis.url, "redis://127.0.0.1:6379");
    assert_eq!(c.worker.queues, ["herald:default"]);
    assert_eq!(c.broadcasting.default, ["redis"]);
    assert_eq!(c.retry.max_attempts, 10);
    assert_eq!(c.worker.shutdown_timeout, Duration::from_secs(25));
}

#[test]
fn shipped_config_file_is_valid() {
    let text = include_str!("../../config/herald.toml");
    let c = parse(text, &[]).unwrap();
    assert!(c.broadcasting.connections.contains_key("redis"));
}

#[test]
fn env_expansion_with_defaults_and_types() {
    let text = r#"
        [redis]
        url = "redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT}"
        [worker]
        concurrency = "${CONC:-3}"
    "#;
    let c = parse(text, &[("REDIS_PORT", "6390")]).unwrap();
    assert_eq!(c.redis.url, "redis://127.0.0.1:6390");
    assert_eq!(c.worker.concurrency, 3);
    let err = parse(text, &[]).unwrap_err().to_string();
    assert!(
        err.contains("redis.url") && err.contains("REDIS_PORT is not set"),
        "{err}"
    );
}

/// Regression: whole-string expansions were typed by how they looked, so a secret `0123`
/// became the number 123 and REDIS_PREFIX=2024 failed as "expected a string".
#[test]
fn expansions_take_the_type_of_their_key_and_strings_stay_exact() {
    let text = r#"
        [worker]
        concurrency = "${CONC}"
        shutdown_timeout = "${GRACE}"
        [listeners.h]
        type = "webhook"
        url = "https://example.test/h"
        secret = "${HOOK_SECRET}"
        timeout = "${HOOK_TIMEOUT}"
        [broadcasting.connections.pusher]
        driver = "pusher"
        app_id = "${PUSHER_APP_ID}"
        secret = "${PUSHER_APP_SECRET}"
        max_batch_size = "${BATCH}"
        idempotency = "${IDEM}"
    "#;
    let c = parse(
        text,
        &[
            ("CONC", "6"),
            ("GRACE", "30"),
            ("HOOK_SECRET", "0123"),
            ("HOOK_TIMEOUT", "7"),
            ("PUSHER_APP_ID", "0042"),
            ("PUSHER_APP_SECRET", "1.50"),
            ("BATCH", "8"),
            ("IDEM", "false"),
            ("REDIS_PREFIX", "2024"),
        ],
    )
    .unwrap();
    assert_eq!(c.worker.concurrency, 6);
    assert_eq!(c.worker.shutdown_timeout, Duration::from_secs(30));
    // Declaring a connection keeps the built-in ones.
    assert!(c.broadcasting.connections.contains_key("redis"));
    assert_eq!(c.redis.prefix, "2024");
    let ListenerConfig::Webhook(h) = &c.listeners["h"] else {
        panic!("webhook")
    };
    assert_eq!(h.secret.as_ref().map(Secret::expose), Some("0123"));
    assert_eq!(h.timeout, Duration::from_secs(7));
    let ConnectionConfig::Pusher(p) = &c.broadcasting.connections["pusher"] else {
        panic!("pusher")
    };
    assert_eq!((p.app_id.as_str(), p.secret.expose()), ("0042", "1.50"));
    assert_eq!(p.max_batch_size, 8);
    assert!(!p.idempotency);
    let err = parse("[worker]\nconcurrency = \"${CONC}\"\n", &[("CONC", "many")]).unwrap_err();
    assert!(err.to_string().contains("many"), "{err}");
}

#[test]
fn environment_overrides_win() {
    let c = parse(
        "[worker]\nconcurrency = 2\nqueues = [\"a\"]\n",
        &[
            ("HERALD_CONCURRENCY", "7"),
            ("HERALD_QUEUE", "x, y"),
            ("REDIS_PREFIX", "laravel-database-"),
            ("BROADCAST_CONNECTION", "redis,log"),
            ("HERALD_SHUTDOWN_TIMEOUT", "3s"),
        ],
    )
    .unwrap();
    assert_eq!(c.worker.concurrency, 7);
    assert_eq!(c.worker.queues, ["x", "y"]);
    assert_eq!(c.redis.prefix, "laravel-database-");
    assert_eq!(c.broadcasting.default, ["redis", "log"]);
    assert_eq!(c.worker.shutdown_timeout, Duration::from_secs(3));
}

#[track_caller]
fn check_error(text: &str, needles: &[&str]) {
    let err = parse(text, &[]).unwrap_err().to_string();
    for n in needles {
        assert!(err.contains(n), "{err:?} should mention {n:?}");
    }
}

#[test]
fn errors_name_the_offending_key() {
    check_error("[worker]\nconcurency = 2\n", &["concurency"]);
    check_error("[worker]\nbatch_size = 0\n", &["worker.batch_size"]);
    check_error("[redis]\nurl = \"http://x\"\n", &["redis.url"]);
    check_error(
        "[broadcasting]\ndefault = [\"pusher\"]\n",
        &["broadcasting.default", "pusher"],
    );
    check_error(
        "[events.E]\nchannels = [\"orders.{order_id\"]\n",
        &["events.\"E\".channels", "orders.{order_id"],
    );
    check_error(
        "[listeners.h]\ntype = \"webhook\"\nurl = \"ftp://x\"\n",
        &["listeners.h.url"],
    );
    check_error("[worker]\nshutdown_timeout = \"soon\"\n", &["soon"]);
    let c = parse("[events.E]\nlisteners = [\"nope\"]\n", &[]).unwrap();
    let err = c.check_listener_names(&[]).unwrap_err().to_string();
    assert!(
        err.contains("events.\"E\".listeners") && err.contains("nope"),
        "{err}"
    );
}

const PUSHER_SECTION: &str = r#"
    [broadcasting.connections.redis]
    driver = "redis"
    [broadcasting.connections.pusher]
    driver = "pusher"
    app_id = "${PUSHER_APP_ID:-}"
    key = "${PUSHER_APP_KEY:-}"
    secret = "${PUSHER_APP_SECRET:-}"
    cluster = "${PUSHER_APP_CLUSTER:-mt1}"
    host = "${PUSHER_HOST:-}"
    port = "${PUSHER_PORT:-}"
    scheme = "${PUSHER_SCHEME:-https}"
    encryption_master_key_base64 = "${PUSHER_ENCRYPTION_MASTER_KEY_BASE64:-}"
"#;

fn pusher(c: &Config) -> &PusherConfig {
    match &c.broadcasting.connections["pusher"] {
        ConnectionConfig::Pusher(p) => p,
        other => panic!("not a pusher connection: {other:?}"),
    }
}

#[test]
fn pusher_reads_laravels_variables_and_is_optional_until_used() {
    // Unset variables: valid, because nothing routes to the connection.
    let c = parse(PUSHER_SECTION, &[]).unwrap();
    let p = pusher(&c);
    assert_eq!((p.app_id.as_str(), p.port), ("", None));
    assert_eq!(p.base_url(), "https://api-mt1.pusher.com");
    assert_eq!(p.max_data_bytes, 10240);

    // Numeric variables come back as strings and ports.
    let c = parse(
        PUSHER_SECTION,
        &[
            ("PUSHER_APP_ID", "12345"),
            ("PUSHER_APP_KEY", "k"),
            ("PUSHER_APP_SECRET", "s"),
            ("PUSHER_HOST", "127.0.0.1"),
            ("PUSHER_PORT", "6001"),
            ("PUSHER_SCHEME", "http"),
            ("BROADCAST_CONNECTION", "redis,pusher"),
        ],
    )
    .unwrap();
    let p = pusher(&c);
    assert_eq!(p.app_id, "12345");
    assert_eq!(p.base_url(), "http://127.0.0.1:6001");

    // Used but without credentials: the error names the key, the variable and the user.
    let err = parse(PUSHER_SECTION, &[("BROADCAST_CONNECTION", "pusher")])
        .unwrap_err()
        .to_string();
    for needle in [
        "broadcasting.connections.pusher.app_id",
        "PUSHER_APP_ID",
        "broadcasting.default",
    ] {
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
    let text = format!("{PUSHER_SECTION}\n[events.E]\nconnections = [\"pusher\"]\n");
    let err = Config::parse(&text, "t", &env_of(&[("PUSHER_APP_ID", "1")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pusher.key") && err.contains("events.\"E\".connections"),
        "{err}"
    );
}

#[test]
fn pusher_settings_are_checked() {
    let base = "[broadcasting]\ndefault = []\n[broadcasting.connections.p]\ndriver = \"pusher\"\n";
    check_error(
        &format!("{base}host = \"https://soketi.test\"\n"),
        &["broadcasting.connections.p.host", "scheme"],
    );
    check_error(
        &format!("{base}scheme = \"ws\"\n"),
        &["broadcasting.connections.p.scheme"],
    );
    check_error(&format!("{base}port = \"80a\"\n"), &["80a"]);
    check_error(&format!("{base}port = 70000\n"), &["70000"]);
    check_error(
        &format!("{base}encryption_master_key_base64 = \"c2hvcnQ=\"\n"),
        &["encryption_master_key_base64", "32 bytes"],
    );
    check_error(
        &format!("{base}max_batch_size = 0\n"),
        &["p.max_batch_size"],
    );
    check_error(&format!("{base}colour = 1\n"), &["colour"]);
}

#[test]
fn check_config_masks_pusher_secrets() {
    let c = parse(
        PUSHER_SECTION,
        &[
            ("PUSHER_APP_SECRET", "pusher-s3cret"),
            (
                "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
                "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
            ),
            ("PUSHER_PORT", "6001"),
        ],
    )
    .unwrap();
    let out = c.to_masked_toml();
    assert!(
        !out.contains("pusher-s3cret") && !out.contains("ICEiIyQl"),
        "{out}"
    );
    assert!(out.contains("port = 6001"), "{out}");
}

#[test]
fn a_broken_expansion_in_a_secret_does_not_echo_it() {
    let err = parse(
        "[listeners.h]\ntype = \"webhook\"\nurl = \"https://x.test/\"\nsecret = \"top${secret\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("listeners.h.secret") && !err.contains("top"),
        "{err}"
    );
}

#[test]
fn check_config_masks_secrets() {
    let c = parse(
        r#"
        [redis]
        url = "redis://:hunter2@127.0.0.1:6379"
        [listeners.h]
        type = "webhook"
        url = "https://example.test/hook"
        secret = "s3cr3t"
        "#,
        &[],
    )
    .unwrap();
    let out = c.to_masked_toml();
    assert!(!out.contains("hunter2") && !out.contains("s3cr3t"), "{out}");
    assert!(out.contains("redis://:****@127.0.0.1:6379"), "{out}");
}

/// A bad value in each environment override is reported with the variable and the key it sets,
/// as `VAR (key): …`, never as a TOML error about the file.
#[test]
fn a_bad_environment_value_names_the_variable_and_its_key() {
    let bad: &[(&str, &str, &str)] = &[
        (
            "REDIS_URL",
            "http://u:hunter2@x",
            "redis:// or rediss:// URL",
        ),
        (
            "REDIS_MODE",
            "replicated",
            "expected one of standalone, cluster, sentinel",
        ),
        (
            "REDIS_NODES",
            "redis://a:1,http://u:hunter2@x",
            "redis:// or rediss:// URL",
        ),
        (
            "REDIS_SENTINEL_MASTER",
            "mymaster",
            "is read only in sentinel mode",
        ),
        ("REDIS_USERNAME", "her ald", "must not contain spaces"),
        ("REDIS_PASSWORD", "hunter2\n", "must not contain spaces"),
        ("REDIS_PREFIX", "a}b", "cannot share a hash slot"),
        ("HERALD_QUEUE", " , ", "at least one queue"),
        (
            "HERALD_CONCURRENCY",
            "abc",
            "expected a positive integer, got \"abc\"",
        ),
        ("HERALD_BATCH_SIZE", "5000", "must be between 1 and 1000"),
        ("HERALD_SHUTDOWN_TIMEOUT", "soon", "expected a duration"),
        (
            "HERALD_UNKNOWN_EVENTS",
            "ignore",
            "expected one of broadcast, reject",
        ),
        ("HERALD_MAX_ATTEMPTS", "-1", "expected a positive integer"),
        ("HERALD_METRICS_ADDR", "nowhere", "expected an address"),
        // Set, but only whitespace (a stray newline from a secret file, an empty-looking
        // value): a header could never carry it, and it must not read as "no token".
        (
            "HERALD_ADMIN_TOKEN",
            " \n",
            "printable ASCII without spaces",
        ),
        (
            "BROADCAST_CONNECTION",
            "redis,nope",
            "unknown broadcast connection \"nope\"",
        ),
    ];
    for o in ENV_OVERRIDES {
        let (_, value, needle) = bad
            .iter()
            .find(|(var, _, _)| *var == o.var)
            .unwrap_or_else(|| panic!("no bad value tried for {}", o.var));
        let err = Config::parse("", "t.toml", &|k| (k == o.var).then(|| value.to_string()))
            .unwrap_err()
            .to_string();
        let head = format!("{} ({}): ", o.var, o.key);
        assert!(err.starts_with(&head), "{err:?} should start with {head:?}");
        assert!(err.contains(needle), "{err:?} should say {needle:?}");
        assert!(!err.contains("hunter2"), "{err:?} shows a password");
    }
    assert_eq!(bad.len(), ENV_OVERRIDES.len());
}

/// Regression (noted last time): config structs derived `Debug` while holding secrets. No
/// `{:?}`, `{:#?}` or `check-config` of a config, nor any error about one, shows a secret.
#[tokio::test]
async fn no_view_of_a_config_or_its_errors_shows_a_secret() {
    const SECRETS: [&str; 6] = [
        "adm1n-t0ken",
        "hunter2",
        "pusher-s3cret",
        "hook-s3cret",
        "Bearer-t0ken",
        "ICEiIyQlJic",
    ];
    let text = r#"
        [redis]
        url = "redis://user:hunter2@127.0.0.1:1"
        [broadcasting.connections.pusher]
        driver = "pusher"
        app_id = "1"
        key = "k"
        secret = "pusher-s3cret"
        encryption_master_key_base64 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
        [broadcasting.connections.other]
        driver = "redis"
        url = "redis://:hunter2@127.0.0.1:2"
        [listeners.hook]
        type = "webhook"
        url = "https://hook:hunter2@example.test/hook"
        secret = "hook-s3cret"
        headers = { Authorization = "Bearer-t0ken" }
        [admin]
        token = "adm1n-t0ken"
    "#;
    let c = parse(text, &[]).unwrap();
    let with_space = parse("[admin]\ntoken = \"adm1n-t0ken \"\n", &[]).unwrap_err();
    assert!(
        with_space.to_string().starts_with("admin.token: "),
        "{with_space}"
    );
    let mut views = vec![format!("{c:?}"), format!("{c:#?}"), c.to_masked_toml()];
    let errors = [
        with_space,
        parse("[redis]\nurl = \"http://u:hunter2@x\"\n", &[]).unwrap_err(),
        parse("", &[("REDIS_URL", "http://u:hunter2@x")]).unwrap_err(),
        parse(
            "[listeners.h]\ntype = \"webhook\"\nurl = \"https://x.test/\"\nsecret = \"hook-s3cret${x\"\n",
            &[],
        )
        .unwrap_err(),
    ];
    for e in &errors {
        views.push(format!("{e} {e:?}"));
    }
    let ops = crate::ops::Ops::new(&c).unwrap();
    let unreachable = ops.reachable().await.unwrap_err();
    views.push(format!("{unreachable} {unreachable:?}"));
    for view in &views {
        for secret in SECRETS {
            assert!(!view.contains(secret), "{secret:?} shows in:\n{view}");
        }
    }
    assert!(
        views[0].contains("****"),
        "secrets show as ****: {}",
        views[0]
    );
}

/// A Laravel 11+ app and herald may read one `.env`: the app's `BROADCAST_CONNECTION=herald`
/// (its own driver) is not a herald connection, so herald keeps its configured default instead
/// of refusing to start with `unknown broadcast connection "herald"`.
#[test]
fn broadcast_connection_herald_from_a_shared_laravel_env_keeps_the_default() {
    let text = "[broadcasting]\ndefault = [\"redis\", \"log\"]\n";
    let c = parse(text, &[("BROADCAST_CONNECTION", "herald")]).unwrap();
    assert_eq!(c.broadcasting.default, ["redis", "log"]);
    let c = parse(text, &[("BROADCAST_CONNECTION", "herald,log")]).unwrap();
    assert_eq!(c.broadcasting.default, ["log"]);
    let c = parse(text, &[("BROADCAST_CONNECTION", "")]).unwrap();
    assert!(
        c.broadcasting.default.is_empty(),
        "an empty list still means none"
    );
}

#[test]
fn max_request_bytes_is_off_by_default_and_must_leave_room_for_headers() {
    assert_eq!(
        pusher(&parse(PUSHER_SECTION, &[]).unwrap()).max_request_bytes,
        0
    );
    let reverb = format!("{PUSHER_SECTION}\n    max_request_bytes = 10000\n");
    assert_eq!(
        pusher(&parse(&reverb, &[]).unwrap()).max_request_bytes,
        10_000
    );
    let tiny = format!("{PUSHER_SECTION}\n    max_request_bytes = 500\n");
    let err = parse(&tiny, &[]).unwrap_err().to_string();
    assert!(
        err.contains("pusher.max_request_bytes") && err.contains("at least 2048"),
        "{err}"
    );
}

/// `REDIS_MODE`, `REDIS_NODES` and `REDIS_SENTINEL_MASTER` set `[redis]`; each mode needs its
/// own settings and no other's; node passwords never show.
#[test]
fn redis_modes_read_their_settings_and_need_them() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(v, _)| *v == k)
                .map(|(_, x)| x.to_string())
        }
    };
    let c = Config::parse(
        "",
        "t.toml",
        &env(&[
            ("REDIS_MODE", "cluster"),
            (
                "REDIS_NODES",
                "redis://:hunter2@127.0.0.1:7000, redis://127.0.0.1:7001",
            ),
            ("REDIS_PASSWORD", "sw0rdfish"),
            ("REDIS_USERNAME", "herald"),
        ]),
    )
    .unwrap();
    assert_eq!(c.redis.mode, super::RedisMode::Cluster);
    assert_eq!(c.redis.nodes.len(), 2);
    assert_eq!(c.redis.username, "herald");
    assert_eq!(c.redis.password.expose(), "sw0rdfish");
    for secret in ["hunter2", "sw0rdfish"] {
        assert!(!format!("{c:?}").contains(secret));
        assert!(!c.to_masked_toml().contains(secret));
    }

    let sentinel = Config::parse(
        "[redis]\nmode = \"sentinel\"\nnodes = [\"redis://127.0.0.1:26379\"]\nmaster_name = \"m\"",
        "t.toml",
        &|_| None,
    )
    .unwrap();
    assert_eq!(sentinel.redis.mode, super::RedisMode::Sentinel);

    for (text, needle) in [
        ("[redis]\nmode = \"cluster\"", "redis.nodes"),
        (
            "[redis]\nmode = \"sentinel\"\nnodes = [\"redis://127.0.0.1:26379\"]",
            "redis.master_name",
        ),
        (
            "[redis]\nnodes = [\"redis://127.0.0.1:7000\"]",
            "redis.nodes",
        ),
        (
            "[redis]\nmode = \"cluster\"\nnodes = [\"rediss://a:7000\", \"redis://b:7000\"]",
            "mixes redis:// and rediss://",
        ),
    ] {
        let err = Config::parse(text, "t.toml", &|_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
}

#[test]
fn multi_app_connections_take_no_credentials_of_their_own() {
    let base = "[broadcasting]\ndefault = [\"tenants\"]\n[broadcasting.connections.tenants]\n\
                driver = \"pusher\"\nhost = \"127.0.0.1\"\n";
    let c = parse(&format!("{base}apps = \"redis\"\n"), &[]).unwrap();
    let ConnectionConfig::Pusher(p) = &c.broadcasting.connections["tenants"] else {
        panic!("a pusher connection")
    };
    assert_eq!(p.apps_source(), Some(crate::config::AppsSource::Redis));
    assert_eq!(p.apps_refresh, Duration::from_secs(30));
    assert_eq!(p.apps_metrics_top, 20);
    let c = parse(&format!("{base}apps_dir = \"/etc/herald/apps\"\n"), &[]).unwrap();
    let ConnectionConfig::Pusher(p) = &c.broadcasting.connections["tenants"] else {
        panic!("a pusher connection")
    };
    assert_eq!(
        p.apps_source(),
        Some(crate::config::AppsSource::Dir("/etc/herald/apps".into()))
    );
    check_error(
        &format!("{base}apps = \"redis\"\nsecret = \"s\"\n"),
        &["broadcasting.connections.tenants.secret", "multi-app"],
    );
    check_error(
        &format!("{base}apps = \"files\"\n"),
        &["broadcasting.connections.tenants.apps", "\"files\""],
    );
    check_error(
        &format!("{base}apps = \"redis\"\napps_dir = \"/x\"\n"),
        &["apps_dir", "not both"],
    );
    check_error(
        &format!("{base}apps = \"redis\"\napps_refresh = \"0s\"\n"),
        &["apps_refresh"],
    );
    // Without a source the credentials are still required.
    check_error(base, &["broadcasting.connections.tenants.app_id"]);
}
