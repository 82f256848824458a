//! A primary found through Sentinel. Each new connection asks the sentinels which server is the
//! primary now (redis-rs checks that server's `ROLE`), so after a failover, new connections go to
//! the promoted replica.
//!
//! TLS: with `rediss://` sentinels, the primary is reached over TLS too (see [`Sentinel::open`]).
//!
//! Connections are pooled by [`super::pool`], whose manager never hands out again a connection
//! that saw a failover's mark (the server gone, `READONLY` from a demoted primary, `MASTERDOWN`,
//! a timeout).

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, RedisConnectionInfo, RedisResult, TlsMode};
use tokio::sync::Mutex;

use super::Credentials;
use super::pool::{self, Pooled, Source};

#[derive(Clone)]
pub(super) struct Sentinel {
    pool: deadpool::managed::Pool<pool::Manager>,
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
        let pool = pool::build(Source::Sentinel(Box::new(Mutex::new(client))), pool_size);
        Ok(Sentinel { pool })
    }

    pub(super) async fn get(&self) -> RedisResult<Pooled> {
        pool::get(&self.pool).await
    }

    /// A connection of its own to the primary the sentinels name now.
    pub(super) async fn dedicated(
        &self,
        config: AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        self.pool.manager().connect(&config).await
    }
}
