//! Connections to Redis, and the one way queue code sends a request.
//!
//! Owns: the pool for ordinary commands, dedicated connections for blocking ones, and
//! [`Redis::run`], which takes a pooled connection, sends a command, pipeline or script, and names
//! the queue and operation in any error. Does not own: what is sent (the rest of `queue`).
//!
//! Non-blocking commands go through a `deadpool_redis` pool of multiplexed connections. A
//! blocking `BLMOVE` would stall every command pipelined behind it on a shared multiplexed
//! connection (redis-rs #453, #361), so each worker task blocks on a dedicated connection of its
//! own ([`Redis::dedicated`]) whose response timeout is above the block time.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, FromRedisValue, RedisResult};

use super::QueueError;

/// The queue name in errors about keys that belong to no queue (`herald:processes`, the schema).
pub(crate) const NO_QUEUE: &str = "*";

/// A connection to one Redis server: a pool for ordinary commands, and a way to open dedicated
/// connections for blocking ones.
#[derive(Clone)]
pub(crate) struct Redis {
    client: redis::Client,
    pool: deadpool_redis::Pool,
}

/// Response timeout of pooled connections. Generous, because a settle or reap script over a big
/// batch is one command; a hung server is still noticed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

impl Redis {
    /// Prepares connections to `url`; nothing is connected until first use.
    pub(crate) fn open(url: &str, pool_size: usize) -> Result<Redis, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let manager = deadpool_redis::Manager::new_with_config(
            url,
            AsyncConnectionConfig::new()
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_connection_timeout(Some(Duration::from_secs(5))),
        )?;
        let pool = deadpool_redis::Pool::builder(manager)
            .max_size(pool_size)
            .runtime(deadpool_redis::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .expect("runtime is set, so the pool builds");
        Ok(Redis { client, pool })
    }

    /// A pooled connection for non-blocking commands.
    pub(crate) async fn get(&self) -> Result<deadpool_redis::Connection, redis::RedisError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_redis::PoolError::Backend(e) => e,
            other => redis::RedisError::from((
                redis::ErrorKind::Io,
                "connection pool",
                other.to_string(),
            )),
        })
    }

    /// Sends `request` on a pooled connection. An error names `queue` (or [`NO_QUEUE`]) and
    /// `op`, what herald was doing.
    pub(crate) async fn run<T: FromRedisValue + Send>(
        &self,
        queue: &str,
        op: &'static str,
        request: &impl Request,
    ) -> Result<T, QueueError> {
        let failed = |source| QueueError {
            queue: queue.to_string(),
            op,
            source,
        };
        let mut conn = self.get().await.map_err(failed)?;
        request.send(&mut conn).await.map_err(failed)
    }

    /// A connection of its own, for blocking commands that wait up to `block`.
    pub(crate) async fn dedicated(
        &self,
        block: Duration,
    ) -> Result<MultiplexedConnection, redis::RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(block + Duration::from_secs(5)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// `PING` with a short timeout: is the server reachable right now?
    pub(crate) async fn ping(&self) -> bool {
        let ping = redis::cmd("PING");
        let probe = self.run::<String>(NO_QUEUE, "ping", &ping);
        matches!(
            tokio::time::timeout(Duration::from_secs(2), probe).await,
            Ok(Ok(_))
        )
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
