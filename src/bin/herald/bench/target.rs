//! Where the bench's Redis is and what it is made of.
//!
//! Owns: the [`Endpoint`] (one server's URL or a cluster's seed nodes, the data nodes'
//! credentials, `wait_replicas`: what the child under test is given), and the live [`Target`]:
//! one plain connection per data node (a cluster's masters and replicas, found with
//! `CLUSTER NODES`), the master that owns a queue's slot, queue names whose slots sit on
//! distinct masters, the node the subscriber listens on, and per-node CPU and command counts.
//! Does not own: how the child's config file is written (`child`), what the figures mean
//! (`report`).

use std::time::Duration;

use herald::config::{RedisConfig, RedisMode, RedisUrl, Secret};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use super::measure::{command_calls, redis_cpu};
use super::{BenchError, Conn};

/// Standalone or cluster: the modes `herald bench` runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    Standalone,
    Cluster,
}

/// The Redis the bench and its child use. `Debug` masks every URL and the password.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(super) mode: Mode,
    /// The server (standalone) or the seed nodes (cluster).
    pub(super) urls: Vec<RedisUrl>,
    pub(super) username: String,
    pub(super) password: Secret,
    /// `[redis] wait_replicas` for the child.
    pub(super) wait_replicas: u32,
    pub(super) wait_timeout: Duration,
}

impl Endpoint {
    /// The config's `[redis]`, with `wait_replicas` for the child. Sentinel mode is refused:
    /// point the bench at the primary's URL instead.
    pub(crate) fn of(config: &RedisConfig, wait_replicas: u32) -> Result<Endpoint, BenchError> {
        let (mode, urls) = match config.mode {
            RedisMode::Standalone => (Mode::Standalone, vec![config.url.clone()]),
            RedisMode::Cluster => (Mode::Cluster, config.nodes.clone()),
            RedisMode::Sentinel => {
                return Err(BenchError::Failed(
                    "herald bench runs against one server or a cluster; for sentinel mode, \
                     point redis.url at the primary (mode = \"standalone\")"
                        .into(),
                ));
            }
        };
        Ok(Endpoint {
            mode,
            urls,
            username: config.username.clone(),
            password: config.password.clone(),
            wait_replicas,
            wait_timeout: config.wait_timeout,
        })
    }

    /// A local server or cluster the bench started itself (no credentials).
    pub(crate) fn local(mode: Mode, urls: &[String], wait_replicas: u32) -> Endpoint {
        Endpoint {
            mode,
            urls: urls
                .iter()
                .map(|u| RedisUrl::parse(u).expect("a local redis:// URL"))
                .collect(),
            username: String::new(),
            password: Secret::new(""),
            wait_replicas,
            wait_timeout: RedisConfig::default().wait_timeout,
        }
    }

    /// `url`'s connection info with the configured credentials over any in the URL.
    fn info(&self, url: &RedisUrl) -> Result<ConnectionInfo, BenchError> {
        let info = url.expose().into_connection_info()?;
        let mut settings = info.redis_settings().clone();
        if !self.username.is_empty() {
            settings = settings.set_username(&self.username);
        }
        if !self.password.is_empty() {
            settings = settings.set_password(self.password.expose());
        }
        Ok(info.set_redis_settings(settings))
    }
}

/// What a data node is in its deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// The one server of a standalone Redis.
    Server,
    /// A cluster master serving slots; its position among the masters (0-based).
    Master(usize),
    /// A replica of the master at that position.
    Replica(usize),
}

impl Role {
    /// `server`, `master 1`, `replica of 1`.
    pub(super) fn label(&self) -> String {
        match self {
            Role::Server => "server".into(),
            Role::Master(i) => format!("master {}", i + 1),
            Role::Replica(i) => format!("replica of {}", i + 1),
        }
    }
}

/// One data node and a plain connection to it.
pub(super) struct Node {
    /// `host:port`.
    pub(super) addr: String,
    port: u16,
    pub(super) role: Role,
    slots: Vec<(u16, u16)>,
    pub(super) client: redis::Client,
    pub(super) conn: Conn,
}

/// A node's counters at one moment: CPU seconds (`INFO cpu`) and commands (`INFO commandstats`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Counts {
    pub(super) cpu: f64,
    pub(super) calls: u64,
}

/// Commands the bench itself sends a node between two [`Target::sample`]s: the first
/// sample's `INFO commandstats` (counted once it ran) and both `INFO cpu`.
pub(super) const OWN_CALLS: u64 = 3;

/// The live deployment: every data node, masters first (in port order), then replicas in
/// their masters' order.
pub(super) struct Target {
    pub(super) mode: Mode,
    pub(super) nodes: Vec<Node>,
    subscriber: usize,
}

impl Target {
    /// Connects to every data node of `e`.
    pub(super) async fn connect(e: &Endpoint) -> Result<Target, BenchError> {
        if e.mode == Mode::Standalone {
            let node = node(e.info(&e.urls[0])?, Role::Server, Vec::new()).await?;
            return Ok(Target {
                mode: e.mode,
                nodes: vec![node],
                subscriber: 0,
            });
        }
        let (seed, text) = cluster_nodes(e).await?;
        let mut nodes = Vec::new();
        for entry in order(parse_cluster_nodes(&text)) {
            let info = at(&seed, &entry.host, entry.port);
            nodes.push(node(info, entry.role, entry.slots).await?);
        }
        // On a replica if there is one, so every message the subscriber gets crossed the
        // cluster bus (herald publishes each batch on a random master).
        let subscriber = nodes
            .iter()
            .position(|n| matches!(n.role, Role::Replica(_)))
            .unwrap_or(0);
        Ok(Target {
            mode: e.mode,
            nodes,
            subscriber,
        })
    }

    /// The node the subscriber (and the ceiling) uses.
    pub(super) fn subscriber(&self) -> &Node {
        &self.nodes[self.subscriber]
    }

    /// How many nodes serve slots (1 for a standalone server).
    pub(super) fn masters(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !matches!(n.role, Role::Replica(_)))
            .count()
    }

    /// The position in [`Target::nodes`] of the node that serves `key`.
    pub(super) async fn master_of(&mut self, key: &str) -> Result<usize, BenchError> {
        if self.mode == Mode::Standalone {
            return Ok(0);
        }
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut self.nodes[0].conn)
            .await?;
        self.nodes
            .iter()
            .position(|n| n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .ok_or_else(|| BenchError::Failed(format!("no master serves slot {slot} of {key}")))
    }

    /// A connection to the node that serves `key`.
    pub(super) async fn conn_for(&mut self, key: &str) -> Result<Conn, BenchError> {
        let i = self.master_of(key).await?;
        Ok(self.nodes[i].conn.clone())
    }

    /// `n` queue names `<base>:a`, `<base>:b`, … with queue `i` on master `i mod masters`: on
    /// a cluster, as many masters as possible each serve one of them.
    pub(super) async fn queues(&mut self, base: &str, n: usize) -> Result<Vec<String>, BenchError> {
        let masters = self.masters();
        let mut picked: Vec<Option<String>> = vec![None; n];
        for i in 0..10_000 {
            if picked.iter().all(Option::is_some) {
                break;
            }
            let name = format!("{base}:{}", suffix(i));
            let master = self.master_of(&name).await?;
            let free = (0..n).find(|&q| picked[q].is_none() && q % masters == master);
            if let Some(q) = free {
                picked[q] = Some(name);
            }
        }
        picked
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                BenchError::Failed(format!("no {n} queue names spread over the masters"))
            })
    }

    /// Every node's counters, in [`Target::nodes`] order.
    pub(super) async fn sample(&mut self) -> Result<Vec<Counts>, BenchError> {
        let mut counts = Vec::with_capacity(self.nodes.len());
        for n in &mut self.nodes {
            let calls = command_calls(&mut n.conn).await?;
            let cpu = redis_cpu(&mut n.conn).await?;
            counts.push(Counts { cpu, calls });
        }
        Ok(counts)
    }

    /// Fails if a cluster's masters changed (a failover during the run makes it void).
    pub(super) async fn check_unchanged(&mut self) -> Result<(), BenchError> {
        if self.mode == Mode::Standalone {
            return Ok(());
        }
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut self.nodes[0].conn)
            .await?;
        let now: Vec<(u16, Role)> = order(parse_cluster_nodes(&text))
            .into_iter()
            .map(|e| (e.port, e.role))
            .collect();
        let before: Vec<(u16, Role)> = self
            .nodes
            .iter()
            .map(|n| (n.port, n.role.clone()))
            .collect();
        if now != before {
            return Err(BenchError::Failed(format!(
                "the cluster's topology changed during the run (a failover?): {before:?} -> {now:?}"
            )));
        }
        Ok(())
    }

    /// Deletes every key of this run (on each master; one `DEL` per key, as keys on one node
    /// may sit in different slots).
    pub(super) async fn cleanup(&mut self, tag: &str) -> Result<(), BenchError> {
        for n in self.nodes.iter_mut() {
            if matches!(n.role, Role::Replica(_)) {
                continue;
            }
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("*herald:bench:{tag}*"))
                .query_async(&mut n.conn)
                .await?;
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("DEL").arg(k).ignore();
            }
            if !keys.is_empty() {
                pipe.query_async::<()>(&mut n.conn).await?;
            }
        }
        Ok(())
    }
}

/// The bench's connections wait long for a reply: a big preload pipeline on a loaded machine
/// is slow, and the bench is not what measures Redis's answer time.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// A client and connection for `info`.
pub(super) async fn connect(info: ConnectionInfo) -> Result<(redis::Client, Conn), BenchError> {
    let client = redis::Client::open(info)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(Duration::from_secs(10)));
    let conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    Ok((client, conn))
}

async fn node(
    info: ConnectionInfo,
    role: Role,
    slots: Vec<(u16, u16)>,
) -> Result<Node, BenchError> {
    let (addr, port) = match info.addr() {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => (format!("{h}:{p}"), *p),
        other => (other.to_string(), 0),
    };
    let (client, conn) = connect(info).await?;
    Ok(Node {
        addr,
        port,
        role,
        slots,
        client,
        conn,
    })
}

/// `CLUSTER NODES` from the first seed that answers, with that seed's connection info.
async fn cluster_nodes(e: &Endpoint) -> Result<(ConnectionInfo, String), BenchError> {
    let mut last = None;
    for url in &e.urls {
        let info = e.info(url)?;
        match connect(info.clone()).await {
            Ok((_, mut conn)) => {
                let text: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await?;
                return Ok((info, text));
            }
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| BenchError::Failed("redis.nodes is empty".into())))
}

/// `seed`'s settings (credentials, TLS) at another node's address.
fn at(seed: &ConnectionInfo, host: &str, port: u16) -> ConnectionInfo {
    let addr = match seed.addr().clone() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure,
            tls_params,
        },
        _ => ConnectionAddr::Tcp(host.to_owned(), port),
    };
    seed.clone().set_addr(addr)
}

/// One healthy node of a `CLUSTER NODES` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    id: String,
    host: String,
    port: u16,
    master_id: Option<String>,
    slots: Vec<(u16, u16)>,
}

/// The healthy nodes of a `CLUSTER NODES` reply (failed, handshaking and address-less ones
/// left out).
fn parse_cluster_nodes(text: &str) -> Vec<Line> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Line> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let addr = f.get(1)?.split(['@', ',']).next()?;
    let (host, port) = addr.rsplit_once(':')?;
    let flags = f.get(2)?;
    let down = ["fail", "fail?", "handshake", "noaddr"];
    if host.is_empty() || flags.split(',').any(|x| down.contains(&x)) {
        return None;
    }
    Some(Line {
        id: f[0].to_owned(),
        host: host.to_owned(),
        port: port.parse().ok()?,
        master_id: f.get(3).filter(|m| **m != "-").map(|m| (*m).to_owned()),
        slots: f.iter().skip(8).filter_map(|s| slot_range(s)).collect(),
    })
}

/// `5461` or `0-5460`; `None` for the `[slot->-id]` migration markers.
fn slot_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A node placed in the deployment.
#[derive(Debug, PartialEq, Eq)]
struct Placed {
    host: String,
    port: u16,
    role: Role,
    slots: Vec<(u16, u16)>,
}

/// Masters serving slots in port order, then each one's replicas (in port order); nodes that
/// are neither are left out.
fn order(lines: Vec<Line>) -> Vec<Placed> {
    let mut masters: Vec<&Line> = lines
        .iter()
        .filter(|l| l.master_id.is_none() && !l.slots.is_empty())
        .collect();
    masters.sort_by_key(|l| (l.host.clone(), l.port));
    let mut replicas: Vec<(usize, &Line)> = lines
        .iter()
        .filter_map(|l| {
            let of = l.master_id.as_ref()?;
            Some((masters.iter().position(|m| &m.id == of)?, l))
        })
        .collect();
    replicas.sort_by_key(|(i, l)| (*i, l.port));
    let placed = |l: &Line, role| Placed {
        host: l.host.clone(),
        port: l.port,
        role,
        slots: l.slots.clone(),
    };
    let mut out: Vec<Placed> = masters
        .iter()
        .enumerate()
        .map(|(i, l)| placed(l, Role::Master(i)))
        .collect();
    out.extend(
        replicas
            .into_iter()
            .map(|(i, l)| placed(l, Role::Replica(i))),
    );
    out
}

/// `a`…`z`, then `a1`…`z1`, `a2`…
fn suffix(i: usize) -> String {
    let letter = char::from(b'a' + (i % 26) as u8);
    match i / 26 {
        0 => letter.to_string(),
        k => format!("{letter}{k}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A six-node `CLUSTER NODES` reply as Redis 7 writes it, one replica failed, one node
    /// shaking hands, one slot migrating.
    const NODES: &str = "\
c1 127.0.0.1:17002@27002 master - 0 1 3 connected 10923-16383
a1 127.0.0.1:17000@27000,host-a myself,master - 0 1 1 connected 0-5460 [5461->-b1]
b1 127.0.0.1:17001@27001 master - 0 1 2 connected 5461-10922
r3 127.0.0.1:17005@27005 slave c1 0 1 3 connected
r1 127.0.0.1:17003@27003 slave a1 0 1 1 connected
r2 127.0.0.1:17004@27004 slave,fail b1 0 1 2 disconnected
h1 :0@0 handshake - 0 0 0 disconnected
";

    #[test]
    fn cluster_nodes_are_placed_masters_by_port_then_their_replicas() {
        let placed: Vec<(u16, Role)> = order(parse_cluster_nodes(NODES))
            .into_iter()
            .map(|p| (p.port, p.role))
            .collect();
        assert_eq!(
            placed,
            [
                (17000, Role::Master(0)),
                (17001, Role::Master(1)),
                (17002, Role::Master(2)),
                (17003, Role::Replica(0)),
                (17005, Role::Replica(2)),
            ]
        );
    }

    #[test]
    fn a_line_keeps_its_slots_without_migration_markers() {
        let a = parse_line(NODES.lines().nth(1).unwrap()).unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 17000));
        assert_eq!(a.slots, [(0, 5460)]);
        assert_eq!(
            parse_line("x 127.0.0.1:1@2 master - 0 1 1 connected 7 9-12")
                .unwrap()
                .slots,
            [(7, 7), (9, 12)]
        );
        assert!(parse_line(NODES.lines().nth(6).unwrap()).is_none());
    }

    #[test]
    fn endpoint_debug_shows_no_secret() {
        let mut e = Endpoint::local(
            Mode::Cluster,
            &["redis://:hunter2@127.0.0.1:7000".into()],
            1,
        );
        e.password = Secret::new("hunter3");
        let shown = format!("{e:?}");
        assert!(!shown.contains("hunter"), "{shown}");
    }

    #[test]
    fn suffixes_are_distinct_names() {
        assert_eq!(
            [suffix(0), suffix(25), suffix(26), suffix(53)],
            ["a", "z", "a1", "b2"]
        );
    }
}
