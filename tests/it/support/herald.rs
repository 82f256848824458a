//! Running herald: in-process through `Herald::run` (what the binary calls), or as the binary.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald::{Config, Herald, Started};
use tokio::sync::oneshot;

use herald_testkit::RedisServer;

/// A config for tests: this test's Redis, a free metrics port, fast liveness so crash recovery
/// happens within a test, and `extra` TOML appended (sections only; it may not repeat
/// `[redis]` or `[worker]`, use `worker` instead).
pub fn config(redis: &RedisServer, worker: &str, extra: &str) -> Config {
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
        "[redis]\nurl = \"{url}\"\n[worker]\n{worker}\n[metrics]\naddr = \"127.0.0.1:0\"\n{extra}",
        url = redis.url(),
        worker = toml::to_string(&w).unwrap(),
    );
    Config::parse(&text, "test", &|_| None).unwrap_or_else(|e| panic!("test config: {e}\n{text}"))
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

    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
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
