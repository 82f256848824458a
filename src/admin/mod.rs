//! The operator HTTP server on `metrics.addr`: `/metrics`, `/healthz`, `/readyz` (always open,
//! for Prometheus and the kubelet), and the dashboard (`/`) with its JSON admin API (`/api/…`).
//!
//! Owns: the routes, the health state the probes read, and starting and stopping the server.
//! Files: `auth` (who may use the dashboard and API, the login form, the cross-origin rule),
//! `api` (the JSON admin API, every action through `ops`), `assets` (the page, embedded in the
//! binary). Does not own: the metrics (`metrics`) or any operator action (`ops`).

mod api;
mod assets;
mod auth;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::ops::Ops;
use crate::queue::Redis;

pub(crate) use self::auth::Access;

/// What the probes look at.
pub(crate) struct Health {
    /// Set when shutdown starts: the process must stop receiving traffic.
    pub shutting_down: AtomicBool,
    /// Last time (ms) the maintenance loop ticked.
    pub last_tick_ms: AtomicU64,
    /// How long without a tick means the process is stuck.
    pub stall_after: Duration,
}

impl Health {
    pub(crate) fn new(stall_after: Duration) -> Health {
        Health {
            shutting_down: AtomicBool::new(false),
            last_tick_ms: AtomicU64::new(crate::clock::now_ms()),
            stall_after,
        }
    }

    pub(crate) fn tick(&self) {
        self.last_tick_ms
            .store(crate::clock::now_ms(), Ordering::Relaxed);
    }

    fn alive(&self) -> bool {
        let last = self.last_tick_ms.load(Ordering::Relaxed);
        crate::clock::now_ms().saturating_sub(last) <= self.stall_after.as_millis() as u64
    }
}

/// Everything the handlers share.
#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    redis: Redis,
    ops: Arc<Ops>,
    access: Arc<Access>,
}

/// Binds `addr` (port 0 picks a free one) and serves until `token` is cancelled. Returns the
/// bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    config: &Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    redis: Redis,
    token: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let access = Arc::new(Access::for_address(bound, &config.admin.token));
    access.announce(bound);
    let state = AppState {
        ops: Arc::new(Ops::with_redis(redis.clone(), config)),
        metrics,
        health,
        redis,
        access,
    };
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(dashboard(state.clone()))
        .with_state(state);
    let handle = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            token.cancelled().await;
        });
        if let Err(e) = server.await {
            tracing::error!(message = "Admin server failed.", error = %e);
        }
    });
    Ok((bound, handle))
}

/// The page, its assets, the login form and the API, behind the access rules.
fn dashboard(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(assets::routes())
        .merge(auth::routes())
        .nest("/api", api::routes())
        .layer(axum::middleware::from_fn_with_state(state, auth::guard))
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.alive() {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "stalled: the maintenance loop stopped ticking\n",
        )
    }
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.shutting_down.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    let up = s.redis.ping().await;
    s.metrics.set_redis_up(up);
    if up {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable\n")
    }
}
