//! The Pusher connections, as the dashboard shows them: circuit state, requests per minute by
//! status, the last requests. Every replica's requests are counted.
//!
//! Owns: [`ConnectionStatus`], put together from the config, the circuit key
//! (`broadcast::pusher::circuit`) and the request counts (`broadcast::pusher::activity`). Does
//! not own: either layout.

use super::{Ops, OpsError};
use crate::broadcast::pusher::{activity, circuit};
use crate::clock;
use crate::config::{AppsSource, ConnectionConfig};
use crate::queue::GlobalKeys;

pub use crate::broadcast::pusher::activity::{RecentRequest, RequestMinute};

/// A circuit's state, as every replica sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CircuitState {
    /// Requests go out.
    Closed,
    /// Nothing is sent until `until_ms`; deliveries are parked until the circuit closes.
    Open {
        /// When one request may probe (ms since the epoch).
        until_ms: u64,
        /// What opened it.
        reason: String,
    },
    /// Past its open time: the next batch sends one probe request, whose answer closes or
    /// reopens it.
    HalfOpen {
        /// What opened it.
        reason: String,
    },
}

/// One Pusher connection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionStatus {
    /// The connection's name (`broadcasting.connections.<name>`).
    pub name: String,
    /// `scheme://host[:port]` it sends to.
    pub endpoint: String,
    /// The app id (not a secret; the key and secret are not shown); for a multi-app connection,
    /// where its apps come from (`(apps: redis)`, `(apps: <dir>)`).
    pub app_id: String,
    /// Whether app id, key and secret are set (always, for a multi-app connection).
    pub configured: bool,
    /// Whether a setting routes events to it.
    pub in_use: bool,
    /// The shared circuit.
    pub circuit: CircuitState,
    /// Requests per minute by status, oldest first, the current minute last.
    pub minutes: Vec<RequestMinute>,
    /// The last requests, newest first (counted up to the last heartbeat of each replica).
    pub recent: Vec<RecentRequest>,
}

impl Ops {
    /// Every Pusher connection of the config, with the last `minutes` minutes of requests.
    pub async fn connections(&self, minutes: u64) -> Result<Vec<ConnectionStatus>, OpsError> {
        let keys = GlobalKeys::new(&self.config.redis.prefix);
        let now = clock::now_ms();
        let minutes = minutes.clamp(1, 1440);
        let mut out = Vec::new();
        for (name, c) in &self.config.broadcasting.connections {
            let ConnectionConfig::Pusher(p) = c else {
                continue;
            };
            let circuit = match circuit::read(&self.redis, &keys, name).await? {
                None => CircuitState::Closed,
                Some((until_ms, reason)) if until_ms > now => {
                    CircuitState::Open { until_ms, reason }
                }
                Some((_, reason)) => CircuitState::HalfOpen { reason },
            };
            let (minutes, recent) = activity::read(&self.redis, &keys, name, now, minutes).await?;
            out.push(ConnectionStatus {
                name: name.clone(),
                endpoint: p.base_url(),
                app_id: match p.apps_source() {
                    None => p.app_id.clone(),
                    Some(AppsSource::Redis) => "(apps: redis)".into(),
                    Some(AppsSource::Dir(d)) => format!("(apps: {})", d.display()),
                },
                configured: p.apps_source().is_some()
                    || !p.app_id.is_empty() && !p.key.is_empty() && !p.secret.is_empty(),
                in_use: self.config.used_by(name).is_some(),
                circuit,
                minutes,
                recent,
            });
        }
        Ok(out)
    }
}
