//! [`RedisSentinel`]: a real Sentinel deployment owned by one test: a primary and one replica
//! (`redis-server`, `--replicaof`) and three `redis-sentinel`s (quorum 2, down after 1 s), each
//! with its own writable config in the test's temp dir, all on free loopback ports, never
//! 6379. Waits until the replica is in sync and every sentinel knows the primary, the replica
//! and the other two. Owns the failover a test causes (SIGKILL of the primary, the wait for the
//! sentinels to promote the replica) and, optionally, passwords on both tiers and TLS only on
//! both (the data nodes, their replication, the sentinels and their links). All five
//! processes are SIGKILLed on drop. `HERALD_REDIS_SERVER` overrides the server binary,
//! `HERALD_REDIS_SENTINEL` the sentinel's (default `redis-sentinel`).

use std::path::Path;
use std::time::Duration;

use crate::node::{
    Access, Node, Options, cmd, free_port, gave_up, info_field, logs, poll, server_bin,
};
use crate::tls::Tls;

/// How long start-up or a failover may take before the test fails.
const SETTLE: Duration = Duration::from_secs(45);

/// A running primary + replica + three sentinels of one test.
///
/// Every method blocks (a wait is a poll bounded by a deadline). An async test that needs
/// herald to keep running meanwhile calls it from `tokio::task::spawn_blocking` on an
/// `Arc<RedisSentinel>` (it is `Send + Sync`).
pub struct RedisSentinel {
    name: String,
    /// The primary first, then the replica (as started; roles change on failover).
    data: Vec<Node>,
    sentinels: Vec<Node>,
    /// The data nodes' password and TLS.
    access: Access,
    dir: tempfile::TempDir,
}

/// `redis-server` on a free port, a replica of `primary` if given.
fn start_data(dir: &Path, primary: Option<u16>, access: &Access) -> Node {
    let mut log = dir.join("none.log");
    for _ in 0..10 {
        let port = free_port();
        log = dir.join(format!("redis-{port}.log"));
        let data = dir.join(port.to_string());
        std::fs::create_dir_all(&data).expect("data dir");
        let mut args = access.listen_args(port);
        args.extend(
            ["--bind", "127.0.0.1"]
                .into_iter()
                .chain(["--save", "", "--appendonly", "no"])
                .chain(["--repl-diskless-sync-delay", "0"])
                .map(String::from),
        );
        args.extend(["--dir".into(), data.display().to_string()]);
        args.extend(["--logfile".into(), log.display().to_string()]);
        if let Some(p) = primary {
            args.extend(["--replicaof".into(), "127.0.0.1".into(), p.to_string()]);
        }
        if let Some(pw) = &access.password {
            args.extend(["--requirepass", pw, "--masterauth", pw].map(String::from));
        }
        if let Some(n) = Node::spawn(&server_bin(), &args, port, &log, access) {
            return n;
        }
    }
    gave_up(&server_bin(), &log);
}

/// What a sentinel's config says, besides its port and files.
struct SentinelConf<'a> {
    name: &'a str,
    primary: u16,
    data_password: Option<&'a str>,
    /// The sentinels' own password and TLS.
    access: Access,
}

impl SentinelConf<'_> {
    fn text(&self, port: u16, dir: &Path, log: &Path) -> String {
        let n = self.name;
        let listen: String = (self.access.listen(port).into_iter())
            .map(|(k, v)| format!("{k} {v}\n"))
            .collect();
        let mut t = format!(
            "{listen}bind 127.0.0.1\ndir {}\nlogfile {}\n\
             sentinel resolve-hostnames no\n\
             sentinel monitor {n} 127.0.0.1 {} 2\n\
             sentinel down-after-milliseconds {n} 1000\n\
             sentinel failover-timeout {n} 5000\n\
             sentinel parallel-syncs {n} 1\n",
            dir.display(),
            log.display(),
            self.primary
        );
        if let Some(pw) = self.data_password {
            t += &format!("sentinel auth-pass {n} {pw}\n");
        }
        if let Some(pw) = &self.access.password {
            t += &format!("requirepass {pw}\nsentinel sentinel-pass {pw}\n");
        }
        t
    }
}

fn sentinel_bin() -> (String, Vec<String>) {
    if let Ok(bin) = std::env::var("HERALD_REDIS_SENTINEL") {
        return (bin, vec![]);
    }
    match std::env::var("HERALD_REDIS_SERVER") {
        Ok(server) => (server, vec!["--sentinel".into()]),
        Err(_) => ("redis-sentinel".into(), vec![]),
    }
}

fn start_sentinel(dir: &Path, conf: &SentinelConf<'_>) -> Node {
    let (bin, extra) = sentinel_bin();
    let mut log = dir.join("none.log");
    for _ in 0..10 {
        let port = free_port();
        log = dir.join(format!("sentinel-{port}.log"));
        let file = dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(&file, conf.text(port, dir, &log)).expect("sentinel config");
        let mut args = vec![file.display().to_string()];
        args.extend(extra.iter().cloned());
        if let Some(n) = Node::spawn(&bin, &args, port, &log, &conf.access) {
            return n;
        }
    }
    gave_up(&bin, &log);
}

impl RedisSentinel {
    /// Starts the five processes without passwords, monitoring the primary as `master_name`.
    pub fn start(master_name: &str) -> RedisSentinel {
        Self::start_with(master_name, &Options::default(), None)
    }

    /// With `requirepass`/`masterauth` `data_password` on the data nodes and `requirepass`
    /// `sentinel_password` on the sentinels (which use `auth-pass` and `sentinel-pass`).
    /// Every URL this returns carries the password.
    pub fn start_with_password(
        master_name: &str,
        data_password: &str,
        sentinel_password: &str,
    ) -> RedisSentinel {
        let data = Options::default().password(data_password);
        Self::start_with(master_name, &data, Some(sentinel_password))
    }

    /// Started as `options` say: its password on the data nodes; with TLS, both tiers TLS only
    /// (one CA), so every URL is `rediss://`. `sentinel_password` is the sentinels' own.
    pub fn start_with(
        name: &str,
        options: &Options,
        sentinel_password: Option<&str>,
    ) -> RedisSentinel {
        let dir = tempfile::tempdir().expect("temp dir");
        let access = options.access(dir.path());
        let primary = start_data(dir.path(), None, &access);
        let replica = start_data(dir.path(), Some(primary.port), &access);
        let mut s = RedisSentinel {
            name: name.to_owned(),
            data: vec![primary, replica],
            sentinels: vec![],
            access,
            dir,
        };
        // The replica in sync first: a sentinel's first INFO of the primary then lists it.
        s.wait_replica_synced(1);
        let conf = SentinelConf {
            name,
            primary: s.data[0].port,
            data_password: s.access.password.as_deref(),
            access: s.access.with_password(sentinel_password),
        };
        let sentinels = (0..3)
            .map(|_| start_sentinel(s.dir.path(), &conf))
            .collect();
        s.sentinels = sentinels;
        s.wait_sentinels_know_all();
        s
    }

    fn wait_replica_synced(&self, i: usize) {
        let n = &self.data[i];
        poll(
            "the replica's link to its primary",
            SETTLE,
            || self.logs(),
            || {
                let info: String = n.query(&cmd(&["INFO", "replication"])).ok()?;
                (info_field(&info, "master_link_status") == Some("up")).then_some(())
            },
        );
    }

    fn wait_sentinels_know_all(&self) {
        let what = "every sentinel to know the primary, its replica and the other two";
        poll(
            what,
            SETTLE,
            || self.logs(),
            || {
                self.sentinels
                    .iter()
                    .all(|s| self.knows_all(s))
                    .then_some(())
            },
        );
    }

    fn knows_all(&self, s: &Node) -> bool {
        let reply: Result<Vec<String>, _> = s.query(&cmd(&["SENTINEL", "MASTER", &self.name]));
        let Ok(fields) = reply else { return false };
        let get = |k: &str| {
            let i = fields.iter().position(|f| f == k)?;
            fields.get(i + 1).map(String::as_str)
        };
        get("flags") == Some("master")
            && get("num-other-sentinels") == Some("2")
            && get("num-slaves") == Some("1")
    }

    /// The last lines of all five logs.
    pub fn logs(&self) -> String {
        logs(self.data.iter().chain(&self.sentinels))
    }

    /// Its temp dir (configs, data dirs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The name the sentinels monitor the primary as.
    pub fn master_name(&self) -> &str {
        &self.name
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` with TLS, with `:<password>@` if set) of every
    /// sentinel.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(Node::url).collect()
    }

    /// [`Self::sentinel_urls`] comma-separated.
    pub fn sentinel_env(&self) -> String {
        self.sentinel_urls().join(",")
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|n| n.port).collect()
    }

    /// The data nodes' password, if any.
    pub fn data_password(&self) -> Option<&str> {
        self.access.password.as_deref()
    }

    /// The CA and certificate both tiers were started with, if TLS.
    pub fn tls(&self) -> Option<&Tls> {
        self.access.tls.as_deref()
    }

    /// A client for a data node (trusting the test's CA with TLS).
    pub fn data_client(&self, port: u16) -> ::redis::Client {
        self.access.client(port)
    }

    /// `redis://` (`rediss://` with TLS) `127.0.0.1:<port>` of a data node, with the data
    /// password if set.
    pub fn data_url(&self, port: u16) -> String {
        self.access.url(port)
    }

    /// The primary's port as the first sentinel that answers reports it
    /// (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
    pub fn primary_port(&self) -> u16 {
        poll(
            "a sentinel's primary address",
            SETTLE,
            || self.logs(),
            || self.sentinels.iter().find_map(|s| self.reported_primary(s)),
        )
    }

    fn reported_primary(&self, s: &Node) -> Option<u16> {
        let addr: (String, String) = s
            .query(&cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.name]))
            .ok()?;
        addr.1.parse().ok()
    }

    /// The other data node's port (the replica; after a failover, the killed old primary).
    pub fn replica_port(&self) -> u16 {
        let p = self.primary_port();
        self.data
            .iter()
            .find(|n| n.port != p)
            .expect("two data nodes")
            .port
    }

    /// SIGKILLs the current primary (no graceful shutdown). It stays dead. Returns its port.
    pub fn kill_primary(&self) -> u16 {
        let p = self.primary_port();
        let node = self.data.iter().find(|n| n.port == p);
        node.unwrap_or_else(|| panic!("the sentinels report {p}, not ours"))
            .kill();
        p
    }

    /// Waits until every sentinel reports a primary other than `old_port`, the same one, and
    /// that node answers `ROLE` as master. Returns its port.
    pub fn wait_failover(&self, old_port: u16) -> u16 {
        let what = format!("the sentinels to promote a replica over {old_port}");
        poll(
            &what,
            SETTLE,
            || self.logs(),
            || {
                let ports: Vec<u16> = (self.sentinels.iter())
                    .map(|s| self.reported_primary(s))
                    .collect::<Option<_>>()?;
                let p = ports[0];
                (p != old_port && ports.iter().all(|&q| q == p) && self.is_master(p)).then_some(p)
            },
        )
    }

    fn is_master(&self, port: u16) -> bool {
        let role: Result<Vec<::redis::Value>, _> = self.access.query(port, &cmd(&["ROLE"]));
        match role.as_deref() {
            Ok([::redis::Value::BulkString(r), ..]) => r == b"master",
            Ok([::redis::Value::SimpleString(r), ..]) => r == "master",
            _ => false,
        }
    }
}
