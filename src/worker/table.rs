//! The delivery table: every listener and broadcast connection this process can deliver to,
//! each with its id and its metrics, in one place.
//!
//! Owns: building the table from the config (and the listeners a program registered in code),
//! and the registry that indexes it: plans name deliveries by [`ListenerIx`] / [`ConnectionIx`],
//! positions in this table, so an id, its implementation and its metrics cannot drift apart.
//! Does not own: running deliveries (`process`) or routing (`registry`).

use std::sync::Arc;

use crate::broadcast::pusher::activity::RequestLog;
use crate::broadcast::{self, Broadcaster, BuildError};
use crate::config::{Config, ConfigError};
use crate::delivery::DeliveryId;
use crate::listeners::{self, Listener};
use crate::metrics::{DeliveryMetrics, Metrics};
use crate::queue::Redis;
use crate::registry::{ConnectionIx, ListenerIx, Registry};

/// One delivery target.
pub(crate) struct Slot<T: ?Sized> {
    /// `listener:<name>` or `broadcast:<connection>`.
    pub(crate) id: DeliveryId,
    /// What delivers.
    pub(crate) target: Arc<T>,
    /// Its counters and histograms, resolved once.
    pub(crate) metrics: DeliveryMetrics,
}

/// A delivery of the table, of either kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DeliveryIx {
    Listener(ListenerIx),
    Connection(ConnectionIx),
}

/// Every delivery target of the process.
pub(crate) struct Table {
    listeners: Vec<Slot<dyn Listener>>,
    connections: Vec<Slot<Broadcaster>>,
}

impl Table {
    /// The configured listeners and `extra` ones (registered in code), then every configured
    /// broadcast connection. Nothing is connected yet.
    pub(crate) fn build(
        config: &Config,
        extra: Vec<(String, Arc<dyn Listener>)>,
        redis: &Redis,
        http: &reqwest::Client,
        pool_size: usize,
        metrics: &Arc<Metrics>,
    ) -> Result<Table, BuildError> {
        let mut listeners = listeners::build(config, redis, http);
        listeners.extend(extra);
        let listeners = listeners
            .into_iter()
            .map(|(name, target)| slot(DeliveryId::Listener(name), target, metrics))
            .collect();
        let connections = broadcast::build(config, redis, pool_size, metrics)?
            .into_iter()
            .map(|(name, target)| slot(DeliveryId::Broadcast(name), target, metrics))
            .collect();
        Ok(Table {
            listeners,
            connections,
        })
    }

    /// The registry of `config`, indexing this table.
    pub(crate) fn registry(&self, config: &Config) -> Result<Registry, ConfigError> {
        let listeners = self.listeners.iter().map(|s| s.id.clone()).collect();
        let connections = self.connections.iter().map(|s| s.id.clone()).collect();
        Registry::new(config, listeners, connections)
    }

    pub(crate) fn listener(&self, ix: ListenerIx) -> &Slot<dyn Listener> {
        &self.listeners[ix.0]
    }

    pub(crate) fn connection(&self, ix: ConnectionIx) -> &Slot<Broadcaster> {
        &self.connections[ix.0]
    }

    /// Every connection, with its index.
    pub(crate) fn connections(&self) -> impl Iterator<Item = (ConnectionIx, &Slot<Broadcaster>)> {
        self.connections
            .iter()
            .enumerate()
            .map(|(i, s)| (ConnectionIx(i), s))
    }

    /// The request counts of every Pusher connection, for the maintenance loop to flush.
    pub(crate) fn request_logs(&self) -> Vec<Arc<RequestLog>> {
        (self.connections.iter())
            .filter_map(|s| match s.target.as_ref() {
                Broadcaster::Pusher(p) => Some(p.requests()),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn id(&self, ix: DeliveryIx) -> &DeliveryId {
        match ix {
            DeliveryIx::Listener(l) => &self.listener(l).id,
            DeliveryIx::Connection(c) => &self.connection(c).id,
        }
    }

    pub(crate) fn metrics(&self, ix: DeliveryIx) -> &DeliveryMetrics {
        match ix {
            DeliveryIx::Listener(l) => &self.listener(l).metrics,
            DeliveryIx::Connection(c) => &self.connection(c).metrics,
        }
    }
}

fn slot<T: ?Sized>(id: DeliveryId, target: Arc<T>, metrics: &Metrics) -> Slot<T> {
    Slot {
        metrics: metrics.delivery(&id.to_string()),
        id,
        target,
    }
}
