//! [`PusherFake`]: a local Pusher Channels HTTP API server for tests and benchmarks.
//!
//! Owns: a real HTTP server on a free loopback port that serves `POST /apps/{id}/events` and
//! `/batch_events`, and
//! - verifies signatures as strictly as sockudo does ([`verify_signature`]): the app is found
//!   by `auth_key`, the app id in the path must be that app's, `|now − auth_timestamp| ≤ 600`,
//!   `body_md5` is required for a non-empty body (and refused for an empty one), parameters are
//!   sorted by lowercased key, the HMAC is compared in constant time; 401 otherwise;
//! - enforces soketi's limits (batch ≤ 10 → 400, channels ≤ 100 → 400, event name ≤ 200 → 400,
//!   data ≤ 100 KB → 413, `data` must be a string → 400; all adjustable with [`FakeLimits`]);
//! - records every request ([`FakeRequest`]) and every event it accepts, per channel
//!   ([`FakeEvent`]);
//! - fails on command: scripted answers for the next requests ([`PusherFake::fail_next`],
//!   [`PusherFake::rate_limit_next`], [`PusherFake::slow_next`], [`PusherFake::reset_next`]),
//!   and a standing rejection of requests carrying a marker ([`PusherFake::reject_matching`]);
//! - optionally honours `idempotency_key` as sockudo does ([`PusherFake::honour_idempotency`]).
//!
//! Its signature check is written independently of herald's signer, so a signing bug cannot
//! hide by agreeing with itself. Does not own: anything herald runs in production.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The limits the fake enforces (soketi's defaults).
#[derive(Clone, Debug)]
pub struct FakeLimits {
    pub max_batch_size: usize,
    pub max_channels: usize,
    pub max_event_name: usize,
    pub max_data_bytes: usize,
    /// Allowed distance between `auth_timestamp` and the fake's clock, in seconds.
    pub timestamp_window: u64,
}

impl Default for FakeLimits {
    fn default() -> Self {
        FakeLimits {
            max_batch_size: 10,
            max_channels: 100,
            max_event_name: 200,
            max_data_bytes: 100 * 1024,
            timestamp_window: 600,
        }
    }
}

/// One event the fake accepted, on one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeEvent {
    pub name: String,
    pub channel: String,
    /// The `data` string as posted.
    pub data: String,
    pub socket_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// Which request carried it: its index in [`PusherFake::requests`] (counting every request,
    /// kept or not).
    pub request: usize,
}

/// One request that reached the fake.
#[derive(Clone, Debug)]
pub struct FakeRequest {
    /// When it arrived / was answered, in ms since the epoch.
    pub received_ms: u64,
    pub answered_ms: u64,
    pub path: String,
    /// The status answered; 0 when the connection was closed instead.
    pub status: u16,
    /// Events in the body (1 for `/events`, the batch length for `/batch_events`).
    pub events: usize,
    /// Why it was refused, when it was.
    pub error: Option<String>,
    /// `idempotency_key` of each event in the body, in order.
    pub idempotency_keys: Vec<Option<String>>,
}

/// What to do with one of the next requests (after authentication and validation).
#[derive(Clone, Debug)]
pub enum Action {
    /// Answer with this status (and `Retry-After: <secs>` when given), accepting nothing.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Accept the events, then wait this long before answering.
    Slow(Duration),
    /// Close the connection without answering, accepting nothing.
    Reset,
}

struct Inner {
    limits: FakeLimits,
    script: VecDeque<Action>,
    /// (marker, status): requests with an event whose name, channel or data contains the
    /// marker are answered with the status, every time.
    rules: Vec<(String, u16)>,
    honour_idempotency: bool,
    seen_keys: HashSet<String>,
    /// Whether events and requests are kept (a long benchmark only needs the counts).
    keep: bool,
    event_count: usize,
    request_count: usize,
    events: Vec<FakeEvent>,
    requests: Vec<FakeRequest>,
}

struct Shared {
    app_id: String,
    key: String,
    secret: String,
    inner: Mutex<Inner>,
    changed: Notify,
}

impl Inner {
    /// Counts a request, keeps it if details are kept; its index in `requests` when kept.
    fn push_request(&mut self, r: FakeRequest) -> Option<usize> {
        self.request_count += 1;
        self.keep.then(|| {
            self.requests.push(r);
            self.requests.len() - 1
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake; the server stops when this is dropped.
pub struct PusherFake {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for PusherFake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl PusherFake {
    /// Starts a fake with the app soketi and sockudo ship: `app-id` / `app-key` / `app-secret`.
    pub async fn start() -> io::Result<PusherFake> {
        Self::start_with("app-id", "app-key", "app-secret").await
    }

    /// Starts a fake serving one app.
    pub async fn start_with(app_id: &str, key: &str, secret: &str) -> io::Result<PusherFake> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            app_id: app_id.into(),
            key: key.into(),
            secret: secret.into(),
            inner: Mutex::new(Inner {
                limits: FakeLimits::default(),
                script: VecDeque::new(),
                rules: Vec::new(),
                honour_idempotency: false,
                seen_keys: HashSet::new(),
                keep: true,
                event_count: 0,
                request_count: 0,
                events: Vec::new(),
                requests: Vec::new(),
            }),
            changed: Notify::new(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                FakeListener(listener),
                app.into_make_service_with_connect_info::<ConnHandle>(),
            )
            .await;
        });
        Ok(PusherFake {
            addr,
            shared,
            server,
        })
    }

    pub fn app_id(&self) -> &str {
        &self.shared.app_id
    }

    pub fn key(&self) -> &str {
        &self.shared.key
    }

    pub fn secret(&self) -> &str {
        &self.shared.secret
    }

    /// A `[broadcasting.connections.<name>]` section pointing herald at this fake, with
    /// `extra` lines (`key = value`) appended.
    pub fn connection_toml(&self, name: &str, extra: &str) -> String {
        format!(
            "[broadcasting.connections.{name}]\ndriver = \"pusher\"\napp_id = \"{}\"\nkey = \"{}\"\n\
             secret = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\nscheme = \"http\"\n{extra}\n",
            self.shared.app_id,
            self.shared.key,
            self.shared.secret,
            self.addr.port()
        )
    }

    pub fn set_limits(&self, limits: FakeLimits) {
        self.shared.lock().limits = limits;
    }

    /// Queues `action` for the next request not yet claimed by an earlier action.
    pub fn script(&self, action: Action, times: usize) {
        let mut i = self.shared.lock();
        i.script.extend(std::iter::repeat_n(action, times));
    }

    /// The next `times` requests get `status`.
    pub fn fail_next(&self, status: u16, times: usize) {
        self.script(
            Action::Status {
                status,
                retry_after: None,
            },
            times,
        );
    }

    /// The next `times` requests get 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, retry_after_secs: u64, times: usize) {
        self.script(
            Action::Status {
                status: 429,
                retry_after: Some(retry_after_secs),
            },
            times,
        );
    }

    /// The next `times` requests are accepted, then answered after `delay`.
    pub fn slow_next(&self, delay: Duration, times: usize) {
        self.script(Action::Slow(delay), times);
    }

    /// The next `times` requests have their connection closed without an answer.
    pub fn reset_next(&self, times: usize) {
        self.script(Action::Reset, times);
    }

    /// From now on, a request with an event whose name, channel or data contains `marker` is
    /// answered with `status` (413 reads like soketi's "data too large").
    pub fn reject_matching(&self, marker: &str, status: u16) {
        self.shared.lock().rules.push((marker.into(), status));
    }

    /// Whether an event whose `idempotency_key` was already accepted is dropped (sockudo's
    /// behaviour) instead of delivered again (soketi's, the default).
    pub fn honour_idempotency(&self, on: bool) {
        self.shared.lock().honour_idempotency = on;
    }

    /// Whether every event and request is kept for [`Self::events`] and [`Self::requests`]
    /// (default) or only counted, for long benchmarks.
    pub fn keep_details(&self, on: bool) {
        self.shared.lock().keep = on;
    }

    /// Events accepted so far (one per channel), kept or not.
    pub fn event_count(&self) -> usize {
        self.shared.lock().event_count
    }

    /// Requests that reached the fake so far, kept or not.
    pub fn request_count(&self) -> usize {
        self.shared.lock().request_count
    }

    /// Every event accepted so far, per channel, in arrival order.
    pub fn events(&self) -> Vec<FakeEvent> {
        self.shared.lock().events.clone()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<FakeRequest> {
        self.shared.lock().requests.clone()
    }

    /// Waits until at least `n` events were accepted (no time limit: callers bound it); returns
    /// the kept events.
    pub async fn wait_for_events(&self, n: usize) -> Vec<FakeEvent> {
        self.wait(|i| (i.event_count >= n).then(|| i.events.clone()))
            .await
    }

    /// Waits until at least `n` requests arrived (no time limit: callers bound it); returns
    /// the kept requests.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<FakeRequest> {
        self.wait(|i| (i.request_count >= n).then(|| i.requests.clone()))
            .await
    }

    async fn wait<T>(&self, ready: impl Fn(&Inner) -> Option<T>) -> T {
        loop {
            let changed = self.shared.changed.notified();
            if let Some(v) = ready(&self.shared.lock()) {
                return v;
            }
            changed.await;
        }
    }
}

/// Checks a request's signature the way sockudo does; `Err` carries the reason for the 401.
#[allow(clippy::too_many_arguments)]
pub fn verify_signature(
    app_id: &str,
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
    now_secs: u64,
    window_secs: u64,
) -> Result<(), String> {
    let url = reqwest::Url::parse(&format!("http://fake/?{query}"))
        .map_err(|e| format!("unreadable query: {e}"))?;
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut signature = None;
    for (k, v) in url.query_pairs() {
        if k == "auth_signature" {
            signature = Some(v.into_owned());
        } else if params.insert(k.to_lowercase(), v.into_owned()).is_some() {
            return Err(format!("parameter {k} given twice"));
        }
    }
    let signature = signature.ok_or("missing auth_signature")?;
    if params.get("auth_key").map(String::as_str) != Some(key) {
        return Err("unknown auth_key".into());
    }
    let in_path = path
        .strip_prefix("/apps/")
        .and_then(|rest| rest.split('/').next());
    if in_path != Some(app_id) {
        return Err("Authenticated app does not match route app_id".into());
    }
    if params.get("auth_version").map(String::as_str) != Some("1.0") {
        return Err("auth_version must be 1.0".into());
    }
    let ts: u64 = params
        .get("auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or("missing or non-numeric auth_timestamp")?;
    if ts.abs_diff(now_secs) > window_secs {
        return Err("Timestamp expired or too far in the future".into());
    }
    match (body.is_empty(), params.get("body_md5")) {
        (false, None) => return Err("body_md5 is required for a request with a body".into()),
        (false, Some(md5)) if *md5 != hex::encode(Md5::digest(body)) => {
            return Err("body_md5 does not match the body".into());
        }
        (true, Some(_)) => return Err("body_md5 given for an empty body".into()),
        _ => {}
    }
    let joined: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let to_sign = format!(
        "{}\n{path}\n{}",
        method.to_ascii_uppercase(),
        joined.join("&")
    );
    let given = hex::decode(&signature).map_err(|_| "auth_signature is not hex")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&given)
        .map_err(|_| "Invalid API signature".to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({"error": message, "code": status.as_u16()});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// One event object of a request, validated.
struct Item {
    name: String,
    data: String,
    channels: Vec<String>,
    socket_id: Option<String>,
    idempotency_key: Option<String>,
}

/// Parses and validates a body; `Err((status, message))` as soketi would answer.
fn parse_items(batch: bool, body: &[u8], limits: &FakeLimits) -> Result<Vec<Item>, (u16, String)> {
    let incorrect = || (400, "The received data is incorrect".to_string());
    let v: Value = serde_json::from_slice(body).map_err(|_| incorrect())?;
    let objects: Vec<&Value> = if batch {
        let list = v
            .get("batch")
            .and_then(Value::as_array)
            .ok_or_else(incorrect)?;
        if list.len() > limits.max_batch_size {
            return Err((
                400,
                format!(
                    "Cannot batch-send more than {} messages at once",
                    limits.max_batch_size
                ),
            ));
        }
        list.iter().collect()
    } else {
        vec![&v]
    };
    let mut items = Vec::with_capacity(objects.len());
    for o in objects {
        let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let name = text("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(incorrect)?;
        // Pusher requires a string; a JSON object here is a client bug.
        let data = text("data").ok_or((400, "data must be a string".to_string()))?;
        let channels: Vec<String> = match (o.get("channels"), text("channel")) {
            (Some(Value::Array(list)), None) if !batch => list
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(incorrect)?,
            (None, Some(c)) => vec![c],
            _ => return Err(incorrect()),
        };
        if channels.is_empty() {
            return Err(incorrect());
        }
        if channels.len() > limits.max_channels {
            return Err((
                400,
                format!(
                    "Cannot broadcast to more than {} channels at once",
                    limits.max_channels
                ),
            ));
        }
        if name.len() > limits.max_event_name {
            return Err((400, "Event name is too long".into()));
        }
        if data.len() > limits.max_data_bytes {
            return Err((
                413,
                format!(
                    "The data content of this event exceeds the allowed maximum ({} KB).",
                    limits.max_data_bytes / 1024
                ),
            ));
        }
        items.push(Item {
            name,
            data,
            channels,
            socket_id: text("socket_id"),
            idempotency_key: text("idempotency_key"),
        });
    }
    Ok(items)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_ms = now_ms();
    let path = uri.path().to_string();
    let record = |status: u16, events: usize, error: Option<String>, keys: Vec<Option<String>>| {
        shared.lock().push_request(FakeRequest {
            received_ms,
            answered_ms: now_ms(),
            path: path.clone(),
            status,
            events,
            error,
            idempotency_keys: keys,
        });
        shared.changed.notify_waiters();
    };
    let refuse = |status: u16, message: String| {
        record(status, 0, Some(message.clone()), Vec::new());
        error(status, &message)
    };

    let prefix = format!("/apps/{}/", shared.app_id);
    let endpoint = path
        .strip_prefix("/apps/")
        .and_then(|p| p.split_once('/'))
        .map(|(_, e)| e);
    let batch = match (method == Method::POST, endpoint) {
        (true, Some("events")) => false,
        (true, Some("batch_events")) => true,
        _ => return refuse(404, format!("no route for {method} {path}")),
    };
    let limits = shared.lock().limits.clone();
    if let Err(why) = verify_signature(
        &shared.app_id,
        &shared.key,
        &shared.secret,
        method.as_str(),
        &path,
        uri.query().unwrap_or(""),
        &body,
        received_ms / 1000,
        limits.timestamp_window,
    ) {
        return refuse(401, why);
    }
    debug_assert!(path.starts_with(&prefix));
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return refuse(415, "Content-Type must be application/json".into());
    }
    let items = match parse_items(batch, &body, &limits) {
        Ok(items) => items,
        Err((status, message)) => return refuse(status, message),
    };
    let keys: Vec<Option<String>> = items.iter().map(|i| i.idempotency_key.clone()).collect();

    let (rule, action) = {
        let mut i = shared.lock();
        let rule = i.rules.iter().find_map(|(marker, status)| {
            let m = marker.as_str();
            items
                .iter()
                .any(|it| {
                    it.name.contains(m)
                        || it.data.contains(m)
                        || it.channels.iter().any(|c| c.contains(m))
                })
                .then(|| {
                    (
                        *status,
                        format!("rejected: an event contains the marker {marker:?}"),
                    )
                })
        });
        let action = if rule.is_none() {
            i.script.pop_front()
        } else {
            None
        };
        (rule, action)
    };
    if let Some((status, why)) = rule {
        let message = if status == 413 {
            format!(
                "The data content of this event exceeds the allowed maximum ({} KB). ({why})",
                limits.max_data_bytes / 1024
            )
        } else {
            why
        };
        record(status, items.len(), Some(message.clone()), keys);
        return error(status, &message);
    }
    let mut delay = None;
    match action {
        Some(Action::Status {
            status,
            retry_after,
        }) => {
            let message = format!("scripted failure {status}");
            record(status, items.len(), Some(message.clone()), keys);
            let mut resp = error(status, &message);
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
            }
            return resp;
        }
        Some(Action::Reset) => {
            conn.0.store(true, Ordering::SeqCst);
            record(
                0,
                items.len(),
                Some("connection closed without an answer".into()),
                keys,
            );
            return error(500, "connection closed");
        }
        Some(Action::Slow(d)) => delay = Some(d),
        None => {}
    }

    // Accept.
    let kept = {
        let mut i = shared.lock();
        let request = i.request_count;
        for it in items.iter() {
            if let Some(k) = &it.idempotency_key
                && i.honour_idempotency
                && !i.seen_keys.insert(k.clone())
            {
                continue;
            }
            i.event_count += it.channels.len();
            if !i.keep {
                continue;
            }
            for c in &it.channels {
                i.events.push(FakeEvent {
                    name: it.name.clone(),
                    channel: c.clone(),
                    data: it.data.clone(),
                    socket_id: it.socket_id.clone(),
                    idempotency_key: it.idempotency_key.clone(),
                    request,
                });
            }
        }
        // Record the request now, so events and requests agree even if the answer is slow; the
        // answer time is filled in below.
        i.push_request(FakeRequest {
            received_ms,
            answered_ms: 0,
            path: path.clone(),
            status: 200,
            events: items.len(),
            error: None,
            idempotency_keys: keys,
        })
    };
    shared.changed.notify_waiters();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some(k) = kept {
        shared.lock().requests[k].answered_ms = now_ms();
    }
    shared.changed.notify_waiters();
    let body = if batch { "{}" } else { r#"{"ok":true}"# };
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

/// Identifies a connection to the handler, so it can close it without an answer.
#[derive(Clone, Debug)]
struct ConnHandle(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, FakeListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, FakeListener>) -> Self {
        stream.remote_addr().clone()
    }
}

struct FakeListener(TcpListener);

impl axum::serve::Listener for FakeListener {
    type Io = KillableIo;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (KillableIo, ConnHandle) {
        loop {
            match self.0.accept().await {
                Ok((stream, _)) => {
                    let killed = Arc::new(AtomicBool::new(false));
                    return (
                        KillableIo {
                            inner: stream,
                            killed: killed.clone(),
                        },
                        ConnHandle(killed),
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<ConnHandle> {
        Ok(ConnHandle(Arc::new(AtomicBool::new(false))))
    }
}

/// A TCP stream that fails every read and write once killed, so the server drops the
/// connection instead of writing the answer.
struct KillableIo {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl KillableIo {
    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "closed by the fake",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    const QUERY: &str = "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
        &body_md5=ec365a775a4cd0599faeb73354201b6f\
        &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";

    fn check(path: &str, query: &str, body: &[u8], now: u64) -> Result<(), String> {
        verify_signature(
            "3",
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "POST",
            path,
            query,
            body,
            now,
            600,
        )
    }

    async fn post(
        fake: &PusherFake,
        endpoint: &str,
        body: &Value,
        content_type: &str,
    ) -> (u16, String) {
        let path = format!("/apps/{}/{endpoint}", fake.app_id());
        let body = body.to_string();
        let now = now_ms() / 1000;
        let query = crate::broadcast::pusher::sign::signed_query(
            fake.key(),
            fake.secret(),
            "POST",
            &path,
            body.as_bytes(),
            now,
        );
        let resp = reqwest::Client::new()
            .post(format!("http://{}{path}?{query}", fake.addr))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The fake refuses what soketi refuses, records what it accepts, and can only count.
    #[tokio::test]
    async fn enforces_limits_and_records_accepted_events() {
        let fake = PusherFake::start().await.unwrap();
        let item = |i: usize| serde_json::json!({"name": "E", "data": format!("{{\"i\":{i}}}"), "channel": format!("c{i}")});
        let eleven: Vec<Value> = (0..11).map(item).collect();
        let (status, body) = post(
            &fake,
            "batch_events",
            &serde_json::json!({"batch": eleven}),
            "application/json",
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("more than 10"), "{body}");
        let object_data = serde_json::json!({"name": "E", "data": {"i": 1}, "channels": ["c"]});
        assert_eq!(
            post(&fake, "events", &object_data, "application/json")
                .await
                .0,
            400
        );
        let big =
            serde_json::json!({"name": "E", "data": "x".repeat(100 * 1024 + 1), "channels": ["c"]});
        assert_eq!(post(&fake, "events", &big, "application/json").await.0, 413);
        let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
        let wide = serde_json::json!({"name": "E", "data": "{}", "channels": many});
        assert_eq!(
            post(&fake, "events", &wide, "application/json").await.0,
            400
        );
        let two = serde_json::json!({"batch": [item(1), item(2)]});
        assert_eq!(post(&fake, "batch_events", &two, "text/plain").await.0, 415);
        assert!(fake.events().is_empty());

        assert_eq!(
            post(&fake, "batch_events", &two, "application/json").await,
            (200, "{}".into())
        );
        let events = fake.events();
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[1].channel.as_str(), events[1].data.as_str()),
            ("c2", r#"{"i":2}"#)
        );
        assert_eq!(events[1].request, fake.requests().len() - 1);

        fake.keep_details(false);
        assert_eq!(
            post(&fake, "batch_events", &two, "application/json")
                .await
                .0,
            200
        );
        assert_eq!((fake.event_count(), fake.events().len()), (4, 2));
        assert_eq!((fake.request_count(), fake.requests().len()), (7, 6));
    }

    /// Pusher's worked example is accepted; every single change to it is refused.
    #[test]
    fn accepts_the_docs_vector_and_nothing_else() {
        let ts = 1353088179;
        assert_eq!(check("/apps/3/events", QUERY, BODY, ts), Ok(()));
        assert_eq!(check("/apps/3/events", QUERY, BODY, ts + 600), Ok(()));
        let cases: [(&str, String, &[u8], u64, &str); 7] = [
            ("/apps/3/events", QUERY.into(), BODY, ts + 601, "Timestamp"),
            ("/apps/4/events", QUERY.into(), BODY, ts, "route app_id"),
            (
                "/apps/3/batch_events",
                QUERY.into(),
                BODY,
                ts,
                "Invalid API signature",
            ),
            (
                "/apps/3/events",
                QUERY.into(),
                b"{}",
                ts,
                "body_md5 does not match",
            ),
            (
                "/apps/3/events",
                QUERY.replace("278d", "278e"),
                BODY,
                ts,
                "unknown auth_key",
            ),
            (
                "/apps/3/events",
                QUERY.replace("da4548", "da4549"),
                BODY,
                ts,
                "Invalid API signature",
            ),
            (
                "/apps/3/events",
                QUERY.replace("&body_md5=ec365a775a4cd0599faeb73354201b6f", ""),
                BODY,
                ts,
                "body_md5 is required",
            ),
        ];
        for (path, query, body, now, why) in cases {
            let err = check(path, &query, body, now).unwrap_err();
            assert!(err.contains(why), "{err:?} should say {why:?}");
        }
    }
}
