//! The pieces [`crate::RedisCluster`] and [`crate::RedisSentinel`] share: one Redis process of
//! a test's own (spawned, answering `PING`, SIGKILLed on drop), a raw command to one port, and
//! a deadline-bounded poll that fails with the processes' logs. Owns no policy of either.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One `redis-server` / `redis-sentinel` process of a test.
pub(crate) struct Node {
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
    password: Option<String>,
    child: Mutex<Option<Child>>,
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
        password: Option<&str>,
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
            password: password.map(str::to_owned),
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

    /// `redis://127.0.0.1:<port>`, with the password if it has one.
    pub(crate) fn url(&self) -> String {
        url(self.port, self.password.as_deref())
    }

    /// One command on a fresh connection (a dead node is an error, never a hang).
    pub(crate) fn query<T: ::redis::FromRedisValue>(
        &self,
        cmd: &::redis::Cmd,
    ) -> ::redis::RedisResult<T> {
        query(self.port, self.password.as_deref(), cmd)
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

/// `redis://127.0.0.1:<port>` or `redis://:<password>@127.0.0.1:<port>`.
pub(crate) fn url(port: u16, password: Option<&str>) -> String {
    match password {
        Some(p) => format!("redis://:{p}@127.0.0.1:{port}"),
        None => format!("redis://127.0.0.1:{port}"),
    }
}

/// One command to `127.0.0.1:port` on a fresh connection, bounded by timeouts.
pub(crate) fn query<T: ::redis::FromRedisValue>(
    port: u16,
    password: Option<&str>,
    cmd: &::redis::Cmd,
) -> ::redis::RedisResult<T> {
    let client = ::redis::Client::open(url(port, password))?;
    let mut c = client.get_connection_with_timeout(Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    c.set_write_timeout(Some(Duration::from_secs(10)))?;
    cmd.query(&mut c)
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
