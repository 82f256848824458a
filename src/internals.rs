//! Not API: the pure stages of the per-event path, for herald's own benchmarks (`benches/`).
//!
//! Compiled only with the `internals` feature, which herald's dev-dependency on itself turns on
//! for its tests and benchmarks; a normal build has no such module. Nothing here is stable.

use bytes::Bytes;

use crate::broadcast::{Message, laravel_message};
use crate::clock::Clock;
use crate::config::Config;
use crate::delivery::{DeliveryId, DeliveryResult};
use crate::envelope::{self, Envelope, Limits};
use crate::registry::Registry;
use crate::settle;

/// The stages of the per-event path that do no I/O, built from a config as `herald run` builds
/// them (listeners are not run; connections are only named).
pub struct HotPath {
    registry: Registry,
    limits: Limits,
    config: Config,
}

impl HotPath {
    /// The registry and limits of `config`.
    pub fn new(config: &Config) -> HotPath {
        let connections = config.broadcasting.connections.keys().cloned();
        let connections = connections.map(DeliveryId::Broadcast).collect();
        HotPath {
            registry: Registry::new(config, Vec::new(), connections).expect("a usable config"),
            limits: config.limits.limits(),
            config: config.clone(),
        }
    }

    /// Decodes one envelope; panics on bad input (benchmarks feed good input).
    pub fn decode(&self, raw: Bytes) -> Envelope {
        envelope::decode(raw, &self.limits).expect("a valid envelope")
    }

    /// Routes one decoded envelope.
    pub fn plan(&self, env: &Envelope) -> impl Sized + use<> {
        self.registry.plan(env).expect("a routable envelope")
    }

    /// The Redis message for `env` under the name `name`, socket `socket`.
    pub fn redis_message(&self, env: &Envelope, name: &str, socket: Option<&str>) -> Vec<u8> {
        laravel_message(&Message {
            id: &env.id,
            name,
            channels: &env.channels,
            data: &env.data,
            socket,
            final_payload: env.final_payload,
            app: None,
        })
    }

    /// The settle decision for `env` given one outcome per delivery.
    pub fn decide(&self, env: &Envelope, results: &[(DeliveryId, DeliveryResult)]) -> bool {
        let clock = Clock { now_ms: 1 };
        let d = settle::decide("q", env, results, &self.config.retry, clock);
        d.retry.is_none() && d.dead.is_none()
    }

    /// decode → plan → Redis message → decision for every envelope of a batch, as the worker
    /// does per batch with every delivery succeeding; returns the bytes that would be published.
    pub fn batch(&self, raw: &[Bytes]) -> usize {
        let mut published = 0;
        for r in raw {
            let env = self.decode(r.clone());
            let plan = self.registry.plan(&env).expect("a routable envelope");
            let message = self.redis_message(&env, &plan.name, env.socket.as_deref());
            published += message.len() * plan.channels.len();
            let ok: Vec<(DeliveryId, DeliveryResult)> = self
                .registry
                .deliveries(&plan)
                .map(|d| (d, Ok(())))
                .collect();
            let d = settle::decide("q", &env, &ok, &plan.retry, Clock { now_ms: 1 });
            assert!(d.retry.is_none() && d.dead.is_none());
        }
        published
    }
}

/// A signed Pusher HTTP API query string (auth_version 1.0), as the broadcaster signs.
pub fn pusher_signed_query(
    key: &str,
    secret: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
) -> String {
    crate::broadcast::pusher::sign::signed_query(key, secret, "POST", path, body, timestamp)
}
