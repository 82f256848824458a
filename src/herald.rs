//! [`Herald`]: one worker process, from its config to a clean exit.
//!
//! Owns: the three phases of [`Herald::run`]: *build* (everything that needs no Redis: config
//! checks, the delivery table and registry, connection handles), *start* (wait for Redis, check
//! the keyspace, register the process before reserving anything, serve `/metrics`, spawn the
//! maintenance loop and the worker tasks), *supervise* (replace a task that panicked) and
//! *drain* (stop reserving, let in-flight batches finish within `shutdown_timeout`, return what
//! is left, deregister). Does not own: what a task does (`worker`).
//!
//! **Invariant:** only this module and `worker` spawn long-lived tasks.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Health};
use crate::clock;
use crate::config::Config;
use crate::listeners::Listener;
use crate::metrics::Metrics;
use crate::migrate;
use crate::queue::{GlobalKeys, Queue, QueueKeys, Redis, reaper};
use crate::worker::{self, Maintenance, Pause, Shared, Table};

/// Why herald could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A Redis client could not be set up.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A Redis operation failed at start-up.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    /// The keyspace is at a version this herald cannot use.
    #[error(transparent)]
    Schema(#[from] migrate::SchemaError),
    /// The metrics (and dashboard) address cannot be bound.
    #[error("cannot serve metrics and the dashboard on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A broadcast connection cannot be built.
    #[error("broadcast connection {connection}: {message}")]
    Connection {
        /// Its name.
        connection: String,
        /// Why.
        message: String,
    },
}

/// What a started herald reports (for embedding programs and tests).
#[derive(Debug, Clone)]
pub struct Started {
    /// This process's id (`<host>:<pid>:<random>`), as heartbeats and processing lists name it.
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
    /// A process running `config`.
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
        let started = self.started;
        let built = Built::new(self.config, self.extra_listeners, self.metrics)?;
        tokio::pin!(shutdown);
        let Some(mut running) = built.start(&mut shutdown, started).await? else {
            return Ok(()); // told to stop while waiting for Redis
        };
        running.supervise(&mut shutdown).await;
        running.drain().await;
        Ok(())
    }
}

/// Everything a process needs that can be made without Redis answering.
struct Built {
    config: Config,
    redis: Redis,
    global: GlobalKeys,
    queues: Vec<Queue>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    /// Each queue's pause state (same order as `queues`).
    pauses: Vec<Arc<Pause>>,
}

impl Built {
    fn new(
        config: Config,
        extra: Vec<(String, Arc<dyn Listener>)>,
        metrics: Arc<Metrics>,
    ) -> Result<Built, Error> {
        let extra_names: Vec<&str> = extra.iter().map(|(n, _)| n.as_str()).collect();
        config.check_listener_names(&extra_names)?;
        let w = &config.worker;
        let pool_size = w.concurrency * w.queues.len() + 8;
        let redis = Redis::open(&config.redis, pool_size)?;
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Connection {
                connection: "(webhooks)".into(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let table =
            Table::build(&config, extra, &redis, &http, pool_size, &metrics).map_err(|e| {
                Error::Connection {
                    connection: e.connection,
                    message: e.message,
                }
            })?;
        let shared = Arc::new(Shared {
            registry: table.registry(&config)?,
            table,
            limits: config.limits.limits(),
            metrics: metrics.clone(),
            batch_size: w.batch_size,
            block_timeout: w.block_timeout,
        });
        let prefix = &config.redis.prefix;
        let failed_cap = config.failed.max_entries;
        let queues = (w.queues.iter())
            .map(|q| Queue::new(redis.clone(), QueueKeys::new(prefix, q), failed_cap))
            .collect();
        Ok(Built {
            pauses: (w.queues.iter())
                .map(|_| Arc::new(Pause::new(w.concurrency)))
                .collect(),
            global: GlobalKeys::new(prefix),
            queues,
            shared,
            metrics,
            redis,
            config,
        })
    }

    /// Waits for Redis (it may be starting next to us) unless told to stop first; `false` when
    /// told to stop.
    async fn wait_for_redis(&self, shutdown: &mut Pin<&mut impl Future<Output = ()>>) -> bool {
        let mut waited = false;
        while let Err(reason) = self.redis.check().await {
            if !waited {
                let url = self.config.redis.target();
                tracing::warn!(message = "Waiting for Redis.", url, reason = %reason);
                waited = true;
            }
            tokio::select! {
                _ = shutdown.as_mut() => return false,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        true
    }

    /// Checks the keyspace, registers the process and its processing lists before reserving
    /// anything (so a crash at any later moment leaves work a reaper can find), starts the
    /// admin server, the maintenance loop and the worker tasks.
    async fn start(
        self,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
        started: Option<tokio::sync::oneshot::Sender<Started>>,
    ) -> Result<Option<Running>, Error> {
        if !self.wait_for_redis(shutdown).await {
            return Ok(None);
        }
        migrate::check(&self.queues, &self.global).await?;
        let w = &self.config.worker;
        let process_id = reaper::new_process_id();
        let processing: Vec<Vec<String>> = (self.queues.iter())
            .map(|q| {
                (0..w.concurrency)
                    .map(|t| q.keys.processing(&process_id, t))
                    .collect()
            })
            .collect();
        let maintenance = self.maintenance(&process_id, &processing);
        maintenance.heartbeat().await?;
        for q in &self.queues {
            self.metrics.init_queue(&q.keys.name);
        }
        let health = Arc::new(Health::new(
            w.heartbeat_interval * 3 + Duration::from_secs(10),
        ));
        let background = CancellationToken::new();
        let admin = self.serve_admin(&health, &background).await?;
        let (metrics_addr, admin) = admin.unzip();
        let mut running = Running {
            maintenance: spawn_maintenance(maintenance, health.clone()),
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
            slots: HashMap::new(),
            built: self,
            process_id,
            processing,
            health,
            background,
            admin,
        };
        for q in 0..running.built.queues.len() {
            for t in 0..running.built.config.worker.concurrency {
                running.spawn(q, t);
            }
        }
        running.announce(metrics_addr, started);
        Ok(Some(running))
    }

    fn maintenance(&self, process_id: &str, processing: &[Vec<String>]) -> Maintenance {
        let w = &self.config.worker;
        Maintenance {
            info: reaper::ProcessInfo {
                id: process_id.to_string(),
                hostname: reaper::hostname(),
                pid: std::process::id(),
                queues: w.queues.clone(),
                concurrency: w.concurrency,
                started_at: clock::now_ms(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            global: self.global.clone(),
            queues: self.queues.clone(),
            processing: processing.to_vec(),
            heartbeat_interval: w.heartbeat_interval,
            process_timeout: w.process_timeout,
            promote_interval: w.promote_interval,
            metrics: self.metrics.clone(),
            redis_ok: Arc::new(AtomicBool::new(true)),
            requests: self.shared.table.request_logs(),
            pauses: self.pauses.clone(),
        }
    }

    /// `/metrics`, `/healthz`, `/readyz`, the dashboard and the admin API on `metrics.addr`,
    /// unless it is off.
    async fn serve_admin(
        &self,
        health: &Arc<Health>,
        token: &CancellationToken,
    ) -> Result<Option<(SocketAddr, JoinHandle<()>)>, Error> {
        let Some(addr) = self.config.metrics.addr else {
            return Ok(None);
        };
        let served = admin::serve(
            addr,
            &self.config,
            self.metrics.clone(),
            health.clone(),
            self.redis.clone(),
            token.clone(),
        )
        .await
        .map_err(|source| Error::Bind { addr, source })?;
        Ok(Some(served))
    }
}

/// The maintenance loop, with the health ticker the probes read. Its own token: heartbeats must
/// go on through the drain (or another replica would reap the batches still being finished) and
/// stop before the lists are returned (or a last heartbeat would register them again).
fn spawn_maintenance(
    maintenance: Maintenance,
    health: Arc<Health>,
) -> (CancellationToken, JoinHandle<()>) {
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
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
    });
    (stop, task)
}

/// A started process: its tasks and everything the drain needs.
struct Running {
    built: Built,
    process_id: String,
    /// Processing lists, per queue (same order as `built.queues`), per task.
    processing: Vec<Vec<String>>,
    health: Arc<Health>,
    maintenance: (CancellationToken, JoinHandle<()>),
    /// Cancels the worker tasks (between batches).
    stop: CancellationToken,
    tasks: JoinSet<()>,
    /// Which (queue, task) each running task is, to restart it in the same slot.
    slots: HashMap<tokio::task::Id, (usize, usize)>,
    /// Cancels the admin server, last.
    background: CancellationToken,
    admin: Option<JoinHandle<()>>,
}

impl Running {
    /// Starts worker task `t` of queue `q` on its own processing list.
    fn spawn(&mut self, q: usize, t: usize) {
        let handle = self.tasks.spawn(worker::run_task(
            self.built.shared.clone(),
            self.built.queues[q].clone(),
            self.processing[q][t].clone(),
            self.built.pauses[q].clone(),
            self.stop.clone(),
        ));
        self.slots.insert(handle.id(), (q, t));
    }

    fn announce(
        &self,
        metrics_addr: Option<SocketAddr>,
        started: Option<tokio::sync::oneshot::Sender<Started>>,
    ) {
        let w = &self.built.config.worker;
        tracing::info!(
            message = "herald started.",
            process = %self.process_id,
            queues = %w.queues.join(","),
            concurrency = w.concurrency,
            batch_size = w.batch_size,
            metrics = %metrics_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        );
        if let Some(tx) = started {
            let _ = tx.send(Started {
                process_id: self.process_id.clone(),
                metrics_addr,
            });
        }
    }

    /// Until `shutdown`: a task that ends (it panicked) is replaced in its slot; its batch is
    /// redelivered by the new one, counted as a crash.
    async fn supervise(&mut self, shutdown: &mut Pin<&mut impl Future<Output = ()>>) {
        loop {
            tokio::select! {
                _ = shutdown.as_mut() => return,
                Some(done) = self.tasks.join_next_with_id() => {
                    let id = match &done { Ok((id, _)) => *id, Err(e) => e.id() };
                    let Some((q, t)) = self.slots.remove(&id) else { continue };
                    tracing::error!(message = "Worker task ended unexpectedly; restarting it.", queue = %self.built.queues[q].keys.name, task = t, error = ?done.err());
                    self.spawn(q, t);
                }
            }
        }
    }

    /// Stops reserving, lets in-flight batches finish within `shutdown_timeout` (then aborts
    /// them), stops heartbeating, returns every processing list to its queue, deregisters.
    async fn drain(mut self) {
        let timeout = self.built.config.worker.shutdown_timeout;
        tracing::info!(message = "Shutting down: finishing in-flight work.", timeout = ?timeout);
        self.health.shutting_down.store(true, Ordering::Relaxed);
        self.stop.cancel();
        let finished = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, finished).await.is_err() {
            tracing::warn!(
                message = "Shutdown timeout reached; returning unfinished work to the queue."
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        let (stop, maintenance) = self.maintenance;
        stop.cancel();
        let _ = maintenance.await;
        if return_lists(&self.built.queues, &self.processing).await {
            let b = &self.built;
            if let Err(e) = reaper::deregister(&b.redis, &b.global, &self.process_id).await {
                tracing::warn!(message = "Could not deregister; the reaper will.", error = %e);
            }
        }
        self.background.cancel();
        if let Some(h) = self.admin {
            let _ = h.await;
        }
        tracing::info!(message = "herald stopped.");
    }
}

/// Returns every processing list of this process to its queue; whether all went back (if not,
/// another process's reaper returns them once this one stops heartbeating).
async fn return_lists(queues: &[Queue], processing: &[Vec<String>]) -> bool {
    let mut all = true;
    for (q, lists) in queues.iter().zip(processing) {
        match q.requeue(lists, false).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(message = "Returned unfinished envelopes to the queue.", queue = %q.keys.name, envelopes = n)
            }
            Err(e) => {
                all = false;
                tracing::error!(message = "Could not return unfinished work; another process's reaper will.", error = %e);
            }
        }
    }
    all
}
