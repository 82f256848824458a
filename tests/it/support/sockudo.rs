//! sockudo (a Pusher-protocol server written in Rust) as a test peer, and [`LosingProxy`], which
//! puts a lost answer between herald and a real server.
//!
//! sockudo is not on npm: `scripts/test` builds it once with `cargo install sockudo` into
//! `target/tmp/sockudo/` (about 18 minutes of both cores), and never fails when that build
//! does. [`binary`] finds it there, or at `$SOCKUDO_BIN`; the sockudo tests skip with a message
//! when it is absent.
//!
//! [`Sockudo`] is configured by environment only (environment overrides its config file, and a
//! config file it cannot parse is ignored in favour of its defaults), from a cleared environment
//! in an empty directory: loopback only, free ports, memory drivers, and a Redis address where
//! nothing listens, so no default ever reaches a shared Redis.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::peers::free_tcp_port;

/// The sockudo binary built by `scripts/test` (or `$SOCKUDO_BIN`), if there is one.
pub fn binary() -> Option<PathBuf> {
    let built = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sockudo/bin/sockudo");
    let path = std::env::var_os("SOCKUDO_BIN").map_or(built, PathBuf::from);
    path.is_file().then_some(path)
}

/// The message a sockudo test prints when it skips.
pub fn skipped(test: &str) {
    eprintln!(
        "skipped {test}: no sockudo binary at {} or $SOCKUDO_BIN (scripts/test builds it with \
         `cargo install sockudo --locked`, which needs protoc)",
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("sockudo/bin/sockudo")
            .display()
    );
}

/// One sockudo on free loopback ports serving the app `app-id` / `app-key` / `app-secret`.
/// Killed on drop.
pub struct Sockudo {
    pub port: u16,
    pub metrics_port: u16,
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Sockudo {
    pub const APP_ID: &'static str = "app-id";
    pub const KEY: &'static str = "app-key";
    pub const SECRET: &'static str = "app-secret";

    pub async fn start(bin: &Path) -> Sockudo {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, metrics_port) = (free_tcp_port(), free_tcp_port());
        let log = std::fs::File::create(dir.path().join("sockudo.log")).expect("log file");
        let mut cmd = tokio::process::Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(Self::env(port, metrics_port))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("start sockudo");
        let mut s = Sockudo {
            port,
            metrics_port,
            child,
            dir,
        };
        s.wait_ready().await;
        s
    }

    fn env(port: u16, metrics_port: u16) -> Vec<(&'static str, String)> {
        let fixed = [
            ("HOST", "127.0.0.1"),
            ("METRICS_ENABLED", "true"),
            ("METRICS_HOST", "127.0.0.1"),
            ("ADAPTER_DRIVER", "local"),
            ("APP_MANAGER_DRIVER", "memory"),
            ("CACHE_DRIVER", "memory"),
            ("QUEUE_DRIVER", "memory"),
            ("RATE_LIMITER_DRIVER", "memory"),
            // Its default API rate limit is 100 requests a minute per client address; these
            // tests are about delivery, not that limit (docs/pusher.md names it).
            ("RATE_LIMITER_ENABLED", "false"),
            ("DATABASE_REDIS_HOST", "127.0.0.1"),
            ("SOCKUDO_DEFAULT_APP_ENABLED", "true"),
            ("SOCKUDO_DEFAULT_APP_ID", Self::APP_ID),
            ("SOCKUDO_DEFAULT_APP_KEY", Self::KEY),
            ("SOCKUDO_DEFAULT_APP_SECRET", Self::SECRET),
            ("SHUTDOWN_GRACE_PERIOD", "0"),
        ];
        let mut env: Vec<(&str, String)> = fixed.iter().map(|(k, v)| (*k, v.to_string())).collect();
        env.push(("PORT", port.to_string()));
        env.push(("METRICS_PORT", metrics_port.to_string()));
        // A port nothing listens on: a driver left at Redis fails here, not on a shared server.
        env.push(("DATABASE_REDIS_PORT", free_tcp_port().to_string()));
        env
    }

    /// Polls `GET /up/<app id>` until sockudo answers 200 (the app is known and every driver
    /// healthy); fails with its log if it exits first.
    async fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/up/{}", self.port, Self::APP_ID);
        let log = self.dir.path().join("sockudo.log");
        super::peers::wait_until_up("sockudo", &mut self.child, &url, &log).await
    }

    /// The sum of every sample of the Prometheus metric `name` on its metrics port.
    pub async fn metric(&self, name: &str) -> f64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let text = reqwest::get(&url)
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sockudo.log")).unwrap_or_default()
    }
}

/// A loopback HTTP/1.1 proxy in front of a real server that loses one answer: the first request
/// whose body contains `marker` reaches the server, which handles it, and the client's
/// connection is then closed unanswered, as when a network path fails after the server acted.
/// Every other request and answer pass unchanged.
pub struct LosingProxy {
    pub port: u16,
    lost: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl LosingProxy {
    pub async fn start(upstream: u16, marker: &str) -> LosingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let lost = Arc::new(AtomicUsize::new(0));
        let (marker, counter) = (marker.as_bytes().to_vec(), lost.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (marker, lost) = (marker.clone(), counter.clone());
                tokio::spawn(async move {
                    let _ = relay(client, upstream, &marker, &lost).await;
                });
            }
        });
        LosingProxy { port, lost, task }
    }

    /// How many answers it has lost (0 or 1).
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for LosingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays one client connection's requests, in turn, over one upstream connection.
async fn relay(
    mut client: TcpStream,
    upstream: u16,
    marker: &[u8],
    lost: &AtomicUsize,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).await?;
    let (mut from_client, mut from_server) = (Vec::new(), Vec::new());
    loop {
        let Some(request) = read_message(&mut client, &mut from_client).await? else {
            return Ok(());
        };
        server.write_all(&request).await?;
        let Some(answer) = read_message(&mut server, &mut from_server).await? else {
            return Ok(());
        };
        let body_has_marker = request.windows(marker.len()).any(|w| w == marker);
        if body_has_marker
            && lost
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            return Ok(()); // both connections close; the client never sees the answer
        }
        client.write_all(&answer).await?;
    }
}

/// One HTTP/1.1 message (head and a `Content-Length` body) from `stream`; `None` at a clean
/// end of stream. `buf` carries bytes read past the message.
async fn read_message(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) {
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let body = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= head_end + body {
                return Ok(Some(buf.drain(..head_end + body).collect()));
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
