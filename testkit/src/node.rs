//! The pieces [`crate::RedisServer`], [`crate::RedisCluster`] and [`crate::RedisSentinel`]
//! share: what a deployment is started with ([`Options`]) and how its servers are reached
//! ([`Access`]: password, plain or TLS), one Redis process of a test's own (spawned, answering
//! `PING`, SIGKILLed on drop), a raw command to one port, and a deadline-bounded poll that
//! fails with the processes' logs. Owns no policy of any deployment.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::tls::Tls;

/// What a test's Redis deployment is started with, besides its ports and files:
/// `Options::default().password("pw").tls()`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    password: Option<String>,
    tls: bool,
}

impl Options {
    /// `requirepass` (and `masterauth`, where there are replicas) `password` on the data nodes;
    /// every URL the deployment returns carries it.
    pub fn password(mut self, password: &str) -> Options {
        self.password = Some(password.to_owned());
        self
    }

    /// TLS only (`port 0`, `tls-port`), with a throwaway CA made in the deployment's temp dir;
    /// replication, the cluster bus and the sentinels' links over TLS too. URLs are `rediss://`.
    pub fn tls(mut self) -> Options {
        self.tls = true;
        self
    }

    /// The data nodes' access, the CA generated into `dir` if TLS is asked for.
    pub(crate) fn access(&self, dir: &Path) -> Access {
        Access {
            password: self.password.clone(),
            tls: self.tls.then(|| Arc::new(Tls::generate(dir))),
        }
    }
}

/// How a client reaches one tier of a deployment: its password and, with TLS, the CA.
#[derive(Clone, Debug, Default)]
pub(crate) struct Access {
    pub(crate) password: Option<String>,
    pub(crate) tls: Option<Arc<Tls>>,
}

impl Access {
    /// The same TLS with another tier's password (a sentinel's).
    pub(crate) fn with_password(&self, password: Option<&str>) -> Access {
        Access {
            password: password.map(str::to_owned),
            tls: self.tls.clone(),
        }
    }

    /// `redis://` (`rediss://` with TLS) `127.0.0.1:<port>`, with `:<password>@` if set.
    pub(crate) fn url(&self, port: u16) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.password {
            Some(p) => format!("{scheme}://:{p}@127.0.0.1:{port}"),
            None => format!("{scheme}://127.0.0.1:{port}"),
        }
    }

    /// A client for `port` that trusts the CA (and nothing else) with TLS.
    pub(crate) fn client(&self, port: u16) -> ::redis::Client {
        let url = self.url(port);
        match &self.tls {
            Some(t) => ::redis::Client::build_with_tls(url, t.certificates()),
            None => ::redis::Client::open(url),
        }
        .expect("a valid test URL")
    }

    /// One command to `127.0.0.1:port` on a fresh connection, bounded by timeouts.
    pub(crate) fn query<T: ::redis::FromRedisValue>(
        &self,
        port: u16,
        cmd: &::redis::Cmd,
    ) -> ::redis::RedisResult<T> {
        let mut c = self
            .client(port)
            .get_connection_with_timeout(Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(10)))?;
        c.set_write_timeout(Some(Duration::from_secs(10)))?;
        cmd.query(&mut c)
    }

    /// `(directive, value)` of a server listening on `port`: plain, or TLS only.
    pub(crate) fn listen(&self, port: u16) -> Vec<(&'static str, String)> {
        match &self.tls {
            Some(t) => t.directives(port),
            None => vec![("port", port.to_string())],
        }
    }

    /// [`Access::listen`] as `redis-server` arguments.
    pub(crate) fn listen_args(&self, port: u16) -> Vec<String> {
        self.listen(port)
            .into_iter()
            .flat_map(|(k, v)| [format!("--{k}"), v])
            .collect()
    }

    /// `redis-cli`'s arguments to reach this tier: TLS and the password.
    pub(crate) fn cli_args(&self) -> Vec<String> {
        let tls = self.tls.iter().flat_map(|t| t.cli_args());
        let pw = self
            .password
            .iter()
            .flat_map(|p| ["--no-auth-warning".to_string(), "-a".to_string(), p.clone()]);
        tls.chain(pw).collect()
    }
}

/// One `redis-server` / `redis-sentinel` process of a test.
pub(crate) struct Node {
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
    access: Access,
    child: Mutex<Option<Child>>,
}

/// A free loopback port (the OS's choice; the caller retries if it is taken meanwhile).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The data-node binary: `HERALD_REDIS_SERVER` or `redis-server`.
pub(crate) fn server_bin() -> String {
    std::env::var("HERALD_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

impl Node {
    /// Runs `bin args…` (which must make it listen on `port` and log to `log`) and waits for
    /// `PING`. `None` if it exited first: the port was taken meanwhile, try another.
    pub(crate) fn spawn(
        bin: &str,
        args: &[String],
        port: u16,
        log: &Path,
        access: &Access,
    ) -> Option<Node> {
        let child = Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin} (install redis-server): {e}"));
        let node = Node {
            port,
            log: log.to_path_buf(),
            access: access.clone(),
            child: Mutex::new(Some(child)),
        };
        node.wait_ping().then_some(node)
    }

    fn wait_ping(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.alive() {
                return false;
            }
            if self.query::<String>(&::redis::cmd("PING")).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "redis on port {} did not answer PING; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&self) -> bool {
        let mut child = self.child.lock().unwrap();
        match child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                *child = None;
                false
            }
            None => false,
        }
    }

    /// Its process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    /// SIGKILL (no graceful shutdown, nothing saved), and reap it.
    pub(crate) fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `redis://` (or `rediss://`) `127.0.0.1:<port>`, with the password if it has one.
    pub(crate) fn url(&self) -> String {
        self.access.url(self.port)
    }

    /// A client for it (trusting the deployment's CA with TLS).
    pub(crate) fn client(&self) -> ::redis::Client {
        self.access.client(self.port)
    }

    /// One command on a fresh connection (a dead node is an error, never a hang).
    pub(crate) fn query<T: ::redis::FromRedisValue>(
        &self,
        cmd: &::redis::Cmd,
    ) -> ::redis::RedisResult<T> {
        self.access.query(self.port, cmd)
    }

    /// Its log file's contents.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Panics after every attempt to start `bin` exited at once, with the last attempt's log.
pub(crate) fn gave_up(bin: &str, last_log: &Path) -> ! {
    let log = std::fs::read_to_string(last_log).unwrap_or_default();
    panic!(
        "{bin} exited at start on every free port tried; last log ({}):\n{log}",
        last_log.display()
    );
}

/// `cmd` with its arguments, for [`query`].
pub(crate) fn cmd(args: &[&str]) -> ::redis::Cmd {
    let mut c = ::redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// Polls `check` (each call a round trip or two) until `Some`, or panics after `timeout`
/// with `what` and `logs()`. The short pause between polls is not what callers depend on.
pub(crate) fn poll<T>(
    what: &str,
    timeout: Duration,
    logs: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}; logs:\n{}",
                logs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last lines of the logs of `nodes`, each headed by its port, for a failure message.
pub(crate) fn logs<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> String {
    nodes.into_iter().map(tail).collect()
}

fn tail(n: &Node) -> String {
    let log = n.log();
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(40);
    let head = format!("--- port {} ({}) ---\n", n.port, n.log.display());
    head + &lines[from..].join("\n") + "\n"
}

/// The `field:value` line of an `INFO` reply.
pub(crate) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}
