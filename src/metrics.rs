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
const AGE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
];

/// Dead-letter reason codes known at build time. Their counters exist at 0 from the start, so
/// `increase()` in an alert sees the very first dead letter of each reason (a counter that
/// appears at 1 has no earlier sample to increase from).
pub const DEAD_LETTER_REASONS: &[&str] = &[
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
];

/// The counters and histograms of one delivery; see [`Metrics::delivery`].
#[derive(Clone)]
pub struct DeliveryMetrics {
    ok: prometheus::IntCounter,
    retry: prometheus::IntCounter,
    dead: prometheus::IntCounter,
    duration: prometheus::Histogram,
    age: prometheus::Histogram,
}

impl DeliveryMetrics {
    /// One delivery ran, whatever its outcome, and took `seconds`.
    pub fn took(&self, seconds: f64) {
        self.duration.observe(seconds);
    }

    /// One delivery succeeded, `age` seconds after its event was created.
    pub fn ok(&self, age: f64) {
        self.ok.inc();
        self.age.observe(age.max(0.0));
    }

    /// One delivery failed and was scheduled again (`retried`) or dead-lettered.
    pub fn failed(&self, retried: bool) {
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
    queue_depth: IntGaugeVec,
    oldest_waiting: GaugeVec,
    inflight: IntGaugeVec,
    circuit_open: IntGaugeVec,
    pusher_requests: IntCounterVec,
    live_processes: IntGauge,
    up: Gauge,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new(
                "herald_build_info",
                "Always 1; the version herald was built as.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        r.register(Box::new(build_info)).expect("registered once");
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");
        let oldest_waiting = GaugeVec::new(
            Opts::new(
                "herald_oldest_waiting_age_seconds",
                "Age of the oldest waiting envelope, from its created_at (0 when unknown or empty).",
            ),
            &["queue"],
        )
        .expect("valid metric");
        r.register(Box::new(oldest_waiting.clone()))
            .expect("registered once");
        let live_processes = IntGauge::new(
            "herald_live_processes",
            "herald processes heartbeating on this Redis, as last seen by this one.",
        )
        .expect("valid metric");
        r.register(Box::new(live_processes.clone()))
            .expect("registered once");
        let up = Gauge::new(
            "herald_redis_up",
            "1 when this process reached Redis at its last check.",
        )
        .expect("valid metric");
        r.register(Box::new(up.clone())).expect("registered once");
        let m = Metrics {
            events_received: counter(
                &r,
                "herald_events_received_total",
                "Envelopes reserved from a queue.",
                &["queue"],
            ),
            events_processed: counter(
                &r,
                "herald_events_processed_total",
                "Envelopes settled, by event name (registry-known names only; others are `other`).",
                &["queue", "event"],
            ),
            deliveries: counter(
                &r,
                "herald_deliveries_total",
                "Delivery outcomes: ok, retry (scheduled again) or dead (dead-lettered).",
                &["delivery", "outcome"],
            ),
            delivery_duration: histogram(
                &r,
                "herald_delivery_duration_seconds",
                "Time one delivery took (a broadcast batch counts for each of its messages).",
                &["delivery"],
                DURATION_BUCKETS,
            ),
            event_age: histogram(
                &r,
                "herald_event_age_seconds",
                "From the envelope's created_at (or when herald first saw it) to a delivery's success.",
                &["delivery"],
                AGE_BUCKETS,
            ),
            dead_letters: counter(
                &r,
                "herald_dead_letters_total",
                "Dead letters written, by reason code.",
                &["reason"],
            ),
            dead_letters_evicted: counter(
                &r,
                "herald_dead_letters_evicted_total",
                "Oldest dead letters removed because the store reached failed.max_entries.",
                &["queue"],
            ),
            redeliveries: counter(
                &r,
                "herald_redeliveries_total",
                "Envelopes returned to their queue by the reaper after their process died.",
                &["queue"],
            ),
            reclaimed: counter(
                &r,
                "herald_reclaimed_batches_total",
                "Batches this process could not settle because a reaper had already returned them.",
                &["queue"],
            ),
            redis_errors: counter(
                &r,
                "herald_redis_errors_total",
                "Failed Redis operations, by operation.",
                &["op"],
            ),
            queue_depth: gauge(
                &r,
                "herald_queue_depth",
                "Envelopes per queue and state (waiting, processing, delayed, delayed_due, failed), sampled.",
                &["queue", "state"],
            ),
            oldest_waiting,
            inflight: gauge(
                &r,
                "herald_inflight",
                "Envelopes this process has reserved and not settled.",
                &["queue"],
            ),
            circuit_open: gauge(
                &r,
                "herald_circuit_open",
                "1 while a connection's circuit is open.",
                &["connection"],
            ),
            pusher_requests: counter(
                &r,
                "herald_pusher_requests_total",
                "Pusher HTTP API requests, by connection and status (or error kind).",
                &["connection", "status"],
            ),
            live_processes,
            up,
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

    pub fn received(&self, queue: &str, n: usize) {
        self.events_received
            .with_label_values(&[queue])
            .inc_by(n as u64);
    }

    pub fn processed(&self, queue: &str, event: Option<&str>) {
        self.events_processed
            .with_label_values(&[queue, event.unwrap_or("other")])
            .inc();
    }

    /// The metrics of one delivery (`listener:<name>` or `broadcast:<connection>`), resolved
    /// once so the per-event path does no label lookups.
    pub fn delivery(&self, delivery: &str) -> DeliveryMetrics {
        DeliveryMetrics {
            ok: self.deliveries.with_label_values(&[delivery, "ok"]),
            retry: self.deliveries.with_label_values(&[delivery, "retry"]),
            dead: self.deliveries.with_label_values(&[delivery, "dead"]),
            duration: self.delivery_duration.with_label_values(&[delivery]),
            age: self.event_age.with_label_values(&[delivery]),
        }
    }

    pub fn dead_lettered(&self, reason: &str) {
        self.dead_letters.with_label_values(&[reason]).inc();
    }

    pub fn evicted(&self, queue: &str, n: u64) {
        self.dead_letters_evicted
            .with_label_values(&[queue])
            .inc_by(n);
    }

    pub fn redelivered(&self, queue: &str, n: u64) {
        self.redeliveries.with_label_values(&[queue]).inc_by(n);
    }

    pub fn reclaimed(&self, queue: &str) {
        self.reclaimed.with_label_values(&[queue]).inc();
    }

    pub fn redis_error(&self, op: &str) {
        self.redis_errors.with_label_values(&[op]).inc();
    }

    pub fn set_depth(&self, s: &crate::queue::QueueStats) {
        for (state, v) in [
            ("waiting", s.waiting),
            ("processing", s.processing),
            ("delayed", s.delayed),
            ("delayed_due", s.delayed_due),
            ("failed", s.failed),
        ] {
            self.queue_depth
                .with_label_values(&[s.queue.as_str(), state])
                .set(v as i64);
        }
    }

    pub fn set_oldest_waiting(&self, queue: &str, age: f64) {
        self.oldest_waiting.with_label_values(&[queue]).set(age);
    }

    pub fn inflight(&self, queue: &str, delta: i64) {
        self.inflight.with_label_values(&[queue]).add(delta);
    }

    /// Creates the gauge at 0 so dashboards see every queue from the start.
    pub fn init_queue(&self, queue: &str) {
        self.inflight.with_label_values(&[queue]).add(0);
        self.oldest_waiting.with_label_values(&[queue]).add(0.0);
    }

    pub fn set_circuit(&self, connection: &str, open: bool) {
        self.circuit_open
            .with_label_values(&[connection])
            .set(i64::from(open));
    }

    pub fn pusher_request(&self, connection: &str, status: &str) {
        self.pusher_requests
            .with_label_values(&[connection, status])
            .inc();
    }

    pub fn set_live_processes(&self, n: usize) {
        self.live_processes.set(n as i64);
    }

    pub fn set_redis_up(&self, up: bool) {
        self.up.set(if up { 1.0 } else { 0.0 });
    }
}
