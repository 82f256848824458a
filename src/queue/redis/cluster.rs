//! A Redis Cluster through redis-rs's cluster connection: it learns the slot map from the seed
//! nodes, sends each command to the node owning its key's slot, follows `MOVED` and `ASK`, and
//! refreshes the map when a slot moves or a replica is promoted.
//!
//! One cluster connection (multiplexed per node) carries every ordinary command of the process;
//! each blocking task gets a cluster connection of its own, with a response timeout above its
//! block time.
//!
//! TLS: `rediss://` seeds make every connection, to the seeds and to the nodes the slot map
//! names, TLS (redis-rs takes the first seed's scheme; the config allows only one), verified
//! against the system's roots or `SSL_CERT_FILE` / `SSL_CERT_DIR`.

use std::sync::Arc;
use std::time::Duration;

use redis::RedisResult;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use super::{CONNECT_TIMEOUT, Credentials, RESPONSE_TIMEOUT};

#[derive(Clone)]
pub(super) struct Cluster {
    seeds: Arc<Seeds>,
    client: Arc<ClusterClient>,
    shared: Arc<OnceCell<ClusterConnection>>,
}

/// What every cluster connection is built from.
struct Seeds {
    nodes: Vec<String>,
    username: Option<String>,
    password: Option<String>,
}

impl Cluster {
    /// Seeded by `nodes`; the first URL's credentials and TLS apply to every node, unless
    /// `creds` names others.
    pub(super) fn open(nodes: Vec<String>, creds: Credentials<'_>) -> RedisResult<Cluster> {
        let seeds = Seeds {
            nodes,
            username: creds.username.map(str::to_string),
            password: creds.password.map(str::to_string),
        };
        Ok(Cluster {
            client: Arc::new(seeds.builder(RESPONSE_TIMEOUT).build()?),
            seeds: Arc::new(seeds),
            shared: Arc::new(OnceCell::new()),
        })
    }

    /// The process's shared cluster connection, connected on first use.
    pub(super) async fn get(&self) -> RedisResult<ClusterConnection> {
        self.shared
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }

    pub(super) async fn dedicated(&self, response: Duration) -> RedisResult<ClusterConnection> {
        self.seeds
            .builder(response)
            .build()?
            .get_async_connection()
            .await
    }
}

impl Seeds {
    fn builder(&self, response: Duration) -> ClusterClientBuilder {
        let mut b = ClusterClientBuilder::new(self.nodes.clone())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(response);
        if let Some(u) = &self.username {
            b = b.username(u);
        }
        if let Some(p) = &self.password {
            b = b.password(p);
        }
        b
    }
}
