//! The operator HTTP endpoint on `metrics.addr`: `/metrics`, `/healthz`, `/readyz`.
//!
//! Owns: serving those three paths (everything else is 404) and the health state they read.
//! Does not own: the metrics themselves (`metrics`). No admin actions here: it is meant to be
//! reachable by Prometheus and the kubelet only.

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

use crate::metrics::Metrics;
use crate::queue::Redis;

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

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    redis: Redis,
}

/// Binds `addr` (port 0 picks a free one) and serves until `token` is cancelled. Returns the
/// bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    redis: Redis,
    token: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            metrics,
            health,
            redis,
        });
    let handle = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            token.cancelled().await;
        });
        if let Err(e) = server.await {
            tracing::error!(message = "Metrics server failed.", error = %e);
        }
    });
    Ok((bound, handle))
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
