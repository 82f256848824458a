//! The Laravel driver (`clients/laravel/`) end to end, with a real Laravel 8.83 application
//! (Debian's php-laravel-framework; the app is `tests/laravel/`, a SQLite database of its own):
//!
//! - the same events broadcast once through Laravel's own `redis` broadcaster (its own queue and
//!   worker) and once through the `herald` driver with herald running: herald's messages are
//!   JSON-equal to Laravel's, and no job reaches Laravel's queue;
//! - app → herald → laravel-echo-server → Laravel Echo (socket.io) on a private channel, and
//!   app → herald → soketi → Laravel Echo (pusher-js) on private, presence and encrypted
//!   channels, every one authorized by the driver at the app's `/broadcasting/auth`;
//! - a multi-tenant app: two tenants' events, each naming its Pusher app (the event's
//!   `broadcastApp()` or the app's `Herald::resolveAppUsing()`), through one multi-app
//!   connection (`apps = "redis"`) to the strict fake, each reaching only its own app;
//! - the README's Python (redis-py) and Node (ioredis) producer snippets, run for real.
//!
//! PHP, the framework and phpredis are installed by `./scripts/test`; without them these tests
//! fail with what to install, never skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::herald::{Running, config};
use crate::support::peers::{self, NodeScript, Soketi};
use crate::support::subscriber::Subscriber;
use crate::support::{eventually, guard, keys};
use herald_testkit::{PusherFake, RedisServer};

/// Laravel 8's default `database.redis.options.prefix`; herald runs with the same one.
const PREFIX: &str = "laravel_database_";

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/laravel")
}

/// PHP with phpredis and pdo_sqlite, and Debian's Laravel; else a failure saying what to install.
fn require_php() {
    let check = std::process::Command::new("php")
        .args([
            "-r",
            "require '/usr/share/php/Illuminate/autoload.php'; \
             exit(extension_loaded('redis') && extension_loaded('pdo_sqlite') \
             && class_exists('Illuminate\\Foundation\\Application') ? 0 : 3);",
        ])
        .output();
    match check {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "The Laravel tests need PHP 8 with phpredis and pdo_sqlite and Debian's Laravel 8.83: \
             `apt-get install php-cli php-redis php-laravel-framework phpunit php-sqlite3` \
             (./scripts/test installs them). Checking them gave: {other:?}"
        ),
    }
}

/// herald for the app's Redis: Laravel's prefix, the two queues the app's driver config names
/// (`herald:default`, and `herald:high` for `broadcastQueue` "high"), and `extra` TOML.
fn herald_config(redis: &RedisServer, extra: &str) -> herald::Config {
    let mut c = config(
        redis,
        r#"queues = ["herald:default", "herald:high"]"#,
        extra,
    );
    c.redis.prefix = PREFIX.into();
    c
}

fn queue(redis: &RedisServer, key: &str) -> herald::ops::QueueOps {
    herald::ops::Ops::new(&herald_config(redis, ""))
        .unwrap()
        .queue(Some(key))
}

/// Waits until both queues are settled, and checks nothing was dead-lettered.
async fn settled_without_dead_letters(redis: &RedisServer) {
    for key in ["herald:default", "herald:high"] {
        let q = queue(redis, key);
        crate::support::settled(&q).await;
        let dead = q.failed_list(0, 10).await.unwrap();
        assert!(
            dead.is_empty(),
            "dead letters on {key}: {:?}",
            dead.iter().map(|(_, d)| &d.reason).collect::<Vec<_>>()
        );
    }
}

/// The test app with a state directory of its own (SQLite file, storage, manifests), migrated:
/// users alice (id 1, token `alice-token`) and bob (id 2, `bob-token`).
struct App {
    state: tempfile::TempDir,
    redis_port: u16,
}

impl App {
    async fn new(redis: &RedisServer) -> App {
        require_php();
        let app = App {
            state: tempfile::tempdir().expect("temp dir"),
            redis_port: redis.port,
        };
        std::fs::write(app.state.path().join("db.sqlite"), b"").unwrap();
        app.artisan(&["herald:migrate"], &[]).await;
        app
    }

    fn env(&self, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = [
            ("HERALD_E2E_DIR", self.state.path().display().to_string()),
            (
                "DB_DATABASE",
                self.state.path().join("db.sqlite").display().to_string(),
            ),
            ("REDIS_PORT", self.redis_port.to_string()),
            ("REDIS_PREFIX", PREFIX.to_string()),
            ("APP_ENV", "testing".to_string()),
            ("BROADCAST_DRIVER", "herald".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in extra {
            env.insert(k.to_string(), v.clone());
        }
        env.into_iter().collect()
    }

    /// `php artisan <args>`; its stdout's JSON lines. Fails the test with its output when it
    /// exits non-zero.
    async fn artisan(&self, args: &[&str], env: &[(&str, String)]) -> Vec<Value> {
        let out = guard(
            "artisan",
            tokio::process::Command::new("php")
                .arg(app_dir().join("artisan"))
                .args(args)
                .envs(self.env(env))
                .current_dir(app_dir())
                .stdin(Stdio::null())
                .output(),
        )
        .await
        .expect("run php");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "artisan {args:?} failed ({}):\n{stdout}\n{}\nlaravel.log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("storage/logs/laravel.log"))
            .unwrap_or_default()
    }

    /// The app behind `php -S` on a free loopback port, once it says it started.
    async fn serve(&self, env: &[(&str, String)]) -> Served {
        let port = free_port();
        let mut child = tokio::process::Command::new("php")
            .args(["-S", &format!("127.0.0.1:{port}"), "-t", "public"])
            .arg("public/index.php")
            .envs(self.env(env))
            .current_dir(app_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("php -S");
        let log = Arc::new(Mutex::new(String::new()));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        // Drained for as long as it runs: php -S logs every request there.
        tokio::spawn(async move {
            let mut started = Some(started_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Development Server")
                    && line.contains("started")
                    && let Some(tx) = started.take()
                {
                    let _ = tx.send(());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        if guard("php -S to start", started_rx).await.is_err() {
            panic!("php -S exited:\n{}", log.lock().unwrap());
        }
        Served {
            url: format!("http://127.0.0.1:{port}"),
            _child: child,
            log,
        }
    }
}

struct Served {
    url: String,
    _child: tokio::process::Child,
    log: Arc<Mutex<String>>,
}

impl Served {
    /// `POST /fire/<what>`: the app broadcasts one event `->toOthers()` and answers what
    /// Laravel's own BroadcastEvent computes for it (`event`, `data`).
    async fn fire(&self, what: &str, socket: Option<&str>) -> Value {
        let mut req = reqwest::Client::new().post(format!("{}/fire/{what}", self.url));
        if let Some(s) = socket {
            req = req.header("X-Socket-ID", s);
        }
        let res = req.send().await.expect("POST /fire");
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(
            status.is_success(),
            "POST /fire/{what}: {status}\n{body}\nphp -S:\n{}",
            self.log.lock().unwrap()
        );
        serde_json::from_str(&body).unwrap()
    }
}

impl Served {
    /// `POST /fire/room?text=<text>` (`text` URL-safe) for the tenant `tenant` (the app's
    /// `X-Tenant` resolver names the event's Pusher app from it); answers what Laravel computes.
    async fn fire_for_tenant(&self, tenant: &str, text: &str) -> Value {
        let res = reqwest::Client::new()
            .post(format!("{}/fire/room?text={text}", self.url))
            .header("X-Tenant", tenant)
            .send()
            .await
            .expect("POST /fire");
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(status.is_success(), "POST /fire/room: {status}\n{body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Publishes a marker on `<prefix>marker` and returns every message received before it.
async fn until_marker(redis: &RedisServer, sub: &mut Subscriber) -> Vec<(String, Value)> {
    let marker = uuid::Uuid::new_v4().to_string();
    let _: i64 = ::redis::cmd("PUBLISH")
        .arg(format!("{PREFIX}marker"))
        .arg(&marker)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let (channel, payload) = sub.take(1).await.remove(0);
        if channel == format!("{PREFIX}marker") && payload == marker {
            return out;
        }
        let message = serde_json::from_str(&payload)
            .unwrap_or_else(|e| panic!("not JSON on {channel}: {e}: {payload}"));
        out.push((channel, message));
    }
}

fn sorted(mut messages: Vec<(String, Value)>) -> Vec<(String, Value)> {
    messages.sort_by_key(|(c, m)| format!("{c} {m}"));
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_publishes_what_laravels_own_redis_broadcaster_publishes() {
    let redis = RedisServer::start();
    let mut sub = Subscriber::psubscribe(&redis, &format!("{PREFIX}*")).await;

    // Laravel's own: the redis broadcaster, its redis queue, and queue:work after every step.
    let laravel_app = App::new(&redis).await;
    let steps = laravel_app
        .artisan(
            &["herald:scenario", "--work"],
            &[("BROADCAST_DRIVER", "redis".into())],
        )
        .await;
    let laravel = sorted(until_marker(&redis, &mut sub).await);
    let done = steps.last().unwrap();
    assert_eq!(done["done"], json!(true), "{steps:?}");
    assert!(
        done["laravel_jobs"].as_u64().unwrap() > 0,
        "Laravel's own run queued no job: {steps:?}"
    );
    for step in &steps[..steps.len() - 1] {
        assert_eq!(step["failed_jobs"], json!([]), "Laravel's worker: {step}");
    }

    // herald: the same events, the same (fresh) database state. The envelopes are on herald's
    // lists when dispatch returns, before any herald runs; then herald consumes them.
    let herald_app = App::new(&redis).await;
    let steps = herald_app.artisan(&["herald:scenario"], &[]).await;
    let envelopes = envelopes_on_the_lists(&redis).await;
    let mut pending: Vec<(String, Value)> = envelopes
        .iter()
        .flat_map(|e| {
            let channels = e["channels"].as_array().unwrap().clone();
            channels.into_iter().map(|c| {
                (
                    format!("{PREFIX}{}", c.as_str().unwrap()),
                    e["event"].clone(),
                )
            })
        })
        .collect();
    pending.sort_by_key(|(c, e)| format!("{c} {e}"));
    let mut expected: Vec<(String, Value)> = laravel
        .iter()
        .map(|(c, m)| (c.clone(), m["event"].clone()))
        .collect();
    expected.sort_by_key(|(c, e)| format!("{c} {e}"));
    assert_eq!(
        pending, expected,
        "what waits on herald's lists after dispatch"
    );
    let herald = Running::start(herald_config(&redis, "")).await;
    settled_without_dead_letters(&redis).await;
    let published = sorted(until_marker(&redis, &mut sub).await);
    herald.stop().await.unwrap();

    for step in &steps {
        assert_eq!(
            step["laravel_jobs"],
            json!(0),
            "a job reached Laravel's queue: {step}"
        );
        if let Some(keys) = step.get("laravel_queue_keys") {
            assert_eq!(keys, &json!([]), "Laravel queue keys in Redis: {step}");
        }
    }
    assert_eq!(steps.last().unwrap()["done"], json!(true));

    assert_eq!(
        published.len(),
        laravel.len(),
        "herald: {published:#?}\nLaravel: {laravel:#?}"
    );
    for (h, l) in published.iter().zip(&laravel) {
        assert_eq!(h, l, "herald's message differs from Laravel's");
    }

    // The cases this test is about are really in it.
    let find = |event: &str| {
        laravel
            .iter()
            .find(|(_, m)| m["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {laravel:#?}"))
    };
    let (channel, neither) = find("App\\Events\\InventoryChanged");
    assert_eq!(channel, &format!("{PREFIX}inventory"));
    assert!(
        neither["data"].get("socket").is_none(),
        "Laravel adds no socket to data here: {neither}"
    );
    assert_eq!(find("App\\Events\\Heartbeat").1["data"], json!([]));
    assert_eq!(find("room.message").1["socket"], json!("1234.5678"));
    for model_event in ["PostCreated", "PostUpdated", "PostDeleted"] {
        assert_eq!(
            find(model_event).0,
            format!("{PREFIX}private-App.Models.Post.1")
        );
    }
    assert_eq!(
        find("App\\Events\\OrderShipped").1["data"]["lines"][1]["sku"],
        json!("B/2")
    );
    assert_eq!(
        find("Illuminate\\Notifications\\Events\\BroadcastNotificationCreated").0,
        format!("{PREFIX}private-App.Models.User.1")
    );
    find("App\\Events\\InvoicePaid");
    find("App\\Events\\VaultOpened");
    let prices: Vec<&Value> = laravel
        .iter()
        .filter(|(_, m)| m["event"] == "App\\Events\\PriceDropped")
        .map(|(_, m)| &m["data"])
        .collect();
    assert_eq!(prices, vec![&json!({"price": 99.5})], "broadcastWhen");
}

/// Every envelope on `herald:default` and `herald:high` (under the prefix), checked against
/// config/envelope.schema.json and herald's decoder, with `final_payload` set.
async fn envelopes_on_the_lists(redis: &RedisServer) -> Vec<Value> {
    let schema: Value =
        serde_json::from_str(include_str!("../../config/envelope.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is valid");
    let mut out = Vec::new();
    for key in ["herald:default", "herald:high"] {
        let raw: Vec<String> = ::redis::cmd("LRANGE")
            .arg(format!("{PREFIX}{key}"))
            .arg(0)
            .arg(-1)
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        for text in raw {
            let v: Value = serde_json::from_str(&text).unwrap();
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{text}\n{errors:?}");
            let e = herald::envelope::decode(
                bytes::Bytes::from(text.clone()),
                &herald::envelope::Limits::default(),
            )
            .unwrap_or_else(|e| panic!("herald rejects the driver's envelope: {e}\n{text}"));
            assert!(e.final_payload, "{text}");
            out.push(v);
        }
    }
    out
}

/// Copies the Node fixture of `tests/laravel/` next to the peers' `node_modules`, once per run
/// (tests running at the same time must not see it half-written).
fn node_fixtures(peers: &Path) {
    static COPIED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    COPIED.get_or_init(|| {
        let name = "echo-client.mjs";
        std::fs::copy(app_dir().join(name), peers.join(name)).expect("copy node fixture");
    });
}

/// laravel-echo-server 1.6.3 on a free port, reading `<prefix>*` from the test's Redis and
/// authorizing at the app. Killed on drop.
struct EchoServer {
    url: String,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

impl EchoServer {
    const APP_ID: &'static str = "echo-app";
    const KEY: &'static str = "echo-key";

    async fn start(peers: &Path, redis: &RedisServer, auth_host: &str) -> EchoServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = json!({
            "authHost": auth_host,
            "authEndpoint": "/broadcasting/auth",
            "clients": [{"appId": Self::APP_ID, "key": Self::KEY}],
            "database": "redis",
            "databaseConfig": {"redis": {"host": "127.0.0.1", "port": redis.port, "keyPrefix": PREFIX}},
            "devMode": true,
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
            "socketio": {},
            "subscribers": {"http": true, "redis": true},
            "apiOriginAllow": {"allowCors": false},
        });
        let file = dir.path().join("laravel-echo-server.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let mut child = tokio::process::Command::new("node")
            .arg(peers.join("node_modules/laravel-echo-server/bin/server.js"))
            .arg("start")
            .arg(format!("--config={}", file.display()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start laravel-echo-server");
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = log.clone();
            let mut tx = ready_tx.take();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains("Server ready!")
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(());
                    }
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        if guard("laravel-echo-server to be ready", ready_rx)
            .await
            .is_err()
        {
            panic!("laravel-echo-server exited:\n{}", log.lock().unwrap());
        }
        EchoServer {
            url: format!("http://127.0.0.1:{port}"),
            _child: child,
            _dir: dir,
            log,
        }
    }

    /// The channels it has members on (its HTTP API), as it reports them.
    async fn channels(&self) -> Value {
        let url = format!(
            "{}/apps/{}/channels?auth_key={}",
            self.url,
            Self::APP_ID,
            Self::KEY
        );
        reqwest::get(url)
            .await
            .expect("laravel-echo-server API")
            .json()
            .await
            .expect("JSON")
    }
}

/// The next line that is not a presence join, failing on an `error` line.
async fn next_event(client: &mut NodeScript) -> Value {
    loop {
        let line = client.next().await;
        assert!(
            line.get("error").is_none(),
            "client: {line}\n{}",
            client.stderr()
        );
        if line.get("joining").is_none() {
            return line;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laravel_echo_receives_through_laravel_echo_server_on_a_channel_the_driver_authorized() {
    let peers = peers::installed();
    node_fixtures(&peers);
    let redis = RedisServer::start();
    let app = App::new(&redis).await;
    let served = app.serve(&[("HERALD_AUTH", "redis".into())]).await;
    let herald = Running::start(herald_config(&redis, "")).await;
    let echo = EchoServer::start(&peers, &redis, &served.url).await;

    let mut client = NodeScript::start(
        &peers,
        "echo-client.mjs",
        &[
            ("BROADCASTER", "socket.io".into()),
            ("ECHO_URL", echo.url.clone()),
            ("TOKEN", "alice-token".into()),
            ("PRIVATE", "orders.1".into()),
            ("LISTEN", "OrderShipped".into()),
        ],
    );
    let connected = client.next().await;
    assert_eq!(
        connected["connected"],
        json!(true),
        "{connected}\n{}",
        client.stderr()
    );
    // laravel-echo-server joins the socket once the app's /broadcasting/auth said yes.
    eventually(
        "laravel-echo-server to report the authorized join",
        || async {
            let channels = echo.channels().await;
            channels["channels"]
                .get("private-orders.1")
                .is_some()
                .then_some(())
        },
    )
    .await;

    let fired = served.fire("order", None).await;
    let got = next_event(&mut client).await;
    assert_eq!(got["channel"], json!("private-orders.1"), "{got}");
    assert_eq!(got["event"], json!("OrderShipped"));
    // Echo hands over `data` as RedisBroadcaster publishes it: socket included.
    assert_eq!(
        got["data"],
        fired["data"],
        "echo-server log:\n{}",
        echo.log.lock().unwrap()
    );
    assert_eq!(fired["event"], json!("App\\Events\\OrderShipped"));

    // The app's channel callback refuses bob: laravel-echo-server relays the driver's 403.
    let mut bob = NodeScript::start(
        &peers,
        "echo-client.mjs",
        &[
            ("BROADCASTER", "socket.io".into()),
            ("ECHO_URL", echo.url.clone()),
            ("TOKEN", "bob-token".into()),
            ("PRIVATE", "orders.1".into()),
            ("LISTEN", "OrderShipped".into()),
        ],
    );
    assert_eq!(bob.next().await["connected"], json!(true));
    let refused = bob.next().await;
    assert_eq!(
        (refused["error"].clone(), refused["detail"].clone()),
        (json!("cannot subscribe to private-orders.1"), json!(403)),
        "{refused}"
    );

    settled_without_dead_letters(&redis).await;
    herald.stop().await.unwrap();
    client.finish().await;
    bob.finish().await;
}

/// A 32-byte master key, base64: the app's driver and herald's pusher connection share it.
const MASTER_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_receives_through_soketi_on_private_presence_and_encrypted_channels_the_driver_authorized()
 {
    let peers = peers::installed();
    node_fixtures(&peers);
    let soketi = Soketi::start(&peers).await;
    let redis = RedisServer::start();
    let app = App::new(&redis).await;
    let served = app
        .serve(&[
            ("HERALD_AUTH", "pusher".into()),
            ("PUSHER_APP_KEY", Soketi::KEY.into()),
            ("PUSHER_APP_SECRET", Soketi::SECRET.into()),
            ("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", MASTER_KEY.into()),
        ])
        .await;
    let herald = Running::start(herald_config(
        &redis,
        &format!(
            "[broadcasting]\ndefault = [\"pusher\"]\n[broadcasting.connections.pusher]\n\
             driver = \"pusher\"\napp_id = \"{}\"\nkey = \"{}\"\nsecret = \"{}\"\n\
             host = \"127.0.0.1\"\nport = {}\nscheme = \"http\"\n\
             encryption_master_key_base64 = \"{MASTER_KEY}\"\n",
            Soketi::APP_ID,
            Soketi::KEY,
            Soketi::SECRET,
            soketi.port
        ),
    ))
    .await;

    let client = |token: &str, extra: &[(&str, &str)]| {
        let mut env = vec![
            ("BROADCASTER", "pusher".to_string()),
            ("PUSHER_HOST", "127.0.0.1".into()),
            ("PUSHER_PORT", soketi.port.to_string()),
            ("PUSHER_APP_KEY", Soketi::KEY.into()),
            ("AUTH_ENDPOINT", format!("{}/broadcasting/auth", served.url)),
            ("TOKEN", token.into()),
            ("LISTEN", "OrderShipped,VaultOpened,.room.message".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        NodeScript::start(&peers, "echo-client.mjs", &env)
    };
    let mut alice = client(
        "alice-token",
        &[
            ("PRIVATE", "orders.1"),
            ("PRESENCE", "room.1"),
            ("ENCRYPTED", "vault"),
        ],
    );
    let ready = next_event(&mut alice).await;
    assert_eq!(ready["ready"], json!(true), "{ready}\n{}", alice.stderr());
    let alice_socket = ready["socket_id"].as_str().unwrap().to_string();
    assert_eq!(
        ready["members"]["presence-room.1"],
        json!([{"id": 1, "name": "alice"}]),
        "presence channel_data signed by the driver"
    );
    let mut bob = client("bob-token", &[("PRESENCE", "room.1")]);
    let ready = next_event(&mut bob).await;
    assert_eq!(ready["ready"], json!(true), "{ready}\n{}", bob.stderr());
    assert_eq!(
        ready["members"]["presence-room.1"],
        json!([{"id": 1, "name": "alice"}, {"id": 2, "name": "bob"}])
    );

    let without_socket = |fired: &Value| {
        let mut data = fired["data"].clone();
        if let Some(o) = data.as_object_mut() {
            o.remove("socket");
        }
        data
    };

    // Private: Pusher receives data without its socket member, as PusherBroadcaster sends it.
    let fired = served.fire("order", None).await;
    let got = next_event(&mut alice).await;
    assert_eq!(
        (got["channel"].clone(), got["event"].clone()),
        (json!("private-orders.1"), json!("OrderShipped"))
    );
    assert_eq!(got["data"], without_socket(&fired));

    // Encrypted: herald seals it with the master key, pusher-js opens it with the
    // shared_secret the driver's auth answer carried.
    let fired = served.fire("vault", None).await;
    let got = next_event(&mut alice).await;
    assert_eq!(got["channel"], json!("private-encrypted-vault"), "{got}");
    assert_eq!(got["data"], without_socket(&fired));
    assert_eq!(got["data"], json!({"by": "alice"}));

    // Presence, ->toOthers() from alice's socket: bob receives it, alice does not; then one
    // for everyone, which is the next thing alice sees.
    let fired = served.fire("room", Some(&alice_socket)).await;
    assert_eq!(fired["socket"], json!(alice_socket));
    let got = next_event(&mut bob).await;
    assert_eq!(
        (got["channel"].clone(), got["event"].clone()),
        (json!("presence-room.1"), json!(".room.message"))
    );
    assert_eq!(got["data"], without_socket(&fired));
    let everyone = served.fire("room", None).await;
    let got = next_event(&mut alice).await;
    assert_eq!(
        got["data"],
        without_socket(&everyone),
        "alice got her own toOthers event"
    );
    assert_eq!(
        next_event(&mut bob).await["data"],
        without_socket(&everyone)
    );

    settled_without_dead_letters(&redis).await;
    herald.stop().await.unwrap();
    alice.finish().await;
    bob.finish().await;
    drop(soketi);
}

/// The tenants of the multi-app test: the app's name (the envelope's `app`, the field of the
/// apps hash) and its Pusher app's id, key and secret at the fake.
const TENANTS: [(&str, &str, &str, &str); 2] = [
    ("acme", "acme-id", "acme-key", "acme-secret"),
    ("beta", "beta-id", "beta-key", "beta-secret"),
];

/// herald's multi-app Pusher connection `tenants` (apps from Redis), to a server on `port`.
fn tenants_connection(port: u16) -> String {
    format!(
        "[broadcasting]\ndefault = [\"tenants\"]\n[broadcasting.connections.tenants]\n\
         driver = \"pusher\"\napps = \"redis\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         scheme = \"http\"\n"
    )
}

/// Puts [`TENANTS`] into herald's apps hash of the multi-app connection `tenants`.
async fn add_tenants(redis: &RedisServer) {
    for (app, app_id, key, secret) in TENANTS {
        let _: () = ::redis::cmd("HSET")
            .arg(format!("{PREFIX}{}", keys::pusher_apps("tenants")))
            .arg(app)
            .arg(json!({"app_id": app_id, "key": key, "secret": secret}).to_string())
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenants_laravel_events_reach_only_its_pusher_app_on_one_multi_app_connection() {
    let redis = RedisServer::start();
    let (_, id, key, secret) = TENANTS[0];
    let fake = PusherFake::start_with(id, key, secret).await.unwrap();
    for (_, app_id, key, secret) in TENANTS {
        fake.add_app(app_id, key, secret);
    }
    add_tenants(&redis).await;
    // (text, the event's broadcastApp(), the request's X-Tenant for the app's resolver, the
    // app it must reach): the event's own answer, the resolver's, and the event's winning.
    let cases = [
        ("acme's own", Some("acme"), None, "acme"),
        ("beta's own", Some("beta"), None, "beta"),
        ("beta by its request", None, Some("beta"), "beta"),
        ("acme over its request", Some("acme"), Some("beta"), "acme"),
    ];
    let events: Vec<Value> = cases
        .iter()
        .map(|(text, app, x_tenant, _)| json!({"text": text, "app": app, "x_tenant": x_tenant}))
        .collect();
    let app = App::new(&redis).await;
    app.artisan(&["herald:tenants", &Value::from(events).to_string()], &[])
        .await;
    let want: BTreeMap<String, &str> = cases
        .iter()
        .map(|(text, _, _, app)| (text.to_string(), *app))
        .collect();
    let envelopes = envelopes_on_the_lists(&redis).await;
    let named: BTreeMap<String, &str> = envelopes
        .iter()
        .map(|e| {
            let text = e["data"]["text"].as_str().unwrap().to_string();
            (
                text,
                e["app"].as_str().unwrap_or_else(|| panic!("no app: {e}")),
            )
        })
        .collect();
    assert_eq!(named, want, "the envelopes' apps");

    let herald = Running::start(herald_config(&redis, &tenants_connection(fake.addr.port()))).await;
    let received = guard(
        "every tenant event at the fake",
        fake.wait_for_events(cases.len()),
    )
    .await;
    settled_without_dead_letters(&redis).await;
    herald.stop().await.unwrap();

    // Each event reached its app's /apps/<app_id>/ path, in a request the fake verified with
    // that app's secret alone.
    let app_ids: BTreeMap<&str, &str> = TENANTS.iter().map(|t| (t.0, t.1)).collect();
    let mut reached: BTreeMap<String, &str> = BTreeMap::new();
    for e in &received {
        assert_eq!(e.channel, "tenant-news", "{e:?}");
        let data: Value = serde_json::from_str(&e.data).unwrap();
        let text = data["text"].as_str().unwrap().to_string();
        let app = want[&text];
        assert_eq!(e.app_id, app_ids[app], "{text} reached another app: {e:?}");
        assert!(reached.insert(text, app).is_none(), "twice: {e:?}");
    }
    assert_eq!(reached, want);
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");
}

/// Code blocks fenced as ```<lang> producer in the README.
fn readme_producer(lang: &str) -> String {
    let readme = include_str!("../../README.md");
    let fence = format!("```{lang} producer");
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() == fence {
            return lines
                .by_ref()
                .take_while(|l| l.trim() != "```")
                .collect::<Vec<_>>()
                .join("\n");
        }
    }
    panic!("the README has no {fence} block");
}

/// redis-py in a virtualenv of the build's own (target/tmp/pyvenv), installed once.
fn python_with_redis() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyvenv");
    let python = venv.join("bin/python");
    let has_redis = |py: &Path| {
        std::process::Command::new(py)
            .args(["-c", "import redis"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_redis(&python) {
        let run = |cmd: &mut std::process::Command, what: &str| {
            let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                out.status.success(),
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(
            std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv),
            "python3 -m venv (Debian: apt-get install python3-venv)",
        );
        run(
            std::process::Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "redis==7.4.1",
            ]),
            "pip install redis (PyPI)",
        );
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_python_and_node_producers_are_broadcast_by_herald() {
    let peers = peers::installed();
    let python = python_with_redis();
    for (lang, program, file) in [
        ("python", python.clone(), "producer.py"),
        ("js", PathBuf::from("node"), "producer.js"),
    ] {
        let redis = RedisServer::start();
        // In the peers directory, so `require('ioredis')` finds its node_modules.
        let script = peers.join(file);
        std::fs::write(&script, readme_producer(lang)).unwrap();
        let out = tokio::process::Command::new(&program)
            .arg(&script)
            .env("REDIS_URL", redis.url())
            .env("REDIS_PREFIX", PREFIX)
            .current_dir(&peers)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "the README's {lang} producer failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        // What it pushed, read before herald runs: under the prefix, herald's schema.
        let pushed: Vec<String> = ::redis::cmd("LRANGE")
            .arg(format!("{PREFIX}herald:default"))
            .arg(0)
            .arg(-1)
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        assert_eq!(pushed.len(), 1, "{lang}: {pushed:?}");
        let envelope: Value = serde_json::from_str(&pushed[0]).unwrap();
        herald::envelope::decode(
            bytes::Bytes::from(pushed[0].clone()),
            &herald::envelope::Limits::default(),
        )
        .unwrap_or_else(|e| panic!("{lang}: herald rejects the envelope: {e}"));

        let mut sub = Subscriber::psubscribe(&redis, &format!("{PREFIX}*")).await;
        let herald = Running::start(herald_config(&redis, "")).await;
        let channels: Vec<String> = envelope["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("{PREFIX}{}", c.as_str().unwrap()))
            .collect();
        let got = sub.take(channels.len()).await;
        herald.stop().await.unwrap();
        let mut data = envelope["data"].as_object().unwrap().clone();
        data.insert("socket".into(), envelope["socket"].clone());
        let expected =
            json!({"event": envelope["event"], "data": data, "socket": envelope["socket"]});
        for ((channel, message), want) in got.iter().zip(&channels) {
            assert_eq!(channel, want, "{lang}");
            assert_eq!(
                serde_json::from_str::<Value>(message).unwrap(),
                expected,
                "{lang}"
            );
        }
    }
}

/// Per-tenant channel authorization, end to end: each tenant's users are authorized by the
/// Laravel app with their own tenant's Pusher key and secret, which the driver reads from
/// herald's apps hash (`'apps' => 'tenants'`, `Herald::resolveAuthAppUsing()` naming the signed-in
/// user's tenant). soketi serves both apps and checks every subscription's signature with the
/// app's own secret; alice (acme) and bob (beta) join `presence-room.1` of their own app, each
/// seeing only their app's members and their tenant's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenants_users_are_authorized_with_its_own_pusher_app_and_get_only_its_events() {
    let peers = peers::installed();
    node_fixtures(&peers);
    let apps: Vec<(&str, &str, &str)> = TENANTS.iter().map(|t| (t.1, t.2, t.3)).collect();
    let soketi = Soketi::start_with_apps(&peers, &apps).await;
    let redis = RedisServer::start();
    add_tenants(&redis).await;
    let app = App::new(&redis).await;
    let served = app
        .serve(&[
            ("HERALD_AUTH", "pusher".into()),
            ("HERALD_APPS", "tenants".into()),
        ])
        .await;
    let herald = Running::start(herald_config(&redis, &tenants_connection(soketi.port))).await;
    let client = |token: &str, key: &str| {
        NodeScript::start(
            &peers,
            "echo-client.mjs",
            &[
                ("BROADCASTER", "pusher".to_string()),
                ("PUSHER_HOST", "127.0.0.1".into()),
                ("PUSHER_PORT", soketi.port.to_string()),
                ("PUSHER_APP_KEY", key.into()),
                ("AUTH_ENDPOINT", format!("{}/broadcasting/auth", served.url)),
                ("TOKEN", token.into()),
                ("PRESENCE", "room.1".into()),
                ("LISTEN", ".room.message".into()),
            ],
        )
    };
    let (acme_key, beta_key) = (TENANTS[0].2, TENANTS[1].2);
    let mut alice = client("alice-token", acme_key);
    let ready = next_event(&mut alice).await;
    assert_eq!(ready["ready"], json!(true), "{ready}\n{}", alice.stderr());
    assert_eq!(
        ready["members"]["presence-room.1"],
        json!([{"id": 1, "name": "alice"}])
    );
    let mut bob = client("bob-token", beta_key);
    let ready = next_event(&mut bob).await;
    assert_eq!(ready["ready"], json!(true), "{ready}\n{}", bob.stderr());
    assert_eq!(
        ready["members"]["presence-room.1"],
        json!([{"id": 2, "name": "bob"}]),
        "beta's room.1 is not acme's"
    );

    // beta's event first, then acme's: alice's first event is acme's, so beta's never reached
    // her; bob's is beta's.
    served.fire_for_tenant("beta", "for-beta").await;
    served.fire_for_tenant("acme", "for-acme").await;
    let got = next_event(&mut alice).await;
    assert_eq!(got["data"]["text"], json!("for-acme"), "{got}");
    let got = next_event(&mut bob).await;
    assert_eq!(got["data"]["text"], json!("for-beta"), "{got}");

    settled_without_dead_letters(&redis).await;
    herald.stop().await.unwrap();
    alice.finish().await;
    bob.finish().await;
    drop(soketi);
}
