//! One Redis server: a `deadpool_redis` pool of multiplexed connections, and dedicated
//! connections opened from the same client.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, RedisResult};

use super::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT, config};

#[derive(Clone)]
pub(super) struct Standalone {
    client: std::sync::Arc<redis::Client>,
    pool: deadpool_redis::Pool,
}

impl Standalone {
    pub(super) fn open(info: ConnectionInfo, pool_size: usize) -> RedisResult<Standalone> {
        let client = std::sync::Arc::new(redis::Client::open(info.clone())?);
        let manager = deadpool_redis::Manager::new_with_config(info, config(RESPONSE_TIMEOUT))?;
        let pool = deadpool_redis::Pool::builder(manager)
            .max_size(pool_size)
            .runtime(deadpool_redis::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .expect("runtime is set, so the pool builds");
        Ok(Standalone { client, pool })
    }

    pub(super) async fn get(&self) -> RedisResult<deadpool_redis::Connection> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_redis::PoolError::Backend(e) => e,
            other => pool_error(other.to_string()),
        })
    }

    pub(super) async fn dedicated(
        &self,
        config: AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

/// A pool failure that is not the server's (a timeout waiting for a free connection).
pub(super) fn pool_error(message: String) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "connection pool", message))
}
