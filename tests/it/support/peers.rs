//! Node test peers from the npm registry: soketi (a real Pusher-protocol server) and pusher-js
//! (the browser client's Node build), for the Pusher end-to-end tests; playwright-core, which
//! drives Debian's Chromium for the dashboard's browser tests (`support::browser`).
//!
//! [`installed`] copies `tests/peers/` to `target/tmp/peers/` and runs `npm install` there once
//! (about 30–45 s cold, nothing when `package.json` is unchanged), then applies the soketi
//! status-code patch. Without `node` and `npm` on PATH it fails the test with a clear message:
//! these tests never skip silently. [`Soketi`] runs one loopback-only soketi on free ports;
//! [`NodeScript`] runs a script from `tests/peers/` and reads its JSON lines.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Where the peers are installed (shared by every test of this build).
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("peers")
}

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// The peers directory, installed; panics with the reason when it cannot be.
pub fn installed() -> PathBuf {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match INSTALLED.get_or_init(install) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(30).collect();
        return Err(format!(
            "{what} failed ({}):\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn install() -> Result<PathBuf, String> {
    let missing = |tool: &str, e: String| {
        format!(
            "The Pusher end-to-end tests need Node.js 18 or 20 (soketi runs on a uWebSockets.js \
             build for those) and npm on PATH: they install soketi and pusher-js from the npm \
             registry into {}. `{tool}` is not usable: {e}. \
             Install them (e.g. `apt-get install nodejs npm`) and run the tests again.",
            dir().display()
        )
    };
    run(Command::new("node").arg("--version"), "node --version").map_err(|e| missing("node", e))?;
    run(Command::new("npm").arg("--version"), "npm --version").map_err(|e| missing("npm", e))?;

    let dir = dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    for entry in std::fs::read_dir(source()).map_err(|e| format!("read tests/peers: {e}"))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_file() {
            let to = dir.join(path.file_name().expect("a file name"));
            std::fs::copy(&path, &to).map_err(|e| format!("copy {}: {e}", path.display()))?;
        }
    }
    let manifest = std::fs::read_to_string(dir.join("package.json")).map_err(|e| e.to_string())?;
    let stamp = dir.join(".installed");
    let soketi = dir.join("node_modules/@soketi/soketi/dist/http-handler.js");
    let fresh = std::fs::read_to_string(&stamp).is_ok_and(|s| s == manifest) && soketi.exists();
    if !fresh {
        let started = Instant::now();
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir),
            "npm install (tests/peers/package.json)",
        )?;
        eprintln!("installed the Node test peers in {:.1?}", started.elapsed());
    }
    run(
        Command::new("node")
            .arg("patch-soketi-status.js")
            .arg(&soketi)
            .current_dir(&dir),
        "the soketi status-code patch",
    )?;
    std::fs::write(&stamp, manifest).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// A free loopback TCP port.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback UDP port")
}

/// soketi 1.6.1 on free loopback ports (HTTP+WS, metrics, cluster discovery UDP), with the app
/// `app-id` / `app-key` / `app-secret`. Killed on drop.
pub struct Soketi {
    pub port: u16,
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Soketi {
    pub const APP_ID: &'static str = "app-id";
    pub const KEY: &'static str = "app-key";
    pub const SECRET: &'static str = "app-secret";

    pub async fn start(peers: &Path) -> Soketi {
        Self::start_with_apps(peers, &[(Self::APP_ID, Self::KEY, Self::SECRET)]).await
    }

    /// soketi serving each of `apps` (app id, key, secret) from its array app manager.
    pub async fn start_with_apps(peers: &Path, apps: &[(&str, &str, &str)]) -> Soketi {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_tcp_port();
        // Dotted keys, as soketi's --config applies them; the cluster keys keep its discovery
        // on loopback (by default it broadcasts on the LAN; tooling.md §1c).
        let mut config = serde_json::json!({
            "host": "127.0.0.1",
            "port": port,
            "metrics.host": "127.0.0.1",
            "metrics.port": free_tcp_port(),
            "cluster.address": "127.0.0.1",
            "cluster.unicast": "127.0.0.1",
            "cluster.hostname": "127.0.0.1",
            "cluster.port": free_udp_port(),
            "shutdownGracePeriod": 0,
        });
        for (i, (id, key, secret)) in apps.iter().enumerate() {
            for (field, value) in [("id", id), ("key", key), ("secret", secret)] {
                config[format!("appManager.array.apps.{i}.{field}")] = (*value).into();
            }
        }
        let file = dir.path().join("soketi.json");
        std::fs::write(&file, config.to_string()).expect("write soketi.json");
        let log = std::fs::File::create(dir.path().join("soketi.log")).expect("log file");
        let child = tokio::process::Command::new("node")
            .arg(peers.join("node_modules/@soketi/soketi/bin/server.js"))
            .arg("start")
            .arg(format!("--config={}", file.display()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start soketi");
        let mut s = Soketi { port, child, dir };
        s.wait_ready().await;
        s
    }

    /// Polls `GET /` (soketi answers `OK`) until it is up; fails with its log if it exits.
    async fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/", self.port);
        let log = self.dir.path().join("soketi.log");
        wait_until_up("soketi", &mut self.child, &url, &log).await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("soketi.log")).unwrap_or_default()
    }
}

/// Polls `GET url` until it answers 2xx, within the test guard (Node starting soketi on a loaded
/// 2-core machine has taken over 30 s); fails with the server's `log` if `child` exits first.
pub async fn wait_until_up(what: &str, child: &mut tokio::process::Child, url: &str, log: &Path) {
    let client = reqwest::Client::new();
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + super::GUARD;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) while starting:\n{}", log());
        }
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{what} did not answer on {url} within {:?}:\n{}",
        super::GUARD,
        log()
    );
}

/// A Node script from `tests/peers/`, run from the peers directory; each line it prints on
/// stdout is parsed as JSON. Killed on drop.
pub struct NodeScript {
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<Value>,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl NodeScript {
    pub fn start(peers: &Path, script: &str, env: &[(&str, String)]) -> NodeScript {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = dir.path().join("stderr.log");
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(peers.join(script))
            .current_dir(peers)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start node {script}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"unparsed": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        NodeScript {
            child,
            lines: rx,
            stderr,
            _dir: dir,
        }
    }

    /// The next line; fails the test (with the script's stderr) if it ends or stays silent for
    /// the support guard.
    pub async fn next(&mut self) -> Value {
        match tokio::time::timeout(super::GUARD, self.lines.recv()).await {
            Ok(Some(v)) => v,
            Ok(None) => panic!("the node script ended; stderr:\n{}", self.stderr()),
            Err(_) => panic!(
                "the node script printed nothing for {:?}; stderr:\n{}",
                super::GUARD,
                self.stderr()
            ),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Writes one line to its stdin (for scripts that take commands).
    pub async fn send(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.child.stdin.as_mut().expect("stdin is piped");
        let written = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        if let Err(e) = written.await {
            panic!(
                "the node script stopped reading ({e}); stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// Closes its stdin (the scripts exit on that) and waits for it.
    pub async fn finish(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
