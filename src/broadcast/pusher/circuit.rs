//! The circuit breaker shared by every worker task and every replica of one Pusher connection.
//!
//! Owns: counting consecutive failing requests (in this process), opening the circuit in Redis,
//! telling callers whether they may send, the one-probe rule, and the `herald_circuit_open`
//! gauge. Does not own: sending (`super`) or what happens to deferred deliveries (they are
//! retryable errors; `settle` puts them in the delayed set like any other retry).
//!
//! State lives in one Redis string, `GlobalKeys::circuit(connection)`:
//!
//! ```text
//!  closed ──N consecutive failing requests──▶ SET key "<open_until_ms> <why>" PX open_for+grace
//!    ▲                                                       │
//!    │                                  now < open_until: every send is deferred, no request
//!    │                                                       │
//!    │                                   now ≥ open_until (half-open): SET key:probe NX PX …
//!    │                                          │ won                          │ lost
//!    └── probe answered (any non-failure) ◀── send ONE request         deferred, briefly
//!         DEL key, key:probe                    │ failed
//!                                               └──▶ SET key (open again), DEL key:probe
//! ```
//!
//! The key outlives `open_until` by a grace period on purpose: a key that simply expired would
//! look the same as one never set, so every process would send at once instead of one probe.
//! After the grace (no traffic to probe with) the key expires and the circuit is closed.
//!
//! A failing request is a 5xx, a 429, a timeout or a connection error. Any other answer (2xx,
//! 400, 401, 413, …) proves the server is there and resets the count. If Redis cannot be read
//! the circuit is treated as closed: deliveries go on, at worst without the shared backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::now_ms;
use crate::delivery::{DeliveryError, DeliveryResult};
use crate::metrics::Metrics;
use crate::queue::{GlobalKeys, Redis};

/// How long an expired-but-unprobed circuit is remembered.
const HALF_OPEN_GRACE: Duration = Duration::from_secs(300);

/// What a sender may do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Send everything.
    Closed,
    /// Send nothing; ask again after this long.
    Open(Duration),
    /// Send one request first: its outcome decides (then call [`Circuit::probed`]).
    Probe,
}

pub(crate) struct Circuit {
    redis: Redis,
    /// The connection, or `<connection>:app:<app>` for one app of a multi-app connection: names
    /// the key and log lines.
    connection: String,
    /// The `connection` label of the gauge (bounded: see `apps::Labels`).
    label: String,
    key: String,
    probe_key: String,
    /// Consecutive failing requests that open it; 0 disables the circuit.
    threshold: u32,
    open_for: Duration,
    /// How long a probe may take before another process may probe.
    probe_ttl: Duration,
    consecutive: AtomicU32,
    /// This process's view of `open_until` (ms), so requests already queued behind the
    /// concurrency limit stop as soon as the circuit opens.
    open_until: AtomicU64,
    /// Whether a Redis error was already logged (logged once per streak).
    redis_warned: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Circuit {
    pub(crate) fn new(
        redis: Redis,
        (connection, label): (&str, &str),
        keys: &GlobalKeys,
        threshold: u32,
        open_for: Duration,
        request_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Circuit {
        metrics.set_circuit(label, false);
        Circuit {
            redis,
            connection: connection.to_string(),
            label: label.to_string(),
            probe_key: keys.circuit_probe(connection),
            key: keys.circuit(connection),
            threshold,
            open_for,
            probe_ttl: request_timeout + Duration::from_secs(2),
            consecutive: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            redis_warned: AtomicBool::new(false),
            metrics,
        }
    }

    /// Asks the shared state whether to send (one Redis round trip per batch).
    pub(crate) async fn admit(&self) -> Admit {
        if self.threshold == 0 {
            return Admit::Closed;
        }
        let value: Option<String> = match self.query(redis::cmd("GET").arg(&self.key)).await {
            Some(v) => v,
            None => return Admit::Closed,
        };
        let now = now_ms();
        let Some(open_until) = value.as_deref().and_then(parse_open_until) else {
            self.open_until.store(0, Ordering::Relaxed);
            self.metrics.set_circuit(&self.label, false);
            return Admit::Closed;
        };
        self.metrics.set_circuit(&self.label, true);
        if open_until > now {
            // Clamped: the value comes from Redis, and a wild one would push a due time past
            // the end of time.
            let open_until = open_until.min(now + self.open_for.as_millis() as u64);
            self.open_until.store(open_until, Ordering::Relaxed);
            return Admit::Open(Duration::from_millis(open_until - now));
        }
        self.open_until.store(0, Ordering::Relaxed);
        let won: Option<Option<String>> = self
            .query(
                redis::cmd("SET")
                    .arg(&self.probe_key)
                    .arg(crate::queue::reaper::hostname())
                    .arg("NX")
                    .arg("PX")
                    .arg(self.probe_ttl.as_millis() as u64),
            )
            .await;
        match won {
            Some(Some(_)) => Admit::Probe,
            Some(None) => Admit::Open(self.probe_ttl),
            None => Admit::Closed,
        }
    }

    /// Whether this process knows the circuit is open right now, and for how much longer.
    pub(crate) fn open_locally(&self) -> Option<Duration> {
        let until = self.open_until.load(Ordering::Relaxed);
        let now = now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// The error for a delivery not attempted because the circuit is open. Deferred deliveries
    /// come back after the circuit's remaining time plus jitter, so they do not all arrive at
    /// the probe together.
    pub(crate) fn deferred(&self, retry_in: Duration) -> DeliveryError {
        let jitter = self.open_for.mul_f64(fastrand::f64() * 0.5);
        DeliveryError::Deferred {
            reason: format!(
                "connection {:?}: circuit open after repeated failing requests; not sent",
                self.connection
            ),
            retry_after: Some(retry_in + jitter),
            circuit: Some(self.connection.clone()),
        }
    }

    /// Accounts for the outcome of one request.
    pub(crate) async fn observe(&self, result: &DeliveryResult) {
        if self.threshold == 0 {
            return;
        }
        match result {
            Err(e) if e.is_server_failure() => {
                let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= self.threshold && self.open_locally().is_none() {
                    self.consecutive.store(0, Ordering::Relaxed);
                    self.open(&format!("{n} consecutive failing requests, the last: {e}"))
                        .await;
                }
            }
            Err(DeliveryError::Deferred { .. }) => {}
            _ => self.consecutive.store(0, Ordering::Relaxed),
        }
    }

    /// Gives the probe back without a verdict: the probe request never reached the server.
    pub(crate) async fn release_probe(&self) {
        let _: Option<()> = self.query(redis::cmd("DEL").arg(&self.probe_key)).await;
    }

    /// Settles a probe: `healthy` closes the circuit for everyone, otherwise it opens again.
    pub(crate) async fn probed(&self, healthy: bool, why: &str) {
        if healthy {
            self.consecutive.store(0, Ordering::Relaxed);
            self.open_until.store(0, Ordering::Relaxed);
            let _: Option<()> = self
                .query(redis::cmd("DEL").arg(&self.key).arg(&self.probe_key))
                .await;
            self.metrics.set_circuit(&self.label, false);
            tracing::info!(
                message = "Pusher circuit closed: the probe request succeeded.",
                connection = %self.connection,
            );
        } else {
            self.open(&format!("the probe request failed: {why}")).await;
            let _: Option<()> = self.query(redis::cmd("DEL").arg(&self.probe_key)).await;
        }
    }

    async fn open(&self, why: &str) {
        let until = now_ms() + self.open_for.as_millis() as u64;
        self.open_until.store(until, Ordering::Relaxed);
        self.metrics.set_circuit(&self.label, true);
        let ttl = (self.open_for + HALF_OPEN_GRACE).as_millis() as u64;
        let _: Option<()> = self
            .query(
                redis::cmd("SET")
                    .arg(&self.key)
                    .arg(format!("{until} {why}"))
                    .arg("PX")
                    .arg(ttl),
            )
            .await;
        tracing::warn!(
            message = "Pusher circuit opened: deliveries on this connection are deferred, then one request probes.",
            connection = %self.connection,
            open_for = ?self.open_for,
            reason = %why,
        );
    }

    /// Runs one command; `None` (logged once per streak) when Redis cannot be reached.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> Option<T> {
        let r = async {
            let mut c = self.redis.get().await?;
            cmd.query_async::<T>(&mut c).await
        }
        .await;
        match r {
            Ok(v) => {
                self.redis_warned.store(false, Ordering::Relaxed);
                Some(v)
            }
            Err(e) => {
                if !self.redis_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        message = "Cannot read or write the Pusher circuit in Redis; treating it as closed.",
                        connection = %self.connection,
                        error = %e,
                    );
                }
                None
            }
        }
    }
}

/// What the shared state of `connection`'s circuit says, for the dashboard: `None` when closed,
/// else the `open_until` time (ms; past it, the circuit is half-open) and why it opened.
pub(crate) async fn read(
    redis: &Redis,
    keys: &GlobalKeys,
    connection: &str,
) -> Result<Option<(u64, String)>, crate::queue::QueueError> {
    let mut get = redis::cmd("GET");
    get.arg(keys.circuit(connection));
    let value: Option<String> = redis.run(crate::queue::NO_QUEUE, "circuit", &get).await?;
    Ok(value.and_then(|v| {
        let until = parse_open_until(&v)?;
        let why = v.split_once(' ').map_or("", |(_, w)| w).to_string();
        Some((until, why))
    }))
}

/// A circuit as an onlooker sees it, without claiming its probe: what decides when envelopes
/// parked for it may come back (`worker::maintenance`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// No open circuit: send everything.
    Closed,
    /// Open, or half-open with a probe already claimed: wait.
    Open,
    /// Half-open and nobody probing yet: one request may go.
    HalfOpen,
}

/// The states of the circuits `connections` (names as in [`Circuit::new`]) at `now_ms`, in
/// order: one round trip however many there are (a `GET` and an `EXISTS` of each, spread over
/// the nodes on a cluster), so thousands of parked apps cost the maintenance loop one request.
pub(crate) async fn states(
    redis: &Redis,
    keys: &GlobalKeys,
    connections: &[String],
    now_ms: u64,
) -> Result<Vec<State>, crate::queue::QueueError> {
    let mut spread = crate::queue::Spread::default();
    for c in connections {
        spread.add(redis::cmd("GET").arg(keys.circuit(c)).clone());
        spread.add(redis::cmd("EXISTS").arg(keys.circuit_probe(c)).clone());
    }
    let replies: Vec<redis::Value> = redis
        .run_spread(crate::queue::NO_QUEUE, "circuit", &spread)
        .await?;
    let unreadable = |e: redis::ParsingError| crate::queue::QueueError {
        queue: crate::queue::NO_QUEUE.to_string(),
        op: "circuit",
        source: e.into(),
    };
    let mut replies = replies.into_iter();
    let mut out = Vec::with_capacity(connections.len());
    while let (Some(value), Some(probing)) = (replies.next(), replies.next()) {
        let value: Option<String> = redis::from_redis_value(value).map_err(unreadable)?;
        let probing: bool = redis::from_redis_value(probing).map_err(unreadable)?;
        out.push(state_of(value.as_deref(), probing, now_ms));
    }
    Ok(out)
}

/// What a circuit key's value (if any) and its probe key say at `now_ms`.
fn state_of(value: Option<&str>, probing: bool, now_ms: u64) -> State {
    match value.and_then(parse_open_until) {
        None => State::Closed,
        Some(open_until) if open_until > now_ms || probing => State::Open,
        Some(_) => State::HalfOpen,
    }
}

/// The `open_until` milliseconds at the start of the key's value.
fn parse_open_until(value: &str) -> Option<u64> {
    value.split(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_onlooker_sees_open_until_its_time_then_half_open_unless_probing() {
        let value = Some("1000 HTTP 503: down");
        assert_eq!(state_of(None, false, 5), State::Closed);
        assert_eq!(state_of(Some("garbage"), false, 5), State::Closed);
        assert_eq!(state_of(value, false, 999), State::Open);
        assert_eq!(state_of(value, false, 1000), State::HalfOpen);
        assert_eq!(state_of(value, true, 1000), State::Open, "a probe is out");
    }

    #[test]
    fn failures_are_what_the_server_did_not_handle() {
        let http = |status| DeliveryError::Http {
            status,
            body: String::new(),
            retry_after: None,
        };
        for e in [
            http(500),
            http(503),
            http(429),
            DeliveryError::Timeout(Duration::ZERO),
            DeliveryError::Connect("x".into()),
        ] {
            assert!(e.is_server_failure(), "{e}");
        }
        for e in [http(400), http(401), http(413)] {
            assert!(!e.is_server_failure(), "{e}");
        }
        assert_eq!(
            parse_open_until("1764268800123 HTTP 500: x"),
            Some(1764268800123)
        );
        assert_eq!(parse_open_until("garbage"), None);
    }
}
