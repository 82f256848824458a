//! herald: a fast, reliable event-broadcasting queue worker.
//!
//! Producers `LPUSH` JSON envelopes onto a Redis list; herald reserves them in batches, runs the
//! listeners the registry names, broadcasts to Redis pub/sub (Laravel's format) and other
//! connections, and settles each envelope: acknowledged, retried for only the deliveries that
//! failed, or dead-lettered with its original bytes.
//!
//! # Layout, in the order an envelope flows
//!
//! - [`envelope`]: bytes → `Envelope`, or a `Rejection` (bad input is data, not a panic).
//! - [`queue`]: reserve into a per-task processing list; settle, delay, dead-letter; heartbeats
//!   and the reaper; every Redis key and Lua script.
//! - [`registry`]: event name → `Plan` (listeners, connections, channels, `broadcast_as`).
//! - [`listeners`] and [`broadcast`]: the deliveries; each returns one outcome per event.
//! - [`delivery`]: what a delivery is and how it fails (`DeliveryError::is_retryable`).
//! - [`settle`]: pure decision from outcomes to ack / retry pending / dead-letter.
//! - [`worker`]: the loop that calls the stages above, in order, and the maintenance loop.
//!
//! Around them: [`config`], [`metrics`], [`admin`] (`/metrics`, `/healthz`, `/readyz`),
//! [`migrate`] (keyspace versions), [`shutdown`] (signals), and [`Herald::run`], which wires it
//! all up and drains on shutdown.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod admin;
mod broadcast;
mod clock;
pub mod config;
pub mod delivery;
pub mod envelope;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
pub mod listeners;
pub mod metrics;
mod migrate;
pub mod ops;
mod queue;
mod registry;
mod settle;
pub mod shutdown;
mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use listeners::Listener;
use metrics::Metrics;
use queue::{GlobalKeys, Queue, QueueKeys, Redis, reaper};

/// Why herald could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error(transparent)]
    Schema(#[from] migrate::SchemaError),
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// What a started herald reports (for embedding programs and tests).
#[derive(Debug, Clone)]
pub struct Started {
    pub process_id: String,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
}

/// A herald worker process, ready to run.
pub struct Herald {
    config: Config,
    extra_listeners: Vec<(String, Arc<dyn Listener>)>,
    metrics: Arc<Metrics>,
    started: Option<tokio::sync::oneshot::Sender<Started>>,
}

impl Herald {
    pub fn new(config: Config) -> Herald {
        Herald {
            config,
            extra_listeners: Vec::new(),
            metrics: Arc::new(Metrics::new()),
            started: None,
        }
    }

    /// Registers a listener implemented in Rust under `name`, for `events.*.listeners`.
    pub fn with_listener(mut self, name: &str, listener: Arc<dyn Listener>) -> Herald {
        self.extra_listeners.push((name.to_string(), listener));
        self
    }

    /// Gets told once workers are running.
    pub fn on_started(mut self, tx: tokio::sync::oneshot::Sender<Started>) -> Herald {
        self.started = Some(tx);
        self
    }

    /// This instance's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` completes, then drains: stops reserving, lets in-flight batches
    /// finish within `worker.shutdown_timeout`, returns whatever is left to the queue.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Herald {
            config,
            extra_listeners,
            metrics,
            started,
        } = self;
        let extra_names: Vec<&str> = extra_listeners.iter().map(|(n, _)| n.as_str()).collect();
        config.check_listener_names(&extra_names)?;
        tokio::pin!(shutdown);

        let w = &config.worker;
        let pool_size = w.concurrency * w.queues.len() + 8;
        let redis = Redis::open(&config.redis.url, pool_size)?;
        let global = GlobalKeys::new(&config.redis.prefix);
        let queues: Vec<Queue> = w
            .queues
            .iter()
            .map(|q| {
                Queue::new(
                    redis.clone(),
                    QueueKeys::new(&config.redis.prefix, q),
                    config.failed.max_entries,
                )
            })
            .collect();

        // Wait for Redis (it may be starting next to us), unless told to stop first.
        let mut waited = false;
        while !redis.ping().await {
            if !waited {
                tracing::warn!(
                    message = "Waiting for Redis.",
                    url = %config::mask_url_password(&config.redis.url),
                );
                waited = true;
            }
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        migrate::check(&queues, &global).await?;

        // Deliveries, and the registry that indexes them.
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::Client, "http client", e.to_string()))
            })?;
        let mut listener_table = listeners::build(&config, &redis, &http);
        listener_table.extend(extra_listeners);
        let broadcasters = broadcast::build(&config, &redis, pool_size, &metrics)?;
        let listener_metrics = listener_table
            .iter()
            .map(|(n, _)| metrics.delivery(&format!("listener:{n}")))
            .collect();
        let connection_metrics = broadcasters
            .iter()
            .map(|(n, _)| metrics.delivery(&format!("broadcast:{n}")))
            .collect();
        let registry = registry::Registry::new(
            &config,
            listener_table.iter().map(|(n, _)| n.clone()).collect(),
            broadcasters.iter().map(|(n, _)| n.clone()).collect(),
        );
        let shared = Arc::new(worker::Shared {
            registry,
            listeners: listener_table.into_iter().map(|(_, l)| l).collect(),
            broadcasters: broadcasters.into_iter().map(|(_, b)| b).collect(),
            limits: config.limits.limits(),
            listener_metrics,
            connection_metrics,
            metrics: metrics.clone(),
            batch_size: w.batch_size,
            block_timeout: w.block_timeout,
        });

        // Register this process and its processing lists before reserving anything, so a
        // crash at any later moment leaves work that a reaper can find.
        let process_id = reaper::new_process_id();
        let processing: Vec<Vec<String>> = queues
            .iter()
            .map(|q| {
                (0..w.concurrency)
                    .map(|t| q.keys.processing(&process_id, t))
                    .collect()
            })
            .collect();
        let redis_ok = Arc::new(AtomicBool::new(true));
        let maintenance = worker::Maintenance {
            info: reaper::ProcessInfo {
                id: process_id.clone(),
                hostname: reaper::hostname(),
                pid: std::process::id(),
                queues: w.queues.clone(),
                concurrency: w.concurrency,
                started_at: clock::now_ms(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            global: global.clone(),
            queues: queues.clone(),
            processing: processing.clone(),
            heartbeat_interval: w.heartbeat_interval,
            process_timeout: w.process_timeout,
            promote_interval: w.promote_interval,
            metrics: metrics.clone(),
            redis_ok,
        };
        maintenance.heartbeat().await?;
        for q in &queues {
            metrics.init_queue(&q.keys.name);
        }

        let background = CancellationToken::new();
        let health = Arc::new(admin::Health::new(
            w.heartbeat_interval * 3 + Duration::from_secs(10),
        ));
        let mut metrics_addr = None;
        let mut admin_task = None;
        if !config.metrics.addr.is_empty() {
            let addr: SocketAddr = config.metrics.addr.parse().expect("validated");
            let (bound, handle) = admin::serve(
                addr,
                metrics.clone(),
                health.clone(),
                redis.clone(),
                background.clone(),
            )
            .await
            .map_err(|source| Error::Bind {
                addr: config.metrics.addr.clone(),
                source,
            })?;
            metrics_addr = Some(bound);
            admin_task = Some(handle);
        }
        // Its own token: heartbeats must go on through the drain (or another replica would
        // reap the batches still being finished) and stop before the lists are returned (or a
        // last heartbeat would register them again after they were unregistered).
        let maintenance_stop = CancellationToken::new();
        let maintenance_task = {
            let token = maintenance_stop.clone();
            let health = health.clone();
            tokio::spawn(async move {
                let ticker = async {
                    loop {
                        health.tick();
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                };
                tokio::select! {
                    _ = maintenance.run(token) => {}
                    _ = ticker => {}
                }
            })
        };

        // Worker tasks; one that panics is replaced (its batch is redelivered by the new one).
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut slots: HashMap<tokio::task::Id, (usize, usize)> = HashMap::new();
        let spawn = |tasks: &mut JoinSet<()>, slots: &mut HashMap<_, _>, qi: usize, t: usize| {
            let handle = tasks.spawn(worker::run_task(
                shared.clone(),
                queues[qi].clone(),
                processing[qi][t].clone(),
                stop.clone(),
            ));
            slots.insert(handle.id(), (qi, t));
        };
        for qi in 0..queues.len() {
            for t in 0..w.concurrency {
                spawn(&mut tasks, &mut slots, qi, t);
            }
        }
        tracing::info!(
            message = "herald started.",
            process = %process_id,
            queues = %w.queues.join(","),
            concurrency = w.concurrency,
            batch_size = w.batch_size,
            metrics = %metrics_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        );
        if let Some(tx) = started {
            let _ = tx.send(Started {
                process_id: process_id.clone(),
                metrics_addr,
            });
        }

        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(done) = tasks.join_next_with_id() => {
                    let id = match &done { Ok((id, _)) => *id, Err(e) => e.id() };
                    let Some((qi, t)) = slots.remove(&id) else { continue };
                    tracing::error!(message = "Worker task ended unexpectedly; restarting it.", queue = %queues[qi].keys.name, task = t, error = ?done.err());
                    spawn(&mut tasks, &mut slots, qi, t);
                }
            }
        }

        // Drain.
        tracing::info!(message = "Shutting down: finishing in-flight work.", timeout = ?w.shutdown_timeout);
        health.shutting_down.store(true, Ordering::Relaxed);
        stop.cancel();
        let drained = tokio::time::timeout(w.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!(
                message = "Shutdown timeout reached; returning unfinished work to the queue."
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        maintenance_stop.cancel();
        let _ = maintenance_task.await;
        let mut returned_all = true;
        for (q, lists) in queues.iter().zip(&processing) {
            match q.requeue(lists, false).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(message = "Returned unfinished envelopes to the queue.", queue = %q.keys.name, envelopes = n)
                }
                Err(e) => {
                    returned_all = false;
                    tracing::error!(message = "Could not return unfinished work; another process's reaper will.", error = %e);
                }
            }
        }
        if returned_all && let Err(e) = reaper::deregister(&redis, &global, &process_id).await {
            tracing::warn!(message = "Could not deregister; the reaper will.", error = %e);
        }
        background.cancel();
        if let Some(h) = admin_task {
            let _ = h.await;
        }
        tracing::info!(message = "herald stopped.");
        Ok(())
    }
}

/// Runs herald on `config` until `shutdown` completes (mini-redis's `server::run` shape).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    Herald::new(config).run(shutdown).await
}
