//! One Redis server: a pool of multiplexed connections ([`super::pool`]), and dedicated
//! connections opened from the same client.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, RedisResult};

use super::pool::{self, Pooled, Source};

#[derive(Clone)]
pub(super) struct Standalone {
    client: Arc<redis::Client>,
    pool: deadpool::managed::Pool<pool::Manager>,
}

impl Standalone {
    pub(super) fn open(info: ConnectionInfo, pool_size: usize) -> RedisResult<Standalone> {
        let client = Arc::new(redis::Client::open(info)?);
        let pool = pool::build(Source::Server(Arc::clone(&client)), pool_size);
        Ok(Standalone { client, pool })
    }

    pub(super) async fn get(&self) -> RedisResult<Pooled> {
        pool::get(&self.pool).await
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
