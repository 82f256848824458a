//! Running herald: in-process through `Herald::run` (what the binary calls), or as the binary;
//! the configs and config files tests give it, its operations API on such a file, and reading
//! its `/metrics`. Not the servers it talks to (`herald-testkit`, [`super::deployment`]).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald::ops::Ops;
use herald::{Config, Herald, Started};
use tokio::sync::oneshot;

use herald_testkit::{RedisServer, WebhookFake};

/// A config for tests: this test's Redis, a free metrics port, fast liveness so crash recovery
/// happens within a test, and `extra` TOML appended (sections only; it may not repeat
/// `[redis]` or `[worker]`, use `worker` instead).
pub fn config(redis: &RedisServer, worker: &str, extra: &str) -> Config {
    config_for(&standalone_section(redis), worker, extra)
}

/// The `[redis]` section for one `redis-server`.
pub fn standalone_section(redis: &RedisServer) -> String {
    format!("[redis]\nurl = \"{}\"", redis.url())
}

/// [`config`] with the `[redis]` section `redis` (any mode).
pub fn config_for(redis: &str, worker: &str, extra: &str) -> Config {
    let mut w: toml::Table = toml::from_str(
        r#"
        heartbeat_interval = "100ms"
        process_timeout = "1s"
        promote_interval = "50ms"
        block_timeout = "200ms"
        shutdown_timeout = "10s"
        "#,
    )
    .unwrap();
    w.extend(toml::from_str::<toml::Table>(worker).expect("worker settings"));
    let text = format!(
        "{redis}\n[worker]\n{worker}\n[metrics]\naddr = \"127.0.0.1:0\"\n{extra}",
        worker = toml::to_string(&w).unwrap(),
    );
    Config::parse(&text, "test", &|_| None).unwrap_or_else(|e| panic!("test config: {e}\n{text}"))
}

/// The listener `hook`, a webhook to `fake`.
pub fn webhook_listener(fake: &WebhookFake) -> String {
    format!(
        "[listeners.hook]\ntype = \"webhook\"\nurl = \"{}\"\n",
        fake.url()
    )
}

/// A config file for the binary in `dir`: `redis` (a `[redis]` section, or nothing when the
/// environment says it), serving `queues`, with fast liveness and every `E` event sent to the
/// webhook `hook`. `worker` adds `[worker]` settings. Returns its path.
pub fn config_file(
    dir: &Path,
    redis: &str,
    queues: &[String],
    hook: &WebhookFake,
    worker: &str,
) -> String {
    let queues: Vec<String> = queues.iter().map(|q| format!("{q:?}")).collect();
    let text = format!(
        "{redis}\n[worker]\nqueues = [{}]\nheartbeat_interval = \"100ms\"\nprocess_timeout = \"1s\"\npromote_interval = \"50ms\"\nblock_timeout = \"200ms\"\nshutdown_timeout = \"20s\"\n{worker}\n[metrics]\naddr = \"\"\n[retry]\ndelays = [\"50ms\"]\nmax_attempts = 50\n{}[events.E]\nlisteners = [\"hook\"]\n",
        queues.join(", "),
        webhook_listener(hook),
    );
    let path = dir.join("herald.toml");
    std::fs::write(&path, &text).unwrap();
    path.display().to_string()
}

/// herald's own operations API (what `herald stats` and `herald failed …` use) on the config
/// file at `path`, with `env` as the only environment.
pub fn ops(path: &str, env: &[(&str, String)]) -> Ops {
    let text = std::fs::read_to_string(path).unwrap();
    let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    let config = Config::parse(&text, path, &lookup).unwrap();
    Ops::new(&config).unwrap()
}

/// Parses the text exposition into `series → value` (series as printed, labels included).
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let dup = out.insert(series.to_string(), value.parse().expect("a number"));
        assert!(dup.is_none(), "series {series} exposed twice");
    }
    out
}

/// herald running in this process.
pub struct Running {
    pub started: Started,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), herald::Error>>,
}

impl Running {
    pub async fn start(config: Config) -> Running {
        Self::start_herald(Herald::new(config)).await
    }

    pub async fn start_herald(h: Herald) -> Running {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel();
        let task = tokio::spawn(h.on_started(started_tx).run(async {
            let _ = stop_rx.await;
        }));
        let started = match super::guard("herald to start", started_rx).await {
            Ok(s) => s,
            Err(_) => panic!("herald stopped before starting: {:?}", task.await),
        };
        Running {
            started,
            stop: Some(stop_tx),
            task,
        }
    }

    /// The text of this instance's `/metrics`.
    pub async fn metrics(&self) -> String {
        let addr = self.started.metrics_addr.expect("metrics served");
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Shuts down the way SIGTERM does and waits for the drain.
    pub async fn stop(mut self) -> Result<(), herald::Error> {
        let _ = self.stop.take().unwrap().send(());
        super::guard("herald to stop", self.task)
            .await
            .expect("herald task")
    }
}

/// The herald binary, started with `args` and environment `env`.
pub struct Binary {
    pub child: Child,
    /// stderr goes to a file: a pipe nobody reads would block the process once full.
    log: tempfile::NamedTempFile,
}

impl Binary {
    pub fn spawn(args: &[&str], env: &[(&str, String)]) -> Binary {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.args(args)
            .env_remove("HERALD_CONFIG")
            .env("HERALD_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = tempfile::NamedTempFile::new().expect("log file");
        cmd.stderr(log.reopen().expect("log file"));
        Binary {
            child: cmd.spawn().expect("spawn herald binary"),
            log,
        }
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Fails the test, with its stderr, if the process has exited.
    pub fn assert_running(&mut self) {
        let exited = self.child.try_wait().unwrap();
        assert!(
            exited.is_none(),
            "herald exited: {exited:?}\n{}",
            self.stderr()
        );
    }

    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: &str) {
        signal(self.pid() as u32, sig);
    }

    /// Waits for exit (guarded); returns the status and everything written to stderr.
    pub async fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = super::guard("herald to exit", async {
            loop {
                if let Some(s) = self.child.try_wait().expect("wait") {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        (status, self.stderr())
    }
}

/// `kill -<sig> <pid>`; fails the test if it fails.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args` and `env`: (exit code, stdout, stderr).
pub fn cli(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(args)
        .env_remove("HERALD_CONFIG")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run herald");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
