//! [`PusherFake`]: a local Pusher Channels HTTP API server for tests and benchmarks.
//!
//! Owns: a real HTTP server on a free loopback port that serves `POST /apps/{id}/events` and
//! `/batch_events`, and
//! - verifies signatures as strictly as sockudo does ([`verify_signature`]): the app is found
//!   by `auth_key`, the app id in the path must be that app's, `|now − auth_timestamp| ≤ 600`,
//!   `body_md5` is required for a non-empty body (and refused for an empty one), parameters are
//!   sorted by lowercased key, the HMAC is compared in constant time; 401 otherwise
//!   (`verify.rs`);
//! - enforces soketi's limits (batch ≤ 10 → 400, channels ≤ 100 → 400, event name ≤ 200 → 400,
//!   data ≤ 100 KB → 413, `data` must be a string → 400; all adjustable with [`FakeLimits`]);
//! - records every request ([`FakeRequest`]) and every event it accepts, per channel
//!   ([`FakeEvent`]; a long run takes them as it goes, [`PusherFake::take_events`]);
//! - fails on command: scripted answers for the next requests ([`PusherFake::fail_next`],
//!   [`PusherFake::rate_limit_next`], [`PusherFake::slow_next`], [`PusherFake::reset_next`]),
//!   and a standing rejection of requests carrying a marker ([`PusherFake::reject_matching`],
//!   lifted by [`PusherFake::clear_rejections`]: an outage);
//! - optionally honours `idempotency_key` as sockudo does ([`PusherFake::honour_idempotency`]);
//! - behaves like production servers on demand: Reverb's request-size limit (413 and a closed
//!   connection, [`FakeLimits::max_request_bytes`]), Reverb's close after every answer
//!   ([`PusherFake::close_after_every_response`]), a plan's spent quota (429 with
//!   `Retry-After`, [`PusherFake::quota`]).
//!
//! Its signature check is written independently of herald's signer, so a signing bug cannot
//! hide by agreeing with itself. Does not own: anything herald runs in production.
//!
//! Files: this one is the handle tests hold (start, script failures, read what arrived);
//! `server.rs` answers requests; `verify.rs` checks signatures; `conn.rs` lets the server close
//! a connection without answering.

mod conn;
mod server;
mod verify;

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use verify::verify_signature;

/// The limits the fake enforces (soketi's defaults).
#[derive(Clone, Debug)]
pub struct FakeLimits {
    /// Events per `/batch_events` request (400 above).
    pub max_batch_size: usize,
    /// Channels per event (400 above).
    pub max_channels: usize,
    /// Characters of an event name (400 above).
    pub max_event_name: usize,
    /// Bytes of one event's `data` (413 above).
    pub max_data_bytes: usize,
    /// Allowed distance between `auth_timestamp` and the fake's clock, in seconds.
    pub timestamp_window: u64,
    /// Largest whole request (request line, headers and body), as Laravel Reverb's
    /// `max_request_size`: above it the answer is 413 and the connection is closed.
    pub max_request_bytes: Option<usize>,
}

impl Default for FakeLimits {
    fn default() -> Self {
        FakeLimits {
            max_batch_size: 10,
            max_channels: 100,
            max_event_name: 200,
            max_data_bytes: 100 * 1024,
            timestamp_window: 600,
            max_request_bytes: None,
        }
    }
}

/// One event the fake accepted, on one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeEvent {
    /// The event name.
    pub name: String,
    /// The one channel this record is for.
    pub channel: String,
    /// The `data` string as posted.
    pub data: String,
    /// The `socket_id` to exclude, when sent.
    pub socket_id: Option<String>,
    /// The event's `idempotency_key`, when sent.
    pub idempotency_key: Option<String>,
    /// Which request carried it: its index in [`PusherFake::requests`] (counting every request,
    /// kept or not).
    pub request: usize,
    /// The app it was posted to (the `<app_id>` of `/apps/<app_id>/…`, whose credentials
    /// signed the request).
    pub app_id: String,
}

/// One request that reached the fake.
#[derive(Clone, Debug)]
pub struct FakeRequest {
    /// When it arrived / was answered, in ms since the epoch.
    pub received_ms: u64,
    /// When it was answered (0 while a slow answer is pending).
    pub answered_ms: u64,
    /// The request path (`/apps/<id>/events` or `/batch_events`).
    pub path: String,
    /// The status answered; 0 when the connection was closed instead.
    pub status: u16,
    /// Events in the body (1 for `/events`, the batch length for `/batch_events`).
    pub events: usize,
    /// Why it was refused, when it was.
    pub error: Option<String>,
    /// `idempotency_key` of each event in the body, in order.
    pub idempotency_keys: Vec<Option<String>>,
    /// Size of the whole request as received: request line, headers and body.
    pub bytes: usize,
    /// Its signed `body_md5` query parameter (checked against the body before anything else
    /// is answered), so tests can tell whether two requests carried the same bytes.
    pub body_md5: String,
    /// Which connection carried it, numbered from 0 in the order the fake accepted them.
    pub connection: usize,
}

/// What to do with one of the next requests (after authentication and validation).
#[derive(Clone, Debug)]
pub enum Action {
    /// Answer with this status (and `Retry-After: <secs>` when given), accepting nothing.
    Status {
        /// The status to answer.
        status: u16,
        /// Seconds for a `Retry-After` header.
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
    /// Reverb's manner: answer one request per connection (no `Connection: close`), and close
    /// a connection reused for another without answering.
    close_after_every_response: bool,
    /// (messages, Retry-After seconds): once this many messages (events × channels) were
    /// accepted, every request is answered 429 with the Retry-After, as a spent plan.
    quota: Option<(usize, u64)>,
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
    /// More apps served (`add_app`): (app_id, key, secret), each verified with its own secret.
    more_apps: Mutex<Vec<(String, String, String)>>,
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
    /// Where it listens (loopback, a free port).
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
            more_apps: Mutex::new(Vec::new()),
            inner: Mutex::new(Inner {
                limits: FakeLimits::default(),
                script: VecDeque::new(),
                rules: Vec::new(),
                honour_idempotency: false,
                close_after_every_response: false,
                quota: None,
                seen_keys: HashSet::new(),
                keep: true,
                event_count: 0,
                request_count: 0,
                events: Vec::new(),
                requests: Vec::new(),
            }),
            changed: Notify::new(),
        });
        let app = Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                conn::FakeListener(listener, 0),
                app.into_make_service_with_connect_info::<conn::ConnHandle>(),
            )
            .await;
        });
        Ok(PusherFake {
            addr,
            shared,
            server,
        })
    }

    /// Serves one more app: requests to `/apps/<app_id>/…` must be signed with its `key` and
    /// `secret` (and no other app's).
    pub fn add_app(&self, app_id: &str, key: &str, secret: &str) {
        self.shared
            .more_apps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((app_id.into(), key.into(), secret.into()));
    }

    /// The app id it serves.
    pub fn app_id(&self) -> &str {
        &self.shared.app_id
    }

    /// The app key.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The app secret.
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

    /// Enforces `limits` from now on.
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

    /// Lifts every standing rejection added by [`Self::reject_matching`] (an outage ends).
    pub fn clear_rejections(&self) {
        self.shared.lock().rules.clear();
    }

    /// Every event kept so far, removed from the fake (a long run reads them as it goes).
    pub fn take_events(&self) -> Vec<FakeEvent> {
        std::mem::take(&mut self.shared.lock().events)
    }

    /// Whether an event whose `idempotency_key` was already accepted is dropped (sockudo's
    /// behaviour) instead of delivered again (soketi's, the default).
    pub fn honour_idempotency(&self, on: bool) {
        self.shared.lock().honour_idempotency = on;
    }

    /// Whether the fake behaves as Reverb does: every connection carries one answered request,
    /// then counts as closed (no `Connection: close` header warns the client), so a request on
    /// a reused connection is met by a closed connection and accepted nowhere.
    pub fn close_after_every_response(&self, on: bool) {
        self.shared.lock().close_after_every_response = on;
    }

    /// From now on, a request that would take the messages accepted (one per channel) past
    /// `messages` is answered 429 with `Retry-After: retry_after_secs`, accepting nothing: a
    /// plan's quota spent. `None` lifts it.
    pub fn quota(&self, quota: Option<(usize, u64)>) {
        self.shared.lock().quota = quota;
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

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    /// A client's signature (auth_version 1.0), written for these tests alone.
    fn test_signed_query(
        key: &str,
        secret: &str,
        method: &str,
        path: &str,
        body: &[u8],
        now: u64,
    ) -> String {
        use hmac::{Hmac, Mac};
        use md5::{Digest, Md5};
        let params = format!(
            "auth_key={key}&auth_timestamp={now}&auth_version=1.0&body_md5={}",
            hex::encode(Md5::digest(body))
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{method}\n{path}\n{params}").as_bytes());
        format!(
            "{params}&auth_signature={}",
            hex::encode(mac.finalize().into_bytes())
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
        let query = test_signed_query(
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

    /// Reverb's manners: a request over max_request_bytes gets 413 and a closed connection;
    /// with close_after_every_response a reused connection is closed without an answer.
    #[tokio::test]
    async fn refuses_large_requests_and_closes_reused_connections() {
        let fake = PusherFake::start().await.unwrap();
        fake.set_limits(FakeLimits {
            max_request_bytes: Some(2000),
            ..FakeLimits::default()
        });
        let big = serde_json::json!({"name": "E", "data": "x".repeat(2000), "channels": ["c"]});
        let (status, body) = post(&fake, "events", &big, "application/json").await;
        assert_eq!(status, 413, "{body}");
        let small = serde_json::json!({"name": "E", "data": "{}", "channels": ["c"]});
        assert_eq!(
            post(&fake, "events", &small, "application/json").await.0,
            200
        );
        let r = fake.requests();
        assert!(r[0].bytes > 2000 && r[1].bytes < 2000, "{r:?}");
        assert_eq!(fake.events().len(), 1);

        fake.close_after_every_response(true);
        let client = reqwest::Client::new();
        let path = format!("/apps/{}/events", fake.app_id());
        let body = small.to_string();
        let send = || {
            let query = test_signed_query(
                fake.key(),
                fake.secret(),
                "POST",
                &path,
                body.as_bytes(),
                now_ms() / 1000,
            );
            client
                .post(format!("http://{}{path}?{query}", fake.addr))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
        };
        assert_eq!(send().await.unwrap().status(), 200);
        assert!(send().await.is_err(), "the reused connection was closed");
        let r = fake.requests();
        let last = &r[r.len() - 2..];
        assert_eq!((last[0].status, last[1].status), (200, 0));
        assert_eq!(
            last[0].connection, last[1].connection,
            "one pooled connection"
        );
        assert_eq!(fake.events().len(), 2);
    }

    /// A spent quota answers 429 with Retry-After and accepts nothing more.
    #[tokio::test]
    async fn a_spent_quota_answers_429_with_retry_after() {
        let fake = PusherFake::start().await.unwrap();
        fake.quota(Some((2, 7)));
        let two = serde_json::json!({"name": "E", "data": "{}", "channels": ["a", "b"]});
        assert_eq!(post(&fake, "events", &two, "application/json").await.0, 200);
        let (status, _) = post(&fake, "events", &two, "application/json").await;
        assert_eq!(status, 429);
        assert_eq!(fake.events().len(), 2);
        fake.quota(None);
        assert_eq!(post(&fake, "events", &two, "application/json").await.0, 200);
    }
}
