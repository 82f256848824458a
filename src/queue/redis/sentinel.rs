//! A primary found through Sentinel. Each new connection asks the sentinels which server is the
//! primary now (redis-rs checks that server's `ROLE`), so after a failover, new connections go to
//! the promoted replica.
//!
//! TLS: with `rediss://` sentinels, the primary is reached over TLS too (see [`Sentinel::open`]).
//!
//! Connections are pooled by a manager of herald's own: a connection that saw a failover's mark
//! (the server gone, `READONLY` from a demoted primary, `MASTERDOWN`, a timeout) is never handed
//! out again, where deadpool-redis's sentinel manager would keep one that still answers `PING`.

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisConnectionInfo, RedisError, RedisFuture};
use redis::{RedisResult, TlsMode, Value};
use tokio::sync::Mutex;

use super::standalone::pool_error;
use super::{CONNECT_TIMEOUT, Credentials, RESPONSE_TIMEOUT, config};

/// A pooled connection to the primary.
pub(crate) type Pooled = managed::Object<Manager>;

#[derive(Clone)]
pub(super) struct Sentinel {
    pool: managed::Pool<Manager>,
}

impl Sentinel {
    /// `sentinels`' own URLs carry the sentinels' credentials; `creds` are the data nodes'.
    /// The sentinels' scheme and database number apply to the data nodes too: `rediss://`
    /// sentinels mean a TLS primary (verified against the same roots, `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR` or the system's), as a sentinel with `tls-replication yes` reaches it.
    /// The config checks that every sentinel URL has the same scheme.
    pub(super) fn open(
        sentinels: Vec<String>,
        master_name: &str,
        creds: Credentials<'_>,
        pool_size: usize,
    ) -> RedisResult<Sentinel> {
        let first = redis::parse_redis_url(sentinels.first().map_or("", String::as_str));
        let tls = first.as_ref().is_some_and(|u| u.scheme() == "rediss");
        let db = first
            .as_ref()
            .and_then(|u| u.path().trim_start_matches('/').parse().ok())
            .unwrap_or(0);
        let data = creds.apply_to(RedisConnectionInfo::default().set_db(db));
        let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(data);
        if tls {
            node = node.set_tls_mode(TlsMode::Secure);
        }
        let client = SentinelClient::build(
            sentinels,
            master_name,
            Some(node),
            SentinelServerType::Master,
        )?;
        let manager = Manager {
            client: Mutex::new(client),
        };
        let pool = managed::Pool::builder(manager)
            .max_size(pool_size)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(CONNECT_TIMEOUT * 2))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .expect("runtime is set, so the pool builds");
        Ok(Sentinel { pool })
    }

    pub(super) async fn get(&self) -> RedisResult<Pooled> {
        self.pool.get().await.map_err(|e| match e {
            managed::PoolError::Backend(e) => e,
            other => pool_error(other.to_string()),
        })
    }

    /// A connection of its own to the primary the sentinels name now.
    pub(super) async fn dedicated(
        &self,
        config: AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        self.pool.manager().connect(&config).await
    }
}

pub(crate) struct Manager {
    client: Mutex<SentinelClient>,
}

impl Manager {
    async fn connect(&self, config: &AsyncConnectionConfig) -> RedisResult<MultiplexedConnection> {
        let primary = self.client.lock().await.async_get_client().await?;
        primary
            .get_multiplexed_async_connection_with_config(config)
            .await
    }
}

impl managed::Manager for Manager {
    type Type = Watched;
    type Error = RedisError;

    async fn create(&self) -> RedisResult<Watched> {
        let conn = self.connect(&config(RESPONSE_TIMEOUT)).await?;
        Ok(Watched {
            conn,
            failed_over: false,
        })
    }

    async fn recycle(&self, conn: &mut Watched, _: &Metrics) -> RecycleResult<RedisError> {
        if conn.failed_over {
            return Err(RecycleError::message("the primary failed or stepped down"));
        }
        Ok(())
    }
}

/// A connection to the primary that remembers whether it saw a failover's mark.
pub(crate) struct Watched {
    conn: MultiplexedConnection,
    failed_over: bool,
}

/// An error after which this connection may no longer reach the primary.
fn failover_mark(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

impl Watched {
    fn note<T>(&mut self, r: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &r
            && failover_mark(e)
        {
            self.failed_over = true;
        }
        r
    }
}

impl ConnectionLike for Watched {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let r = self.conn.req_packed_command(cmd).await;
            self.note(r)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let r = self.conn.req_packed_commands(cmd, offset, count).await;
            self.note(r)
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}
