//! [`RedisServer`]: a `redis-server` owned by one test: free loopback port, its own directory,
//! killed on drop; plain or TLS only, with or without a password ([`Options`]). Never port
//! 6379, and nothing shared is ever flushed. `HERALD_REDIS_SERVER` overrides the binary.

use std::path::PathBuf;

use crate::node::{Access, Node, Options, free_port, gave_up, server_bin};
use crate::tls::Tls;

/// A running `redis-server` of one test.
pub struct RedisServer {
    /// Its loopback port (the TLS port when started with TLS).
    pub port: u16,
    node: Option<Node>,
    dir: tempfile::TempDir,
    aof: bool,
    access: Access,
}

impl RedisServer {
    /// Starts one without persistence.
    pub fn start() -> RedisServer {
        Self::launch(&Options::default(), false)
    }

    /// With `appendonly yes`, so a restart keeps everything (DESIGN: "Redis restart with AOF").
    pub fn start_with_aof() -> RedisServer {
        Self::launch(&Options::default(), true)
    }

    /// Started as `options` say: a password (`requirepass`), TLS only.
    pub fn start_with(options: &Options) -> RedisServer {
        Self::launch(options, false)
    }

    fn launch(options: &Options, aof: bool) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = RedisServer {
            port: 0,
            node: None,
            access: options.access(dir.path()),
            dir,
            aof,
        };
        for _ in 0..5 {
            s.port = free_port();
            if s.spawn() {
                return s;
            }
        }
        gave_up(&server_bin(), &s.log_path());
    }

    /// Runs it on `self.port`; `false` if it exited at once (the port was taken meanwhile).
    fn spawn(&mut self) -> bool {
        let mut args = self.access.listen_args(self.port);
        args.extend(["--bind", "127.0.0.1", "--save", ""].map(String::from));
        args.extend(["--appendonly", if self.aof { "yes" } else { "no" }].map(String::from));
        args.extend(["--appendfsync", "always"].map(String::from));
        if let Some(pw) = &self.access.password {
            args.extend(["--requirepass".into(), pw.clone()]);
        }
        args.extend(["--dir".into(), self.dir.path().display().to_string()]);
        args.extend(["--logfile".into(), self.log_path().display().to_string()]);
        self.node = Node::spawn(
            &server_bin(),
            &args,
            self.port,
            &self.log_path(),
            &self.access,
        );
        self.node.is_some()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// `redis://127.0.0.1:<port>`; `rediss://` with TLS, `:<password>@` with a password.
    pub fn url(&self) -> String {
        self.access.url(self.port)
    }

    /// A client for it; with TLS it trusts the test's CA and nothing else.
    pub fn client(&self) -> ::redis::Client {
        self.access.client(self.port)
    }

    /// The CA and certificate it was started with, if TLS.
    pub fn tls(&self) -> Option<&Tls> {
        self.access.tls.as_deref()
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
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Its data directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Kills the server (SIGKILL), keeping its directory.
    pub fn stop(&mut self) {
        self.node = None; // a Node is SIGKILLed and reaped on drop
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
