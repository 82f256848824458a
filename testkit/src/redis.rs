//! [`RedisServer`]: a `redis-server` owned by one test: free loopback port, its own directory,
//! killed on drop. Never port 6379, and nothing shared is ever flushed. `HERALD_REDIS_SERVER`
//! overrides the binary.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` of one test.
pub struct RedisServer {
    /// Its loopback port.
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    aof: bool,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    /// Starts one without persistence.
    pub fn start() -> RedisServer {
        Self::start_opts(false)
    }

    /// With `appendonly yes`, so a restart keeps everything (DESIGN: "Redis restart with AOF").
    pub fn start_with_aof() -> RedisServer {
        Self::start_opts(true)
    }

    fn start_opts(aof: bool) -> RedisServer {
        for _ in 0..5 {
            let mut s = RedisServer {
                port: free_port(),
                child: None,
                dir: tempfile::tempdir().expect("temp dir"),
                aof,
            };
            if s.spawn() {
                return s;
            }
        }
        panic!("could not start redis-server on a free port");
    }

    fn spawn(&mut self) -> bool {
        let bin = std::env::var("HERALD_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let log = self.dir.path().join("redis.log");
        let child = Command::new(&bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", if self.aof { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin} (install redis-server): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let _ = status;
                self.child = None;
                return false; // port taken meanwhile: try another
            }
            if let Ok(client) = ::redis::Client::open(self.url())
                && let Ok(mut c) = client.get_connection()
                && ::redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("redis-server did not answer PING; log: {}", self.log());
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A client for it.
    pub fn client(&self) -> ::redis::Client {
        ::redis::Client::open(self.url()).expect("valid url")
    }

    /// A connection to it.
    ///
    /// Its response timeout is the test guard, not redis-rs's 500 ms default: a 1000-element
    /// `LPUSH` with `appendfsync always` on a loaded 2-core machine can take longer, and a test
    /// setting up its data is not what measures Redis.
    pub async fn conn(&self) -> ::redis::aio::MultiplexedConnection {
        let config = ::redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(crate::GUARD))
            .set_connection_timeout(Some(std::time::Duration::from_secs(10)));
        self.client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect to test redis")
    }

    /// Its log file's contents.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Its data directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Kills the server (SIGKILL), keeping its directory.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory (AOF, if on, is replayed).
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "redis-server did not come back on port {}",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
