//! The `pusher` broadcaster: the Pusher Channels HTTP API (Pusher, soketi, sockudo, Reverb).
//!
//! Owns: turning one `send(&[Message])` call (every message of a reserved batch bound for this
//! connection) into as few signed HTTP requests as the API allows, sent concurrently on one
//! kept-alive connection pool, and one outcome per message:
//!
//! 1. [`batch::plan`]: Laravel's mapping and the limits, checked before sending. A message that
//!    breaks one is a fatal `Invalid` outcome and no request carries it.
//! 2. [`progress`]: units that an earlier attempt already delivered are skipped.
//! 3. [`circuit`]: while the shared circuit is open nothing is sent (retryable `Deferred`);
//!    when it half-opens, one request probes first.
//! 4. Requests: `/batch_events` (≤ `max_batch_size` single-channel events) and `/events`
//!    (one event, ≤ `max_channels_per_request` channels), signed per [`sign`]. A 400/413/422
//!    answer to a multi-event request is bisected until the offending event is alone, so only
//!    it fails, with the server's message.
//! 5. Outcomes: 2xx is success (`{}` or `{"ok":true}`; a 2xx whose body is soketi's
//!    `{"error":…,"code":4xx}` is that error), 429 retries after `Retry-After`, 5xx, timeouts
//!    and connection errors retry, other 4xx are fatal. An event split over several requests
//!    succeeds only when all of them did; the parts that succeeded are recorded, not resent.
//!
//! Does not own: retry scheduling (`settle`), routing (`registry`), or the other sinks of the
//! same event: a failed Pusher delivery is retried alone.
//!
//! Per request herald counts `herald_pusher_requests_total{connection,status}` and the
//! dashboard's fleet-wide counts ([`activity`]), and keeps `herald_circuit_open{connection}`
//! current.

pub(crate) mod activity;
mod answer;
mod apps;
pub(crate) mod batch;
pub(crate) mod budget;
pub(crate) mod circuit;
pub(crate) mod crypto;
pub(crate) mod progress;
pub(crate) mod sign;
pub(crate) mod size;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use tokio::sync::Semaphore;

use self::activity::RequestLog;
use self::answer::{embedded_error_status, read_bounded, server_message};
use self::apps::Creds;
use self::batch::{Settings, Unit};
use self::circuit::{Admit, Circuit};
use self::crypto::MasterKey;
use self::progress::Progress;
use super::Message;
use crate::config::PusherConfig;
use crate::delivery::{DeliveryError, DeliveryResult};
use crate::metrics::Metrics;
use crate::queue::{GlobalKeys, Redis};

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// One Pusher connection. Shared by every worker task of the process.
pub(crate) struct PusherBroadcaster {
    name: String,
    client: reqwest::Client,
    /// Keeps no idle connection: for the one resend of a request that met a pooled connection
    /// the server had closed.
    fresh: reqwest::Client,
    /// `scheme://host[:port]`.
    base_url: String,
    timeout: Duration,
    /// `max_request_bytes`; 0: no request limit.
    max_request_bytes: usize,
    master: Option<MasterKey>,
    permits: Semaphore,
    progress: Progress,
    metrics: Arc<Metrics>,
    /// Requests by status for the dashboard, flushed to Redis by the maintenance loop.
    requests: Arc<RequestLog>,
    apps: Apps,
}

/// The app(s) a connection sends for.
enum Apps {
    /// `app_id`, `key`, `secret` in the config.
    One(Box<(App, Creds)>),
    /// `apps = "redis"` or `apps_dir`: each envelope names its app.
    Many(Box<Many>),
}

/// What one app has of its own, kept for the life of the process: its limits' name, metric
/// label, circuit and budget. One tenant's outage or spent quota never defers another's events.
struct App {
    /// `connection` is the connection, or `<connection>:<app>`: in unit keys (so the delivery
    /// record is per app) and in messages.
    settings: Settings,
    /// The bounded metric label ([`apps::Labels`]).
    label: String,
    circuit: Circuit,
    /// The shared rate and daily quota, when configured.
    budget: Option<budget::Budget>,
}

/// The apps of a multi-app connection.
struct Many {
    directory: apps::Directory,
    labels: apps::Labels,
    /// By app name, made when an app is first found.
    apps: std::sync::Mutex<HashMap<String, Arc<App>>>,
    template: PusherConfig,
    redis: Redis,
    keys: GlobalKeys,
}

/// One app's state and the credentials its requests are signed with.
#[derive(Clone, Copy)]
struct Target<'a> {
    app: &'a App,
    creds: &'a Creds,
}

/// Builds the state of one app: `scope` names its Redis keys, `display` its unit keys and
/// messages, `label` its metrics.
fn app_state(
    (scope, display, label): (&str, &str, &str),
    config: &PusherConfig,
    redis: &Redis,
    keys: &GlobalKeys,
    metrics: &Arc<Metrics>,
) -> App {
    App {
        circuit: Circuit::new(
            redis.clone(),
            (scope, label),
            keys,
            config.circuit_failures,
            config.circuit_open_for,
            config.timeout,
            metrics.clone(),
        ),
        budget: budget::Budget::new(
            redis.clone(),
            keys,
            (scope, label),
            (
                config.rate_per_second,
                config.rate_burst,
                config.daily_quota,
            ),
            metrics,
        ),
        settings: Settings {
            connection: display.to_string(),
            max_data_bytes: config.max_data_bytes,
            max_channels_per_request: config.max_channels_per_request,
            max_batch_size: config.max_batch_size,
            max_channel_name: config.max_channel_name,
            max_event_name: config.max_event_name,
            idempotency: config.idempotency,
        },
        label: label.to_string(),
    }
}

impl PusherBroadcaster {
    /// Builds connection `name`. `redis` holds the circuit and the delivery record (the queue's
    /// Redis, under `key_prefix`). Fails only if the HTTP client cannot be built.
    pub(crate) fn new(
        name: &str,
        config: &PusherConfig,
        redis: Redis,
        key_prefix: &str,
        metrics: &Arc<Metrics>,
    ) -> Result<PusherBroadcaster, String> {
        let client = http_client(config, true)?;
        let fresh = http_client(config, false)?;
        // Validated by config; an invalid key here only disables encrypted channels.
        let master = (!config.encryption_master_key_base64.is_empty())
            .then(|| MasterKey::from_base64(config.encryption_master_key_base64.expose()).ok())
            .flatten();
        let keys = GlobalKeys::new(key_prefix);
        // The `Host` header as reqwest writes it: the port only when it is not the scheme's.
        let host = reqwest::Url::parse(&config.base_url())
            .ok()
            .and_then(|u| {
                let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                u.host_str().map(|h| format!("{h}{port}"))
            })
            .unwrap_or_default();
        let apps = match config.apps_source() {
            None => Apps::One(Box::new((
                app_state((name, name, name), config, &redis, &keys, metrics),
                Creds::new(
                    &config.app_id,
                    &config.key,
                    config.secret.clone(),
                    &host,
                    config.max_request_bytes,
                ),
            ))),
            Some(source) => Apps::Many(Box::new(Many {
                directory: apps::Directory::new(
                    name,
                    source,
                    redis.clone(),
                    &keys,
                    config.apps_refresh,
                    (&host, config.max_request_bytes),
                ),
                labels: apps::Labels::new(name, config.apps_metrics_top),
                apps: std::sync::Mutex::new(HashMap::new()),
                template: config.clone(),
                redis: redis.clone(),
                keys: keys.clone(),
            })),
        };
        Ok(PusherBroadcaster {
            max_request_bytes: config.max_request_bytes,
            name: name.to_string(),
            client,
            fresh,
            base_url: config.base_url(),
            timeout: config.timeout,
            master,
            permits: Semaphore::new(config.max_concurrent_requests.max(1)),
            progress: Progress::new(redis, key_prefix),
            metrics: metrics.clone(),
            requests: Arc::new(RequestLog::new(name)),
            apps,
        })
    }

    /// This connection's request counts, for the maintenance loop to flush.
    pub(crate) fn requests(&self) -> Arc<RequestLog> {
        self.requests.clone()
    }

    /// Broadcasts a batch; one outcome per message, in order.
    /// `queue` is the queue the batch came from: the delivery record lives in its slot.
    pub(crate) async fn send(&self, batch: &[Message<'_>], queue: &str) -> Vec<DeliveryResult> {
        match &self.apps {
            Apps::One(one) => {
                let (app, creds) = &**one;
                self.send_app(Target { app, creds }, batch, queue).await
            }
            Apps::Many(many) => self.send_many(many, batch, queue).await,
        }
    }

    /// A multi-app connection's batch: grouped by app, each group sent as its own batch with
    /// its app's credentials, circuit and budget (so a request never carries two apps'
    /// events), the groups concurrently.
    async fn send_many(
        &self,
        many: &Many,
        batch: &[Message<'_>],
        queue: &str,
    ) -> Vec<DeliveryResult> {
        let mut results: Vec<Option<DeliveryResult>> = vec![None; batch.len()];
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            match m.app {
                None => results[i] = Some(Err(apps::missing_app(&self.name))),
                Some(app) => match groups.iter_mut().find(|(a, _)| *a == app) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((app, vec![i])),
                },
            }
        }
        let sent = join_all(groups.into_iter().map(|(app, members)| async move {
            let sub: Vec<Message> = members.iter().map(|&i| batch[i]).collect();
            let out = match self.resolve(many, app).await {
                Ok((state, creds)) => {
                    let target = Target {
                        app: &state,
                        creds: &creds,
                    };
                    self.send_app(target, &sub, queue).await
                }
                Err(e) => vec![Err(e); sub.len()],
            };
            (members, out)
        }))
        .await;
        for (members, out) in sent {
            for (i, r) in members.into_iter().zip(out) {
                results[i] = Some(r);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(DeliveryError::Custom {
                        message: "no outcome for the app's event".into(),
                        retryable: true,
                    })
                })
            })
            .collect()
    }

    /// `app`'s state (made the first time it is found) and current credentials.
    async fn resolve(
        &self,
        many: &Many,
        app: &str,
    ) -> Result<(Arc<App>, Arc<Creds>), DeliveryError> {
        let creds = many.directory.get(app).await?;
        let mut apps = many.apps.lock().unwrap_or_else(|p| p.into_inner());
        let state = apps.entry(app.to_string()).or_insert_with(|| {
            let scope = GlobalKeys::pusher_app_scope(&self.name, app);
            let display = format!("{}:{app}", self.name);
            let label = many.labels.label(app);
            Arc::new(app_state(
                (&scope, &display, &label),
                &many.template,
                &many.redis,
                &many.keys,
                &self.metrics,
            ))
        });
        Ok((state.clone(), creds))
    }

    /// One app's batch.
    async fn send_app(
        &self,
        t: Target<'_>,
        batch: &[Message<'_>],
        queue: &str,
    ) -> Vec<DeliveryResult> {
        let (plan, mut done) = self.prepare(t, batch);
        let units = &plan.units;
        if done.iter().all(Option::is_some) {
            return plan.results(&done);
        }

        // Skip what an earlier attempt already delivered.
        let multi: Vec<(usize, &str)> = plan.multi_unit().collect();
        let delivered = self.progress.load(queue, &multi).await;
        let track = Track {
            queue,
            split: multi.iter().map(|(i, _)| *i).collect(),
        };
        let track = &track;
        for (u, unit) in units.iter().enumerate() {
            if delivered
                .get(&unit.msg)
                .is_some_and(|keys| keys.contains(&unit.key))
            {
                done[u] = Some(Ok(()));
            }
        }
        let pending: Vec<usize> = (0..units.len()).filter(|&u| done[u].is_none()).collect();
        let mut requests = size::pack(
            units,
            &pending,
            t.app.settings.max_batch_size,
            t.creds.body_budget,
            t.app.settings.idempotency,
        );

        let mut outcomes = Vec::new();
        if let Some(e) = self.spend(t, units, &requests).await {
            outcomes.extend(requests.drain(..).flatten().map(|u| (u, Err(e.clone()))));
        }
        let circuit = &t.app.circuit;
        let admit = if requests.is_empty() {
            Admit::Closed
        } else {
            circuit.admit().await
        };
        match admit {
            Admit::Closed => outcomes.extend(self.dispatch_all(t, units, track, requests).await),
            Admit::Open(retry_in) => {
                let e = circuit.deferred(retry_in);
                outcomes.extend(pending.iter().map(|&u| (u, Err(e.clone()))));
            }
            Admit::Probe => {
                let first = requests.remove(0);
                let probe = self.dispatch(t, units, track, first).await;
                let failure = probe.iter().find_map(|(_, r)| match r {
                    Err(e) if e.is_server_failure() => Some(e.to_string()),
                    _ => None,
                });
                let reached_server = probe
                    .iter()
                    .any(|(_, r)| !matches!(r, Err(DeliveryError::Deferred { .. })));
                if reached_server {
                    circuit
                        .probed(failure.is_none(), failure.as_deref().unwrap_or(""))
                        .await;
                } else {
                    // Deferred locally (a request still in flight reopened the circuit): no
                    // verdict, so neither close the circuit for everyone nor reopen it.
                    circuit.release_probe().await;
                }
                outcomes = probe;
                if failure.is_none() {
                    outcomes.extend(self.dispatch_all(t, units, track, requests).await);
                } else {
                    let e = circuit.deferred(circuit.open_locally().unwrap_or_default());
                    let rest = requests.into_iter().flatten();
                    outcomes.extend(rest.map(|u| (u, Err(e.clone()))));
                }
            }
        }
        for (u, r) in outcomes {
            done[u] = Some(r);
        }

        self.record_complete(queue, &plan, &done).await;
        plan.results(&done)
    }

    /// Plans `batch` and settles before any request what cannot be sent: limit violations,
    /// events that alone exceed `max_request_bytes`, everything on an unconfigured connection.
    fn prepare<'a>(
        &self,
        t: Target<'_>,
        batch: &[Message<'a>],
    ) -> (batch::Plan<'a>, Vec<Option<DeliveryResult>>) {
        let mut plan = batch::plan(
            batch,
            &t.app.settings,
            self.master.as_ref(),
            &mut crypto::derived_nonce,
        );
        let mut done: Vec<Option<DeliveryResult>> = vec![None; plan.units.len()];
        if !t.creds.configured {
            let e = DeliveryError::Invalid {
                code: "not_configured",
                reason: format!(
                    "connection {:?} has no app_id, key or secret (PUSHER_APP_ID, \
                     PUSHER_APP_KEY, PUSHER_APP_SECRET)",
                    self.name
                ),
            };
            done.fill(Some(Err(e)));
        } else if let Some(budget) = t.creds.body_budget {
            size::refuse_oversized(
                &mut plan,
                &mut done,
                budget,
                t.app.settings.idempotency,
                &t.app.settings.connection,
                self.max_request_bytes,
            );
        }
        (plan, done)
    }

    /// Takes the `requests`' messages (one per channel) from the app's shared budget; the
    /// deferral when it is spent.
    async fn spend(
        &self,
        t: Target<'_>,
        units: &[Unit<'_>],
        requests: &[Vec<usize>],
    ) -> Option<DeliveryError> {
        let budget = t.app.budget.as_ref().filter(|_| !requests.is_empty())?;
        let cost: usize = requests
            .iter()
            .flatten()
            .map(|&u| units[u].channels.len())
            .sum();
        budget.take(cost as u64, crate::clock::now_ms()).await
    }

    /// Forgets the delivery record of split events that are now complete (the parts were
    /// recorded as their requests succeeded).
    async fn record_complete(
        &self,
        queue: &str,
        plan: &batch::Plan<'_>,
        done: &[Option<DeliveryResult>],
    ) {
        let complete: Vec<&str> = plan
            .multi_unit()
            .filter(|&(i, _)| {
                plan.messages[i]
                    .as_ref()
                    .is_ok_and(|us| us.iter().all(|&u| matches!(done[u], Some(Ok(())))))
            })
            .map(|(_, id)| id)
            .collect();
        if !complete.is_empty() {
            self.progress.complete(queue, &complete).await;
        }
    }

    /// Records, right after a request succeeded, its units that belong to split events.
    async fn record_delivered(&self, units: &[Unit<'_>], track: &Track<'_>, req: &[usize]) {
        let mut by_id: Vec<(&str, Vec<&str>)> = Vec::new();
        for &u in req.iter().filter(|&&u| track.split.contains(&units[u].msg)) {
            let unit = &units[u];
            match by_id.iter_mut().find(|(id, _)| *id == unit.id) {
                Some((_, keys)) => keys.push(&unit.key),
                None => by_id.push((unit.id, vec![&unit.key])),
            }
        }
        if !by_id.is_empty() {
            self.progress.delivered(track.queue, &by_id).await;
        }
    }

    async fn dispatch_all(
        &self,
        t: Target<'_>,
        units: &[Unit<'_>],
        track: &Track<'_>,
        requests: Vec<Vec<usize>>,
    ) -> Vec<(usize, DeliveryResult)> {
        join_all(
            requests
                .into_iter()
                .map(|r| self.dispatch(t, units, track, r)),
        )
        .await
        .into_iter()
        .flatten()
        .collect()
    }

    /// Sends one request of `req` units; on 400/413/422 with several events, splits it in
    /// halves until the offending event is alone.
    fn dispatch<'s>(
        &'s self,
        t: Target<'s>,
        units: &'s [Unit<'s>],
        track: &'s Track<'s>,
        req: Vec<usize>,
    ) -> BoxFuture<'s, Vec<(usize, DeliveryResult)>> {
        Box::pin(async move {
            let result = self.request(t, units, &req).await;
            if result.is_ok() {
                self.record_delivered(units, track, &req).await;
            }
            t.app.circuit.observe(&result).await;
            match result {
                Err(e) if e.refuses_content() && req.len() > 1 => {
                    let right = req[req.len() / 2..].to_vec();
                    let left = req[..req.len() / 2].to_vec();
                    let (a, b) = futures::join!(
                        self.dispatch(t, units, track, left),
                        self.dispatch(t, units, track, right)
                    );
                    a.into_iter().chain(b).collect()
                }
                r => req.into_iter().map(|u| (u, r.clone())).collect(),
            }
        })
    }

    /// One signed HTTP request.
    async fn request(&self, t: Target<'_>, units: &[Unit<'_>], req: &[usize]) -> DeliveryResult {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        if let Some(retry_in) = t.app.circuit.open_locally() {
            return Err(t.app.circuit.deferred(retry_in));
        }
        let (endpoint, body) = batch::body(units, req, t.app.settings.idempotency);
        // Exactly this app's path, key and secret: credentials never mix across apps.
        let path = format!("{}{endpoint}", t.creds.app_path);
        let now = crate::clock::unix_secs();
        let (key, secret) = (&t.creds.key, t.creds.secret.expose());
        let query = sign::signed_query(key, secret, "POST", &path, &body, now);
        let connection = &t.app.settings.connection;
        let url = format!("{}{path}?{query}", self.base_url);
        // Shared bytes: the one resend below must not copy every request's body up front.
        let body = bytes::Bytes::from(body);
        let post = |client: &reqwest::Client, body: bytes::Bytes| {
            client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
        };
        let mut sent = post(&self.client, body.clone()).await;
        if let Err(e) = &sent
            && crate::delivery::is_closed_connection(e)
        {
            // The server closed the pooled connection after its last answer without saying so
            // (Reverb does): once more on a fresh connection, within the same attempt.
            self.metrics.pusher_stale_retry(&t.app.label);
            tracing::debug!(message = "Pusher connection was closed under a request; resending on a fresh one.", connection = %connection, path = %path);
            sent = post(&self.fresh, body).await;
        }
        let (label, result) = match sent {
            Ok(resp) => {
                let answered = resp.status().as_u16();
                let result = self.outcome(connection, resp).await;
                // The status that counted (soketi's 200 carrying a 401 counts as 401).
                let status = match &result {
                    Err(DeliveryError::Http { status, .. }) => *status,
                    _ => answered,
                };
                (status.to_string(), result)
            }
            Err(e) if e.is_timeout() => {
                ("timeout".into(), Err(DeliveryError::Timeout(self.timeout)))
            }
            Err(e) => (
                "connect".into(),
                Err(DeliveryError::Connect(format!(
                    "connection {:?}: POST {}{path}: {}",
                    connection,
                    self.base_url,
                    crate::delivery::http_error_text(e)
                ))),
            ),
        };
        self.metrics.pusher_request(&t.app.label, &label);
        self.requests.record(&label);
        if let Err(e) = &result {
            let ids: Vec<&str> = req.iter().take(5).map(|&u| units[u].id).collect();
            tracing::warn!(
                message = "Pusher request failed.",
                connection = %connection,
                path = %path,
                events = req.len(),
                envelope_ids = %ids.join(","),
                code = e.code(),
                error = %e,
            );
        }
        result
    }

    /// The outcome of an answered request.
    /// `connection`: the connection, or `<connection>:<app>`, for the hints.
    async fn outcome(&self, connection: &str, resp: reqwest::Response) -> DeliveryResult {
        let mut status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let body = read_bounded(resp).await;
        if (200..300).contains(&status) {
            // soketi 1.6 sends its errors with HTTP 200 (tooling.md §1d): believe the body.
            match body.as_deref().map(embedded_error_status) {
                Ok(Some(code)) => status = code,
                _ => return Ok(()),
            }
        }
        let message = body
            .map(|b| server_message(&b))
            .unwrap_or_else(|e| format!("(could not read the answer: {e})"));
        let hint = match status {
            300..=399 => format!(
                " (the server redirects: check the scheme, host and port of connection {:?})",
                connection
            ),
            401 => format!(
                " (the server rejected the request signature: check the app_id, key and secret of connection {:?})",
                connection
            ),
            403 => " (the app is disabled or over its quota)".into(),
            404 => format!(
                " (no such app or path: check the app_id, host, port and scheme of connection {:?})",
                connection
            ),
            413 => " (the server's data limit is below max_data_bytes)".into(),
            _ => String::new(),
        };
        Err(DeliveryError::Http {
            status,
            body: format!("{message}{hint}"),
            retry_after,
        })
    }
}

/// What a send needs to record the parts of split events as their requests succeed.
struct Track<'a> {
    queue: &'a str,
    /// Indexes of the messages split over several units.
    split: std::collections::HashSet<usize>,
}

/// The connection's HTTP client; `pooled`: keeps idle connections for reuse.
fn http_client(config: &PusherConfig, pooled: bool) -> Result<reqwest::Client, String> {
    let idle = if pooled {
        config.max_concurrent_requests
    } else {
        0
    };
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(idle)
        .tcp_nodelay(true)
        // A redirect would be followed without the signed query's path: report it instead.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    /// Body and query byte for byte as pusher-http-node 5.3.4 sends them for the same inputs
    /// (recorded by tests/peers/pusher-fixture.js, clock and nonce fixed).
    #[test]
    fn requests_match_the_official_library() {
        // Read at run time, not include_str!: the container build copies no tests/.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pusher_requests.json"
        );
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let text = |k: &str| fixture[k].as_str().unwrap().to_string();
        let (app_id, key, secret) = (text("app_id"), text("key"), text("secret"));
        let master = MasterKey::from_base64(&text("encryption_master_key_base64")).unwrap();
        let ts = fixture["auth_timestamp"].as_u64().unwrap();
        let settings = Settings::documented("pusher");
        // (name, channels, data, socket) per message, for each fixture case.
        type Event = (
            &'static str,
            &'static [&'static str],
            &'static str,
            Option<&'static str>,
        );
        let inputs: [(&str, &[Event]); 4] = [
            (
                "docs_vector_channels",
                &[("foo", &["project-3"], r#"{"some":"data"}"#, None)],
            ),
            (
                "multi_channel_with_socket_id",
                &[(
                    r"App\Events\OrderShipped",
                    &["orders.1", "private-user.7"],
                    "{\"order_id\":1,\"note\":\"caf\u{e9} \u{2713} \\\"quoted\\\" a/b\"}",
                    Some("123.456"),
                )],
            ),
            (
                "batch",
                &[
                    ("E1", &["c1"], r#"{"a":1}"#, None),
                    ("E2", &["private-c2"], r#"{"b":[1,2]}"#, Some("1.2")),
                ],
            ),
            (
                "encrypted",
                &[(
                    "Secret",
                    &["private-encrypted-orders.1"],
                    r#"{"order_id":1}"#,
                    None,
                )],
            ),
        ];
        let cases = fixture["cases"].as_array().unwrap();
        assert_eq!(cases.len(), inputs.len());
        for (case, (name, events)) in cases.iter().zip(inputs) {
            assert_eq!(case["name"], name);
            let want = &case["request"];
            let owned: Vec<(Vec<String>, Box<RawValue>)> = events
                .iter()
                .map(|(_, channels, data, _)| {
                    (
                        channels.iter().map(|c| c.to_string()).collect(),
                        RawValue::from_string(data.to_string()).unwrap(),
                    )
                })
                .collect();
            let batch: Vec<Message> = events
                .iter()
                .zip(&owned)
                .map(|((event, _, _, socket), (channels, data))| Message {
                    id: "id",
                    name: event,
                    channels,
                    data,
                    socket: *socket,
                    final_payload: false,
                    app: None,
                })
                .collect();
            let plan = batch::plan(&batch, &settings, Some(&master), &mut |_, _, _| {
                std::array::from_fn(|i| i as u8)
            });
            let all: Vec<usize> = (0..plan.units.len()).collect();
            let requests = batch::pack(&plan.units, &all, 10);
            assert_eq!(requests.len(), 1, "{name}");
            let (endpoint, body) = batch::body(&plan.units, &requests[0], false);
            let path = format!("/apps/{app_id}{endpoint}");
            assert_eq!(path, want["path"], "{name}");
            assert_eq!(
                std::str::from_utf8(&body).unwrap(),
                want["body"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                sign::signed_query(&key, &secret, "POST", &path, &body, ts),
                want["query"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(want["content_type"], "application/json");
        }
    }
}
