//! Where a test's herald keeps its queues: one `redis-server` or a six-node Redis Cluster,
//! behind one interface, so a reliability check is written once and runs on both. Owns how a
//! test reaches the node holding a key, pushes, lists keys on every node, and configures herald
//! for the deployment. Not the servers themselves (`herald-testkit`) and no failures: a test
//! that kills a node or moves a slot uses the `RedisCluster` directly.

use ::redis::aio::MultiplexedConnection;
use herald::Config;
use herald::ops::{Ops, QueueOps};
use herald_testkit::{RedisCluster, RedisServer};

use super::herald::{config_for, standalone_section};
use super::keys;

/// A test's Redis: one server, or a cluster (three masters, three replicas).
pub enum Deployment {
    Standalone(RedisServer),
    Cluster(RedisCluster),
}

impl Deployment {
    pub fn standalone() -> Deployment {
        Deployment::Standalone(RedisServer::start())
    }

    pub fn cluster() -> Deployment {
        Deployment::Cluster(RedisCluster::start())
    }

    /// The cluster, for what only a cluster has (replicas, node processes).
    pub fn as_cluster(&self) -> Option<&RedisCluster> {
        match self {
            Deployment::Cluster(c) => Some(c),
            Deployment::Standalone(_) => None,
        }
    }

    /// The `[redis]` section that points herald at it.
    pub fn section(&self) -> String {
        match self {
            Deployment::Standalone(r) => standalone_section(r),
            Deployment::Cluster(c) => cluster_section(c),
        }
    }

    /// A test config for it ([`config_for`]).
    pub fn config(&self, worker: &str, extra: &str) -> Config {
        config_for(&self.section(), worker, extra)
    }

    /// The default queue (`herald:default`) through herald's own operations API.
    pub fn queue(&self) -> QueueOps {
        Ops::new(&self.config("", "")).unwrap().queue(None)
    }

    /// A plain connection to the node serving `key`: every key of one queue (`{K}:…`) shares
    /// its slot, so one connection reads all of them.
    pub async fn conn_for(&self, key: &str) -> MultiplexedConnection {
        match self {
            Deployment::Standalone(r) => r.conn().await,
            Deployment::Cluster(c) => node_conn(&c.node_url(c.master_of_key(key))).await,
        }
    }

    /// A plain connection to every node that serves slots.
    async fn masters(&self) -> Vec<MultiplexedConnection> {
        match self {
            Deployment::Standalone(r) => vec![r.conn().await],
            Deployment::Cluster(c) => {
                let mut conns = Vec::new();
                for port in c.masters() {
                    conns.push(node_conn(&c.node_url(port)).await);
                }
                conns
            }
        }
    }

    /// Every key matching `pattern`, on whichever node it is.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut all = Vec::new();
        for mut c in self.masters().await {
            let found: Vec<String> = ::redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut c)
                .await
                .unwrap();
            all.extend(found);
        }
        all
    }

    /// `LPUSH`es `envelopes` onto `herald:default` ([`super::push_on`]).
    pub async fn push<T: ::redis::ToRedisArgs + Send + Sync>(&self, envelopes: &[T]) {
        super::push_on(&mut self.conn_for(keys::QUEUE).await, envelopes).await
    }
}

/// `[redis]` in cluster mode, seeded with every live node.
pub fn cluster_section(cluster: &RedisCluster) -> String {
    let nodes: Vec<String> = cluster
        .seed_urls()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    format!(
        "[redis]\nmode = \"cluster\"\nnodes = [{}]",
        nodes.join(", ")
    )
}

/// A plain (not cluster-aware) connection to one node.
pub async fn node_conn(url: &str) -> MultiplexedConnection {
    let client = ::redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}
