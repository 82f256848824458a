//! [`RedisCluster`]: a real six-node Redis Cluster (three masters, three replicas) owned by one
//! test: `redis-server --cluster-enabled yes` on free loopback ports below 55535 (each node's
//! bus port, port + 10000, free too), its own temp dir, created by `redis-cli --cluster create`
//! and waited for until every node agrees. Owns the test's failures too: SIGKILL of a master
//! and the wait for its replica's promotion, and a one-slot migration the way
//! `redis-cli --cluster reshard` does it. Plain or TLS only (`tls-cluster`, `tls-replication`),
//! with or without a password ([`Options`]). Every node is SIGKILLed on drop. Never port 6379.
//! `HERALD_REDIS_SERVER` overrides the server binary, `HERALD_REDIS_CLI` `redis-cli`.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::node::{Access, Node, Options, cmd, gave_up, info_field, logs, poll, server_bin};
use crate::tls::Tls;

/// How long creation, a failover or a migration may take before the test fails.
const SETTLE: Duration = Duration::from_secs(30);

/// A running six-node Redis Cluster of one test.
///
/// Every method blocks (a wait is a poll bounded by a deadline). An async test that needs
/// herald to keep running meanwhile calls it from `tokio::task::spawn_blocking` on an
/// `Arc<RedisCluster>` (it is `Send + Sync`).
pub struct RedisCluster {
    nodes: Vec<Node>,
    /// The replica each killed master had, for [`RedisCluster::wait_failover`].
    promoted: Mutex<HashMap<u16, u16>>,
    access: Access,
    dir: tempfile::TempDir,
}

/// One line of `CLUSTER NODES`: a node as some node sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    id: String,
    port: u16,
    master: bool,
    fail: bool,
    master_id: Option<String>,
    slots: Vec<(u16, u16)>,
}

impl Entry {
    fn parse(line: &str) -> Option<Entry> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let addr = f.get(1)?.split(['@', ',']).next()?;
        let flags: Vec<&str> = f.get(2)?.split(',').collect();
        if flags.iter().any(|x| ["handshake", "noaddr"].contains(x)) {
            return None; // not yet known to everyone: never agreement
        }
        Some(Entry {
            id: f[0].to_owned(),
            port: addr.rsplit(':').next()?.parse().ok()?,
            master: flags.contains(&"master"),
            fail: flags.contains(&"fail"),
            master_id: f.get(3).filter(|m| **m != "-").map(|m| (*m).to_owned()),
            slots: f.iter().skip(8).filter_map(|s| slot_range(s)).collect(),
        })
    }

    fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

/// `5461` or `0-5460`; `None` for the `[slot->-id]` migration markers.
fn slot_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A free port below 55535 whose bus port (+10000) is free too: 10000..20000, so the bus ports
/// (20000..30000) sit below Linux's ephemeral range and no data port is another node's bus.
fn free_cluster_port() -> u16 {
    for _ in 0..1000 {
        let p = fastrand::u16(10000..20000);
        if TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok()
        {
            return p;
        }
    }
    panic!("no free loopback port pair (P, P+10000) in 10000..20000");
}

fn start_node(dir: &Path, access: &Access) -> Node {
    let mut log = dir.join("none.log");
    for _ in 0..10 {
        let port = free_cluster_port();
        let data = dir.join(port.to_string());
        std::fs::create_dir_all(&data).expect("node dir");
        log = dir.join(format!("redis-{port}.log"));
        let mut args = access.listen_args(port);
        args.extend(node_args(port, dir, &data, &log));
        if access.tls.is_some() {
            args.extend(["--tls-cluster", "yes"].map(String::from));
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

fn node_args(port: u16, dir: &Path, data: &Path, log: &Path) -> Vec<String> {
    let conf = dir.join(format!("nodes-{port}.conf"));
    let mut a: Vec<String> = [
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-node-timeout",
        "1000",
        // A replica always counts as recent enough to take over: a loaded machine that delays
        // its pings must not leave a dead master's slots unserved.
        "--cluster-replica-validity-factor",
        "0",
        // The topology a test asked for stays: no replica wanders to another master.
        "--cluster-allow-replica-migration",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync-delay",
        "0",
    ]
    .map(String::from)
    .into();
    for (k, v) in [
        ("--cluster-config-file", &conf),
        ("--dir", &data.to_path_buf()),
    ] {
        a.extend([k.to_owned(), v.display().to_string()]);
    }
    a.extend(["--logfile".to_owned(), log.display().to_string()]);
    a
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster (three masters, one replica each) and waits
    /// until every node reports `cluster_state:ok`, all 16384 slots, the same topology and
    /// (each replica) its link to its master up.
    pub fn start() -> RedisCluster {
        Self::start_with(&Options::default())
    }

    /// [`Self::start`] with `requirepass` and `masterauth` `password` on every node; every URL
    /// this returns carries it.
    pub fn start_with_password(password: &str) -> RedisCluster {
        Self::start_with(&Options::default().password(password))
    }

    /// [`Self::start`] as `options` say: a password on every node (`requirepass`,
    /// `masterauth`), TLS only (clients, cluster bus and replication; every URL `rediss://`).
    pub fn start_with(options: &Options) -> RedisCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let access = options.access(dir.path());
        let nodes = (0..6).map(|_| start_node(dir.path(), &access)).collect();
        let c = RedisCluster {
            nodes,
            promoted: Mutex::new(HashMap::new()),
            access,
            dir,
        };
        c.create();
        c.wait_agreed("the new cluster to agree", |_| true);
        c
    }

    fn create(&self) {
        let cli = std::env::var("HERALD_REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
        let out = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .args(self.access.cli_args())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cli} (install redis-tools): {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
    }

    fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.alive())
    }

    fn node(&self, port: u16) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
    }

    /// The last lines of every node's log.
    pub fn logs(&self) -> String {
        logs(&self.nodes)
    }

    /// Its temp dir (node configs, data dirs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The nodes' password, if started with one.
    pub fn password(&self) -> Option<&str> {
        self.access.password.as_deref()
    }

    /// The CA and certificate its nodes were started with, if TLS.
    pub fn tls(&self) -> Option<&Tls> {
        self.access.tls.as_deref()
    }

    /// A client for one node (trusting the test's CA with TLS), for a plain connection.
    pub fn node_client(&self, port: u16) -> ::redis::Client {
        self.node(port).client()
    }

    /// Every node's port, killed ones too, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` with TLS, with `:<password>@` if set) for every
    /// live node.
    pub fn seed_urls(&self) -> Vec<String> {
        self.live().map(Node::url).collect()
    }

    /// [`Self::seed_urls`] comma-separated, for `REDIS_NODES`.
    pub fn seed_env(&self) -> String {
        self.seed_urls().join(",")
    }

    /// `redis://127.0.0.1:<port>` of one node, password included (for a plain connection).
    pub fn node_url(&self, port: u16) -> String {
        self.node(port).url()
    }

    /// The topology as `node` sees it, sorted; `None` while it cannot answer or still
    /// shakes hands with a node.
    fn view(node: &Node) -> Option<Vec<Entry>> {
        let text: String = node.query(&cmd(&["CLUSTER", "NODES"])).ok()?;
        let mut v: Vec<Entry> = text.lines().map(Entry::parse).collect::<Option<_>>()?;
        v.sort();
        Some(v)
    }

    /// The topology as the first live node that answers sees it.
    fn topology(&self) -> Vec<Entry> {
        poll(
            "a live node's CLUSTER NODES",
            SETTLE,
            || self.logs(),
            || self.live().find_map(Self::view),
        )
    }

    /// One poll of agreement: the common view, if every live node is healthy and sees it.
    fn agreed(&self) -> Option<Vec<Entry>> {
        let mut common: Option<Vec<Entry>> = None;
        for n in self.live() {
            let v = self.healthy_view(n)?;
            if common.get_or_insert_with(|| v.clone()) != &v {
                return None;
            }
        }
        common.filter(|v| self.consistent(v))
    }

    /// `n`'s view, if it reports the cluster ok with every slot and (a replica) its link up.
    fn healthy_view(&self, n: &Node) -> Option<Vec<Entry>> {
        let info: String = n.query(&cmd(&["CLUSTER", "INFO"])).ok()?;
        let ok = info_field(&info, "cluster_state") == Some("ok")
            && info_field(&info, "cluster_slots_assigned") == Some("16384");
        let repl: String = n.query(&cmd(&["INFO", "replication"])).ok()?;
        let synced = info_field(&repl, "role") == Some("master")
            || info_field(&repl, "master_link_status") == Some("up");
        (ok && synced).then(|| Self::view(n)).flatten()
    }

    /// Every node known, the dead ones (and only they) flagged `fail`.
    fn consistent(&self, v: &[Entry]) -> bool {
        let live: HashSet<u16> = self.live().map(|n| n.port).collect();
        v.len() == self.nodes.len() && v.iter().all(|e| e.fail != live.contains(&e.port))
    }

    fn wait_agreed(&self, what: &str, also: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
        poll(
            what,
            SETTLE,
            || self.logs(),
            || self.agreed().filter(|v| also(v)),
        )
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> u16 {
        let n = self.live().next().expect("a live cluster node");
        n.query(&cmd(&["CLUSTER", "KEYSLOT", key]))
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT {key}: {e}\n{}", self.logs()))
    }

    fn owner(v: &[Entry], slot: u16) -> &Entry {
        v.iter()
            .find(|e| e.master && !e.fail && e.owns(slot))
            .unwrap_or_else(|| panic!("no master serves slot {slot}: {v:?}"))
    }

    /// The port of the master currently serving `slot`.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        Self::owner(&self.topology(), slot).port
    }

    /// The port of the master currently serving `key`'s slot.
    pub fn master_of_key(&self, key: &str) -> u16 {
        self.master_of_slot(self.keyslot(key))
    }

    /// The ports of the live masters serving slots, sorted.
    pub fn masters(&self) -> Vec<u16> {
        let mut m: Vec<u16> = self
            .topology()
            .iter()
            .filter(|e| e.master && !e.fail && !e.slots.is_empty())
            .map(|e| e.port)
            .collect();
        m.sort();
        m
    }

    /// The port of the live replica of the master on `master_port`.
    pub fn replica_of(&self, master_port: u16) -> u16 {
        let v = self.topology();
        let id = &Self::entry(&v, master_port).id;
        v.iter()
            .find(|e| !e.fail && e.master_id.as_ref() == Some(id))
            .unwrap_or_else(|| panic!("master {master_port} has no live replica: {v:?}"))
            .port
    }

    fn entry(v: &[Entry], port: u16) -> &Entry {
        v.iter()
            .find(|e| e.port == port)
            .unwrap_or_else(|| panic!("no node on port {port} in {v:?}"))
    }

    /// `n` names `<prefix>a`, `<prefix>b`, … (the first that fit) whose slots are served by
    /// `n` different masters, in the order found. A name's slot is that of the whole name
    /// (`prefix` must hold no `{`), which is also the slot of herald's `{<name>}:…` keys.
    pub fn keys_on_distinct_masters(&self, prefix: &str, n: usize) -> Vec<String> {
        assert!(
            !prefix.contains('{'),
            "{prefix:?}: a hash tag would pin every name's slot"
        );
        let v = self.topology();
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        for i in 0..10_000 {
            if keys.len() == n {
                return keys;
            }
            let key = format!("{prefix}{}", suffix(i));
            if seen.insert(Self::owner(&v, self.keyslot(&key)).port) {
                keys.push(key);
            }
        }
        panic!("no {n} keys with prefix {prefix:?} on distinct masters (there are 3)");
    }

    /// SIGKILLs the master on `port` (no graceful shutdown). It stays dead.
    pub fn kill_master(&self, port: u16) {
        let v = self.topology();
        assert!(
            Self::entry(&v, port).master,
            "node {port} is not a master: {v:?}"
        );
        let replica = self.replica_of(port);
        self.promoted.lock().unwrap().insert(port, replica);
        self.node(port).kill();
    }

    /// Waits until the killed master's replica reports role master, serves its slots, and
    /// every surviving node reports `cluster_state:ok` with all slots and the same topology.
    /// Returns the promoted replica's port.
    pub fn wait_failover(&self, old_master_port: u16) -> u16 {
        let replica = *self
            .promoted
            .lock()
            .unwrap()
            .get(&old_master_port)
            .unwrap_or_else(|| panic!("kill_master({old_master_port}) first"));
        let what = format!("replica {replica} to take over from master {old_master_port}");
        self.wait_agreed(&what, |v| {
            let role: Option<String> = self
                .node(replica)
                .query(&cmd(&["INFO", "replication"]))
                .ok();
            role.as_deref().and_then(|r| info_field(r, "role")) == Some("master")
                && Self::entry(v, replica).master
        });
        replica
    }

    /// Moves `slot` with its keys to the master on `to_master_port`, the way
    /// `redis-cli --cluster reshard` does (IMPORTING/MIGRATING, `MIGRATE` in batches, `SETSLOT
    /// NODE` on every master); clients may keep writing meanwhile (they get `ASK`). Waits
    /// until every node agrees on the new owner.
    pub fn migrate_slot(&self, slot: u16, to_master_port: u16) {
        let v = self.topology();
        let (src, dst) = (Self::owner(&v, slot), Self::entry(&v, to_master_port));
        assert!(
            dst.master && !dst.fail,
            "{to_master_port} is not a live master"
        );
        if src.port == dst.port {
            return;
        }
        let s = slot.to_string();
        self.run(dst.port, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &src.id]);
        self.run(src.port, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst.id]);
        self.move_keys(slot, src.port, dst.port);
        let others = v
            .iter()
            .filter(|e| e.master && !e.fail && e.port != dst.port);
        for port in [dst.port, src.port]
            .into_iter()
            .chain(others.map(|e| e.port))
        {
            self.run(port, &["CLUSTER", "SETSLOT", &s, "NODE", &dst.id]);
        }
        let what = format!("slot {slot} to be on {to_master_port} everywhere");
        self.wait_agreed(&what, |v| Self::owner(v, slot).port == to_master_port);
    }

    /// `MIGRATE`s the slot's keys from `src` to `dst`, 100 at a time, until none are left.
    fn move_keys(&self, slot: u16, src: u16, dst: u16) {
        let (s, d) = (slot.to_string(), dst.to_string());
        loop {
            let keys: Vec<String> = self
                .node(src)
                .query(&cmd(&["CLUSTER", "GETKEYSINSLOT", &s, "100"]))
                .unwrap_or_else(|e| panic!("GETKEYSINSLOT {slot} on {src}: {e}\n{}", self.logs()));
            if keys.is_empty() {
                return;
            }
            if let Err(e) = self.node(src).query::<()>(&self.migrate(&d, &keys)) {
                panic!(
                    "MIGRATE of slot {slot} {src} -> {dst}: {e}\n{}",
                    self.logs()
                );
            }
        }
    }

    /// `MIGRATE 127.0.0.1 <port> "" 0 10000 REPLACE [AUTH <password>] KEYS <keys…>`.
    fn migrate(&self, port: &str, keys: &[String]) -> ::redis::Cmd {
        let mut m = cmd(&["MIGRATE", "127.0.0.1", port, "", "0", "10000", "REPLACE"]);
        if let Some(pw) = &self.access.password {
            m.arg("AUTH").arg(pw);
        }
        m.arg("KEYS").arg(keys);
        m
    }

    fn run(&self, port: u16, args: &[&str]) {
        if let Err(e) = self.node(port).query::<()>(&cmd(args)) {
            panic!("{args:?} on {port}: {e}\n{}", self.logs());
        }
    }

    /// `(port, pid)` of every live node.
    pub fn node_pids(&self) -> Vec<(u16, u32)> {
        self.nodes
            .iter()
            .filter_map(|n| Some((n.port, n.pid()?)))
            .collect()
    }

    /// `(port, used_cpu_sys + used_cpu_user)` of every live node, from `INFO cpu`.
    pub fn cpu_seconds(&self) -> Vec<(u16, f64)> {
        self.live()
            .map(|n| {
                let info: String = n
                    .query(&cmd(&["INFO", "cpu"]))
                    .unwrap_or_else(|e| panic!("INFO cpu on {}: {e}", n.port));
                let f = |k| info_field(&info, k).and_then(|v| v.parse::<f64>().ok());
                let cpu = f("used_cpu_sys").unwrap_or(0.0) + f("used_cpu_user").unwrap_or(0.0);
                (n.port, cpu)
            })
            .collect()
    }
}

/// `a`…`z`, then `a1`…`z1`, `a2`…
fn suffix(i: usize) -> String {
    let letter = char::from(b'a' + (i % 26) as u8);
    match i / 26 {
        0 => letter.to_string(),
        k => format!("{letter}{k}"),
    }
}
