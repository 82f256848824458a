//! The pool of ordinary connections to one server: the standalone server, or the primary the
//! sentinels name. deadpool's managed pool with a manager of herald's own.
//!
//! Owns: opening a connection (from a client, or from whichever server the sentinels call the
//! primary now) and deciding whether a returned connection may be handed out again. Not after
//! an error that means the link or the server's role is gone (io, dropped, refused, a timeout,
//! `READONLY` from a demoted primary, `MASTERDOWN`); not after [`IDLE_CHECK`] unused, unless it
//! answers a `PING` first. Does not own: which commands run on it (`super::Redis`).
//!
//! Why not deadpool-redis's manager: it `PING`s on every checkout, which put a round trip
//! before every batch's `PUBLISH` pipeline and before every pickup from an idle queue; and in
//! sentinel mode it would keep a demoted primary's connection, which still answers `PING`.

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::Mutex;

use super::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT, config};

/// A connection unused for longer must answer a `PING` before it is handed out again: the
/// server (or a proxy) may have closed it meanwhile.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// A pooled connection.
pub(crate) type Pooled = managed::Object<Manager>;

/// Where new connections go.
pub(super) enum Source {
    Server(Arc<redis::Client>),
    /// Asked anew for every connection, so after a failover new ones reach the new primary.
    Sentinel(Box<Mutex<SentinelClient>>),
}

pub(crate) struct Manager {
    source: Source,
}

/// A pool of at most `size` connections from `source`.
pub(super) fn build(source: Source, size: usize) -> managed::Pool<Manager> {
    let create = match source {
        Source::Server(_) => CONNECT_TIMEOUT,
        // Asking the sentinels first, then connecting.
        Source::Sentinel(_) => CONNECT_TIMEOUT * 2,
    };
    managed::Pool::builder(Manager { source })
        .max_size(size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(create))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .expect("runtime is set, so the pool builds")
}

/// A connection from `pool`.
pub(super) async fn get(pool: &managed::Pool<Manager>) -> RedisResult<Pooled> {
    pool.get().await.map_err(|e| match e {
        managed::PoolError::Backend(e) => e,
        other => pool_error(other.to_string()),
    })
}

/// A pool failure that is not the server's (a timeout waiting for a free connection).
fn pool_error(message: String) -> RedisError {
    RedisError::from((redis::ErrorKind::Io, "connection pool", message))
}

impl Manager {
    /// A new connection to the server (the primary the sentinels name now), not pooled.
    pub(super) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        match &self.source {
            Source::Server(client) => {
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await
            }
            Source::Sentinel(sentinels) => {
                let primary = sentinels.lock().await.async_get_client().await?;
                primary
                    .get_multiplexed_async_connection_with_config(config)
                    .await
            }
        }
    }
}

impl managed::Manager for Manager {
    type Type = Watched;
    type Error = RedisError;

    async fn create(&self) -> RedisResult<Watched> {
        let conn = self.connect(&config(RESPONSE_TIMEOUT)).await?;
        Ok(Watched { conn, gone: false })
    }

    async fn recycle(&self, conn: &mut Watched, metrics: &Metrics) -> RecycleResult<RedisError> {
        if conn.gone {
            return Err(RecycleError::message(
                "the link or the server's role is gone",
            ));
        }
        if metrics.last_used() > IDLE_CHECK {
            let _: () = redis::cmd("PING").query_async(conn).await?;
        }
        Ok(())
    }
}

/// A connection that remembers whether it saw an error after which it may no longer reach the
/// server, or the primary.
pub(crate) struct Watched {
    conn: MultiplexedConnection,
    gone: bool,
}

/// An error after which this connection may no longer reach the server, or the primary.
fn gone_mark(e: &RedisError) -> bool {
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
            && gone_mark(e)
        {
            self.gone = true;
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
