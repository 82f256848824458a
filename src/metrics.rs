//! Every Prometheus metric herald exports, defined once, with one method per happening.
//!
//! Owns: metric names, labels and buckets, and the text exposition. Does not own: serving it
//! over HTTP (`admin`) or deciding what happened (the stages call the methods here).
//!
//! Labels are bounded: `delivery` is a configured listener or connection name, `reason` a
//! short code, `queue` a configured queue, and `event` appears only for events the registry
//! knows (others are counted as `other`). Each instance owns its registry, so several herald
//! instances in one test process do not share counters.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Delivery latency buckets (seconds): 0.5 ms to 30 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Event age buckets (seconds): 1 ms to 1 h; retried deliveries land in the long tail.
pub(crate) const AGE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
];

/// Dead-letter reason codes known at build time. Their counters exist at 0 from the start, so
/// `increase()` in an alert sees the very first dead letter of each reason (a counter that
/// appears at 1 has no earlier sample to increase from).
pub(crate) const DEAD_LETTER_REASONS: &[&str] = &[
    "payload_too_large",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "invalid_field",
    "event_name_too_long",
    "bad_channel",
    "unknown_event",
    "unknown_connection",
    "bad_template",
    "no_route",
    "retries_exhausted",
    "redelivered_too_often",
    "http_4xx",
    "listener_failed",
    "missing_app",
];

/// The counters and histograms of one delivery; see [`Metrics::delivery`].
#[derive(Clone)]
pub(crate) struct DeliveryMetrics {
    ok: prometheus::IntCounter,
    retry: prometheus::IntCounter,
    dead: prometheus::IntCounter,
    duration: prometheus::Histogram,
    age: prometheus::Histogram,
}

impl DeliveryMetrics {
    /// One delivery ran, whatever its outcome, and took `seconds`.
    pub(crate) fn took(&self, seconds: f64) {
        self.duration.observe(seconds);
    }

    /// One delivery succeeded, `age` seconds after its event was created.
    pub(crate) fn ok(&self, age: f64) {
        self.ok.inc();
        self.age.observe(age.max(0.0));
    }

    /// One delivery failed and was scheduled again (`retried`) or dead-lettered.
    pub(crate) fn failed(&self, retried: bool) {
        if retried {
            self.retry.inc();
        } else {
            self.dead.inc();
        }
    }
}

/// The metric set of one herald instance.
pub struct Metrics {
    registry: Registry,
    events_received: IntCounterVec,
    events_processed: IntCounterVec,
    deliveries: IntCounterVec,
    delivery_duration: HistogramVec,
    event_age: HistogramVec,
    dead_letters: IntCounterVec,
    dead_letters_evicted: IntCounterVec,
    redeliveries: IntCounterVec,
    reclaimed: IntCounterVec,
    redis_errors: IntCounterVec,
    redis_wait_short: IntCounterVec,
    queue_depth: IntGaugeVec,
    oldest_waiting: GaugeVec,
    inflight: IntGaugeVec,
    circuit_open: IntGaugeVec,
    pusher_requests: IntCounterVec,
    pusher_stale_retries: IntCounterVec,
    pusher_budget: IntGaugeVec,
    live_processes: IntGauge,
    up: Gauge,
}

/// One metric: its name, help text and labels. Every metric herald exports is one of the
/// constants below, so names and help live in one place.
struct Def {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

const BUILD_INFO: Def = Def {
    name: "herald_build_info",
    help: "Always 1; the version herald was built as.",
    labels: &["version"],
};
const EVENTS_RECEIVED: Def = Def {
    name: "herald_events_received_total",
    help: "Envelopes reserved from a queue.",
    labels: &["queue"],
};
const EVENTS_PROCESSED: Def = Def {
    name: "herald_events_processed_total",
    help: "Envelopes settled, by event name (registry-known names only; others are `other`).",
    labels: &["queue", "event"],
};
const DELIVERIES: Def = Def {
    name: "herald_deliveries_total",
    help: "Delivery outcomes: ok, retry (scheduled again) or dead (dead-lettered).",
    labels: &["delivery", "outcome"],
};
const DELIVERY_DURATION: Def = Def {
    name: "herald_delivery_duration_seconds",
    help: "Time one delivery took (a broadcast batch counts for each of its messages).",
    labels: &["delivery"],
};
const EVENT_AGE: Def = Def {
    name: "herald_event_age_seconds",
    help: "From the envelope's created_at (or when herald first saw it) to a delivery's success.",
    labels: &["delivery"],
};
const DEAD_LETTERS: Def = Def {
    name: "herald_dead_letters_total",
    help: "Dead letters written, by reason code.",
    labels: &["reason"],
};
const DEAD_LETTERS_EVICTED: Def = Def {
    name: "herald_dead_letters_evicted_total",
    help: "Oldest dead letters removed because the store reached failed.max_entries.",
    labels: &["queue"],
};
const REDELIVERIES: Def = Def {
    name: "herald_redeliveries_total",
    help: "Envelopes returned to their queue by the reaper after their process died.",
    labels: &["queue"],
};
const RECLAIMED: Def = Def {
    name: "herald_reclaimed_batches_total",
    help: "Batches this process could not settle because a reaper had already returned them.",
    labels: &["queue"],
};
const REDIS_ERRORS: Def = Def {
    name: "herald_redis_errors_total",
    help: "Failed Redis operations, by operation.",
    labels: &["op"],
};
const REDIS_WAIT_SHORT: Def = Def {
    name: "herald_redis_wait_short_total",
    help: "WAITs after a reserve or settle that ended with fewer replicas than redis.wait_replicas.",
    labels: &["queue"],
};
const QUEUE_DEPTH: Def = Def {
    name: "herald_queue_depth",
    help: "Envelopes per queue and state (waiting, processing, delayed, delayed_due, parked, failed), sampled.",
    labels: &["queue", "state"],
};
const OLDEST_WAITING: Def = Def {
    name: "herald_oldest_waiting_age_seconds",
    help: "Age of the oldest waiting envelope, from its created_at (0 when unknown or empty).",
    labels: &["queue"],
};
const INFLIGHT: Def = Def {
    name: "herald_inflight",
    help: "Envelopes this process has reserved and not settled.",
    labels: &["queue"],
};
const CIRCUIT_OPEN: Def = Def {
    name: "herald_circuit_open",
    help: "1 while a connection's circuit is open.",
    labels: &["connection"],
};
const PUSHER_REQUESTS: Def = Def {
    name: "herald_pusher_requests_total",
    help: "Pusher HTTP API requests, by connection and status (or error kind).",
    labels: &["connection", "status"],
};
const PUSHER_STALE_RETRIES: Def = Def {
    name: "herald_pusher_stale_connection_retries_total",
    help: "Pusher requests that met a pooled connection the server had closed and were sent \
           once more on a fresh one (no attempt used), by connection.",
    labels: &["connection"],
};
const PUSHER_BUDGET: Def = Def {
    name: "herald_pusher_budget_left",
    help: "The shared Pusher budget left, as last taken from by this process: kind=\"rate\" \
           (tokens in the bucket) or kind=\"quota\" (messages left today).",
    labels: &["connection", "kind"],
};
const LIVE_PROCESSES: Def = Def {
    name: "herald_live_processes",
    help: "herald processes heartbeating on this Redis, as last seen by this one.",
    labels: &[],
};
const REDIS_UP: Def = Def {
    name: "herald_redis_up",
    help: "1 when this process reached Redis at its last check.",
    labels: &[],
};

/// Registers `m` and hands it back.
fn registered<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    r.register(Box::new(m.clone())).expect("registered once");
    m
}

fn counter(r: &Registry, d: &Def) -> IntCounterVec {
    registered(
        r,
        IntCounterVec::new(Opts::new(d.name, d.help), d.labels).expect("valid metric"),
    )
}

fn histogram(r: &Registry, d: &Def, buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(d.name, d.help).buckets(buckets.to_vec());
    registered(r, HistogramVec::new(opts, d.labels).expect("valid metric"))
}

fn gauge(r: &Registry, d: &Def) -> IntGaugeVec {
    registered(
        r,
        IntGaugeVec::new(Opts::new(d.name, d.help), d.labels).expect("valid metric"),
    )
}

fn float_gauge(r: &Registry, d: &Def) -> GaugeVec {
    registered(
        r,
        GaugeVec::new(Opts::new(d.name, d.help), d.labels).expect("valid metric"),
    )
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh metric set (its own registry), with every counter that should exist from the
    /// start at zero.
    pub fn new() -> Metrics {
        let r = Registry::new();
        gauge(&r, &BUILD_INFO)
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");
        let m = Metrics {
            events_received: counter(&r, &EVENTS_RECEIVED),
            events_processed: counter(&r, &EVENTS_PROCESSED),
            deliveries: counter(&r, &DELIVERIES),
            delivery_duration: histogram(&r, &DELIVERY_DURATION, DURATION_BUCKETS),
            event_age: histogram(&r, &EVENT_AGE, AGE_BUCKETS),
            dead_letters: counter(&r, &DEAD_LETTERS),
            dead_letters_evicted: counter(&r, &DEAD_LETTERS_EVICTED),
            redeliveries: counter(&r, &REDELIVERIES),
            reclaimed: counter(&r, &RECLAIMED),
            redis_errors: counter(&r, &REDIS_ERRORS),
            redis_wait_short: counter(&r, &REDIS_WAIT_SHORT),
            queue_depth: gauge(&r, &QUEUE_DEPTH),
            oldest_waiting: float_gauge(&r, &OLDEST_WAITING),
            inflight: gauge(&r, &INFLIGHT),
            circuit_open: gauge(&r, &CIRCUIT_OPEN),
            pusher_requests: counter(&r, &PUSHER_REQUESTS),
            pusher_stale_retries: counter(&r, &PUSHER_STALE_RETRIES),
            pusher_budget: gauge(&r, &PUSHER_BUDGET),
            live_processes: registered(
                &r,
                IntGauge::new(LIVE_PROCESSES.name, LIVE_PROCESSES.help).expect("valid metric"),
            ),
            up: registered(
                &r,
                Gauge::new(REDIS_UP.name, REDIS_UP.help).expect("valid metric"),
            ),
            registry: r,
        };
        for reason in DEAD_LETTER_REASONS {
            m.dead_letters.with_label_values(&[reason]).inc_by(0);
        }
        m
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("text format is UTF-8")
    }

    pub(crate) fn received(&self, queue: &str, n: usize) {
        self.events_received
            .with_label_values(&[queue])
            .inc_by(n as u64);
    }

    pub(crate) fn processed(&self, queue: &str, event: Option<&str>) {
        self.events_processed
            .with_label_values(&[queue, event.unwrap_or("other")])
            .inc();
    }

    /// The metrics of one delivery (`listener:<name>` or `broadcast:<connection>`), resolved
    /// once so the per-event path does no label lookups.
    pub(crate) fn delivery(&self, delivery: &str) -> DeliveryMetrics {
        DeliveryMetrics {
            ok: self.deliveries.with_label_values(&[delivery, "ok"]),
            retry: self.deliveries.with_label_values(&[delivery, "retry"]),
            dead: self.deliveries.with_label_values(&[delivery, "dead"]),
            duration: self.delivery_duration.with_label_values(&[delivery]),
            age: self.event_age.with_label_values(&[delivery]),
        }
    }

    pub(crate) fn dead_lettered(&self, reason: &str) {
        self.dead_letters.with_label_values(&[reason]).inc();
    }

    pub(crate) fn evicted(&self, queue: &str, n: u64) {
        self.dead_letters_evicted
            .with_label_values(&[queue])
            .inc_by(n);
    }

    pub(crate) fn redelivered(&self, queue: &str, n: u64) {
        self.redeliveries.with_label_values(&[queue]).inc_by(n);
    }

    pub(crate) fn reclaimed(&self, queue: &str) {
        self.reclaimed.with_label_values(&[queue]).inc();
    }

    pub(crate) fn redis_error(&self, op: &str) {
        self.redis_errors.with_label_values(&[op]).inc();
    }

    pub(crate) fn redis_wait_short(&self, queue: &str) {
        self.redis_wait_short.with_label_values(&[queue]).inc();
    }

    pub(crate) fn set_depth(&self, s: &crate::queue::QueueStats) {
        for (state, v) in [
            ("waiting", s.waiting),
            ("processing", s.processing),
            ("delayed", s.delayed),
            ("delayed_due", s.delayed_due),
            ("parked", s.parked),
            ("failed", s.failed),
        ] {
            self.queue_depth
                .with_label_values(&[s.queue.as_str(), state])
                .set(v as i64);
        }
    }

    pub(crate) fn set_oldest_waiting(&self, queue: &str, age: f64) {
        self.oldest_waiting.with_label_values(&[queue]).set(age);
    }

    pub(crate) fn inflight(&self, queue: &str, delta: i64) {
        self.inflight.with_label_values(&[queue]).add(delta);
    }

    /// Creates the gauge at 0 so dashboards see every queue from the start.
    pub(crate) fn init_queue(&self, queue: &str) {
        self.inflight.with_label_values(&[queue]).add(0);
        self.oldest_waiting.with_label_values(&[queue]).add(0.0);
    }

    pub(crate) fn set_circuit(&self, connection: &str, open: bool) {
        self.circuit_open
            .with_label_values(&[connection])
            .set(i64::from(open));
    }

    pub(crate) fn pusher_request(&self, connection: &str, status: &str) {
        self.pusher_requests
            .with_label_values(&[connection, status])
            .inc();
    }

    pub(crate) fn pusher_stale_retry(&self, connection: &str) {
        self.pusher_stale_retries
            .with_label_values(&[connection])
            .inc();
    }

    /// `quota_left` < 0: the connection has no daily quota.
    pub(crate) fn set_pusher_budget(&self, connection: &str, tokens: i64, quota_left: i64) {
        self.pusher_budget
            .with_label_values(&[connection, "rate"])
            .set(tokens);
        if quota_left >= 0 {
            self.pusher_budget
                .with_label_values(&[connection, "quota"])
                .set(quota_left);
        }
    }

    pub(crate) fn set_live_processes(&self, n: usize) {
        self.live_processes.set(n as i64);
    }

    pub(crate) fn set_redis_up(&self, up: bool) {
        self.up.set(if up { 1.0 } else { 0.0 });
    }
}
