//! [`WebhookFake`]: a local HTTP endpoint (`POST /hook`) that records every request and answers
//! with a scripted status, for webhook listeners.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use tokio::sync::Notify;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    /// The request headers.
    pub headers: HeaderMap,
    /// The body, exactly.
    pub body: Bytes,
}

/// Decides a status from the request body (after the script ran out).
type Responder = Box<dyn FnMut(&[u8]) -> u16 + Send>;

struct Inner {
    requests: Vec<WebhookRequest>,
    /// Statuses to answer with, in order; then `responder` decides (200 without one).
    script: VecDeque<u16>,
    responder: Option<Responder>,
}

/// A running webhook endpoint; clones share it.
#[derive(Clone)]
pub struct WebhookFake {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
}

impl WebhookFake {
    /// Serves `POST /hook`, answering with `script` in order, then 200.
    pub async fn start(script: &[u16]) -> WebhookFake {
        Self::serve(script, None).await
    }

    /// Serves `POST /hook`, answering with whatever `responder` says for each body.
    pub async fn respond_with(responder: impl FnMut(&[u8]) -> u16 + Send + 'static) -> WebhookFake {
        Self::serve(&[], Some(Box::new(responder))).await
    }

    async fn serve(script: &[u16], responder: Option<Responder>) -> WebhookFake {
        let inner = Arc::new(Mutex::new(Inner {
            requests: Vec::new(),
            script: script.iter().copied().collect(),
            responder,
        }));
        let arrived = Arc::new(Notify::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hook", post(handle))
            .with_state((inner.clone(), arrived.clone()));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        WebhookFake {
            addr,
            inner,
            arrived,
        }
    }

    /// `http://<addr>/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<WebhookRequest> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<WebhookRequest> {
        crate::guard(&format!("{n} webhook calls"), async {
            loop {
                let notified = self.arrived.notified();
                let reqs = self.requests();
                if reqs.len() >= n {
                    return reqs;
                }
                notified.await;
            }
        })
        .await
    }
}

async fn handle(
    State((inner, arrived)): State<(Arc<Mutex<Inner>>, Arc<Notify>)>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let status = {
        let mut i = inner.lock().unwrap();
        let status = match i.script.pop_front() {
            Some(s) => s,
            None => i.responder.as_mut().map_or(200, |r| r(&body)),
        };
        i.requests.push(WebhookRequest { headers, body });
        status
    };
    arrived.notify_waiters();
    (StatusCode::from_u16(status).unwrap(), "{}")
}
