//! Connections to Redis, and the one way queue code sends a request.
//!
//! Owns: how herald reaches Redis in each `[redis] mode` (one server, a Redis Cluster, or the
//! primary a set of sentinels names), the connections for ordinary commands, dedicated
//! connections for blocking ones, and [`Redis::run`], which sends a command, pipeline or script
//! and names the queue and operation in any error. Does not own: what is sent (the rest of
//! `queue`), and which keys share a slot (`keys`).
//!
//! A blocking `BLMOVE` would stall every command pipelined behind it on a shared multiplexed
//! connection (redis-rs #453, #361), so each worker task blocks on a dedicated connection of its
//! own ([`Redis::dedicated`]) whose response timeout is above the block time. On a cluster that
//! connection is a cluster connection of its own, so `BLMOVE` goes to whichever node owns the
//! queue's slot now, and follows the slot when it moves.
//!
//! Every queue script and pipeline touches one hash slot. The few requests that touch keys of
//! several slots (the heartbeat, the reaper, the Pusher activity counts) are a [`Spread`]; a
//! broadcast's `PUBLISH`es go to one node ([`Redis::publish`]), which a cluster relays to all.
//!
//! TLS (`rediss://`) works in every mode through redis-rs's rustls, every connection verified
//! against the roots rustls-native-certs loads (the system's, or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR`); in sentinel mode the sentinels' scheme is the data nodes' too.
//! [`Redis::check`] names an untrusted certificate as such.

mod cluster;
mod sentinel;
mod standalone;

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value,
};
use redis::{ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use super::QueueError;
use crate::config::{RedisConfig, RedisMode};

/// The queue name in errors about keys that belong to no queue (`herald:processes`, the schema).
pub(crate) const NO_QUEUE: &str = "*";

/// Response timeout of ordinary connections. Generous, because a settle or reap script over a
/// big batch is one command; a hung server is still noticed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting to one server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Redis as herald reaches it: ordinary connections, and a way to open dedicated ones for
/// blocking commands. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub(crate) struct Redis {
    backend: Backend,
    durability: Durability,
}

/// `[redis] wait_replicas` and `wait_timeout`: how many replicas must hold a move before herald
/// acts on it.
#[derive(Clone, Copy, Default)]
struct Durability {
    replicas: u32,
    timeout: Duration,
}

#[derive(Clone)]
enum Backend {
    Standalone(standalone::Standalone),
    Cluster(cluster::Cluster),
    Sentinel(sentinel::Sentinel),
}

impl Redis {
    /// Prepares connections as `config` describes (its mode, URL or nodes); nothing is
    /// connected until first use.
    pub(crate) fn open(config: &RedisConfig, pool_size: usize) -> RedisResult<Redis> {
        let nodes = || {
            config
                .nodes
                .iter()
                .map(|u| u.expose().to_string())
                .collect()
        };
        let creds = Credentials::of(config);
        let durability = Durability {
            replicas: config.wait_replicas,
            timeout: config.wait_timeout,
        };
        let backend = match config.mode {
            RedisMode::Standalone => {
                let info = creds.apply(config.url.expose().into_connection_info()?);
                Backend::Standalone(standalone::Standalone::open(info, pool_size)?)
            }
            RedisMode::Cluster => Backend::Cluster(cluster::Cluster::open(nodes(), creds)?),
            RedisMode::Sentinel => Backend::Sentinel(sentinel::Sentinel::open(
                nodes(),
                &config.master_name,
                creds,
                pool_size,
            )?),
        };
        Ok(Redis {
            backend,
            durability,
        })
    }

    /// One server at `url` (a broadcast connection with a Redis of its own).
    pub(crate) fn open_url(url: &str, pool_size: usize) -> RedisResult<Redis> {
        let info = url.into_connection_info()?;
        Ok(Redis {
            backend: Backend::Standalone(standalone::Standalone::open(info, pool_size)?),
            durability: Durability::default(),
        })
    }

    /// A connection for non-blocking commands.
    pub(crate) async fn get(&self) -> RedisResult<Conn> {
        match &self.backend {
            Backend::Standalone(s) => s.get().await.map(Conn::Pooled),
            Backend::Cluster(c) => c.get().await.map(Conn::Cluster),
            Backend::Sentinel(s) => s.get().await.map(Conn::Sentinel),
        }
    }

    /// Sends `request` on an ordinary connection. An error names `queue` (or [`NO_QUEUE`]) and
    /// `op`, what herald was doing.
    pub(crate) async fn run<T: FromRedisValue + Send>(
        &self,
        queue: &str,
        op: &'static str,
        request: &impl Request,
    ) -> Result<T, QueueError> {
        let mut conn = self.get().await.map_err(failed(queue, op))?;
        request.send(&mut conn).await.map_err(failed(queue, op))
    }

    /// Sends commands that may touch keys of several hash slots, and returns their replies in
    /// order, each read as `T`: one pipeline where one server holds every key; on a cluster,
    /// each command to the node owning its key, all at once (so in no particular order).
    pub(crate) async fn run_spread<T: FromRedisValue>(
        &self,
        queue: &str,
        op: &'static str,
        spread: &Spread,
    ) -> Result<Vec<T>, QueueError> {
        if spread.0.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.get().await.map_err(failed(queue, op))?;
        let replies: Vec<Value> = match &mut conn {
            Conn::Cluster(c) => {
                let each = spread.0.iter().map(|cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async::<Value>(&mut c).await }
                });
                futures::future::try_join_all(each).await
            }
            other => {
                let mut pipe = redis::pipe();
                for cmd in &spread.0 {
                    pipe.add_command(cmd.clone());
                }
                pipe.query_async(other).await
            }
        }
        .map_err(failed(queue, op))?;
        replies
            .into_iter()
            .map(|v| redis::from_redis_value(v).map_err(|e| failed(queue, op)(e.into())))
            .collect()
    }

    /// Sends a pipeline of `PUBLISH`es to one node. A cluster relays classic pub/sub to every
    /// node, so channels of any slot share one request.
    pub(crate) async fn publish(&self, pipe: &Pipeline) -> RedisResult<()> {
        match self.get().await? {
            Conn::Cluster(mut c) => {
                use redis::cluster_routing::SingleNodeRoutingInfo;
                c.route_pipeline(
                    pipe.clone(),
                    0,
                    pipe.len(),
                    SingleNodeRoutingInfo::RandomPrimary,
                )
                .await
                .map(drop)
            }
            mut other => pipe.exec_async(&mut other).await,
        }
    }

    /// A connection of its own, for blocking commands that wait up to `block`.
    pub(crate) async fn dedicated(&self, block: Duration) -> RedisResult<Conn> {
        let timeout = block + Duration::from_secs(5);
        match &self.backend {
            Backend::Standalone(s) => s.dedicated(config(timeout)).await.map(Conn::Direct),
            Backend::Cluster(c) => c.dedicated(timeout).await.map(Conn::Cluster),
            Backend::Sentinel(s) => s.dedicated(config(timeout)).await.map(Conn::Direct),
        }
    }

    /// With `[redis] wait_replicas` set: waits (`WAIT`) until that many replicas hold every
    /// write made so far on `conn`, which just moved something in `key`'s slot. Returns how
    /// many acknowledged when that is fewer than wanted; `Ok(None)` when enough did, or when
    /// herald is not asked to wait.
    pub(crate) async fn replicated(&self, conn: &mut Conn, key: &str) -> RedisResult<Option<u32>> {
        let Durability { replicas, timeout } = self.durability;
        if replicas == 0 {
            return Ok(None);
        }
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis() as u64);
        let acked: u32 = match conn {
            Conn::Cluster(c) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let node = Route::with_key(key, SlotAddr::Master);
                let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(node));
                redis::from_redis_value(c.route_command(wait, to).await?)?
            }
            other => wait.query_async(other).await?,
        };
        Ok((acked < replicas).then_some(acked))
    }

    /// `PING` with a short timeout: is Redis reachable right now?
    pub(crate) async fn ping(&self) -> bool {
        self.check().await.is_ok()
    }

    /// `PING` with a short timeout (on a cluster, every node must answer), and why it failed:
    /// the client's error (a server's TLS certificate that is not trusted said so), or no
    /// answer in time.
    pub(crate) async fn check(&self) -> Result<(), Unanswered> {
        let ping = redis::cmd("PING");
        let probe = self.run::<String>(NO_QUEUE, "ping", &ping);
        match tokio::time::timeout(PING_TIMEOUT, probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if untrusted(&e.source) => Err(Unanswered::Untrusted(e)),
            Ok(Err(e)) => Err(Unanswered::Failed(e)),
            Err(_) => Err(Unanswered::Timeout),
        }
    }
}

/// How long [`Redis::check`] waits for `PONG`.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Why Redis did not answer [`Redis::check`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unanswered {
    /// A server's TLS certificate did not verify against this machine's roots.
    #[error(
        "the server's TLS certificate is not trusted ({0}); if a private CA signed it, point \
         SSL_CERT_FILE (a PEM file) or SSL_CERT_DIR at that CA"
    )]
    Untrusted(QueueError),
    /// Any other failure of the client.
    #[error("{0}")]
    Failed(QueueError),
    /// Nothing came back in time.
    #[error("no answer to PING within {PING_TIMEOUT:?}")]
    Timeout,
}

/// Whether `e` is rustls refusing the server's certificate (`invalid peer certificate: …`, an
/// unknown issuer, a wrong name, an expired one), however the mode's client wrapped it.
fn untrusted(e: &redis::RedisError) -> bool {
    e.to_string().contains("invalid peer certificate")
}

/// The data nodes' user and password from `[redis]`, over any a URL carries.
#[derive(Clone, Copy)]
struct Credentials<'c> {
    username: Option<&'c str>,
    password: Option<&'c str>,
}

impl<'c> Credentials<'c> {
    fn of(config: &'c RedisConfig) -> Credentials<'c> {
        let set = |s: &'c str| (!s.is_empty()).then_some(s);
        Credentials {
            username: set(&config.username),
            password: set(config.password.expose()),
        }
    }

    fn apply_to(self, mut redis: RedisConnectionInfo) -> RedisConnectionInfo {
        if let Some(u) = self.username {
            redis = redis.set_username(u);
        }
        if let Some(p) = self.password {
            redis = redis.set_password(p);
        }
        redis
    }

    fn apply(self, info: ConnectionInfo) -> ConnectionInfo {
        let redis = self.apply_to(info.redis_settings().clone());
        info.set_redis_settings(redis)
    }
}

/// The settings of every connection herald opens, with `response` as its response timeout.
fn config(response: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_response_timeout(Some(response))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
}

fn failed(queue: &str, op: &'static str) -> impl FnOnce(redis::RedisError) -> QueueError {
    let queue = queue.to_string();
    move |source| QueueError { queue, op, source }
}

/// Commands that may touch keys of several hash slots (see [`Redis::run_spread`]).
#[derive(Default)]
pub(crate) struct Spread(Vec<Cmd>);

impl Spread {
    /// Adds `cmd`; its reply comes back at this position.
    pub(crate) fn add(&mut self, cmd: Cmd) -> &mut Self {
        self.0.push(cmd);
        self
    }
}

/// A connection from [`Redis::get`] or [`Redis::dedicated`], whatever the mode.
pub(crate) enum Conn {
    /// From the standalone pool.
    Pooled(deadpool_redis::Connection),
    /// From the sentinel-mode pool: to the primary the sentinels named when it connected.
    Sentinel(sentinel::Pooled),
    /// A dedicated connection to one server.
    Direct(MultiplexedConnection),
    /// A cluster connection: routes each command to the node owning its slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Pooled(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Pooled(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Direct(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Pooled(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
            Conn::Direct(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Something sent to Redis in one round trip: a command, a pipeline or a script invocation.
pub(crate) trait Request {
    /// Sends it on `conn` and reads the reply as `T`.
    fn send<T: FromRedisValue + Send>(
        &self,
        conn: &mut (impl ConnectionLike + Send),
    ) -> impl Future<Output = RedisResult<T>> + Send;
}

impl Request for redis::Cmd {
    fn send<T: FromRedisValue + Send>(
        &self,
        conn: &mut (impl ConnectionLike + Send),
    ) -> impl Future<Output = RedisResult<T>> + Send {
        self.query_async(conn)
    }
}

impl Request for redis::Pipeline {
    fn send<T: FromRedisValue + Send>(
        &self,
        conn: &mut (impl ConnectionLike + Send),
    ) -> impl Future<Output = RedisResult<T>> + Send {
        self.query_async(conn)
    }
}

impl Request for redis::ScriptInvocation<'_> {
    fn send<T: FromRedisValue + Send>(
        &self,
        conn: &mut (impl ConnectionLike + Send),
    ) -> impl Future<Output = RedisResult<T>> + Send {
        self.invoke_async(conn)
    }
}
