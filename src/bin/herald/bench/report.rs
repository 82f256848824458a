//! The bench's report: every figure, as JSON (`--json`) or as a table.

use serde::Serialize;

use super::target::{Counts, Mode, OWN_CALLS};

/// Everything `herald bench` prints.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) redis_version: String,
    pub(crate) cores: usize,
    /// 1-, 5- and 15-minute load averages when the bench started.
    pub(crate) load_average: String,
    pub(crate) concurrency: usize,
    pub(crate) batch_size: usize,
    /// The W1 throughput run.
    #[serde(flatten)]
    pub(crate) w1: W1Figures,
    /// `PUBLISH`/s Redis itself manages here, pipelined, with one pattern subscriber (on a
    /// cluster: on the subscriber's node, which relays each to every other node).
    pub(crate) ceiling_publish_per_sec: f64,
    pub(crate) ceiling_method: String,
    pub(crate) ratio_of_ceiling: f64,
    pub(crate) latency_rate: u32,
    pub(crate) latency_samples: usize,
    pub(crate) latency_p50_ms: f64,
    pub(crate) latency_p99_ms: f64,
    pub(crate) latency_p999_ms: f64,
    pub(crate) latency_max_ms: f64,
    pub(crate) idle_rss_mb: f64,
    /// CPU of an idle herald, in percent of one core.
    pub(crate) idle_cpu_percent: f64,
    /// Push → subscriber for single envelopes onto an idle queue.
    pub(crate) idle_wake_p50_ms: f64,
    pub(crate) idle_wake_max_ms: f64,
    /// What the subscriber did with each message (`verify`: every byte checked).
    pub(crate) subscriber: super::Check,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pusher: Option<PusherReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) outage: Option<OutageReport>,
}

/// What one W1 throughput run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct W1Figures {
    pub(crate) mode: Mode,
    /// The child's `[redis] wait_replicas`.
    pub(crate) wait_replicas: u32,
    /// The queues W1 was spread over (one per master on a cluster, unless `--queues`).
    pub(crate) queues: Vec<String>,
    pub(crate) events: usize,
    pub(crate) envelope_bytes: usize,
    pub(crate) seconds: f64,
    pub(crate) events_per_sec: f64,
    /// `INFO commandstats` calls over every node (a replica counts what it applies from its
    /// master's stream), per event.
    pub(crate) redis_commands_per_event: f64,
    /// The same over the masters only: what the clients sent (standalone: the same figure).
    pub(crate) redis_master_commands_per_event: f64,
    pub(crate) peak_rss_mb: f64,
    /// CPU seconds spent during the run, per party: what limits throughput. `redis` is the
    /// sum over every node.
    pub(crate) cpu_seconds: CpuSeconds,
    /// The same, per event, in microseconds.
    pub(crate) cpu_us_per_event: CpuPerEvent,
    /// Each data node's share (standalone: one).
    pub(crate) nodes: Vec<NodeFigures>,
}

/// One data node during a W1 run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeFigures {
    #[serde(flatten)]
    pub(crate) meta: NodeMeta,
    pub(crate) cpu_seconds: f64,
    pub(crate) cpu_us_per_event: f64,
    pub(crate) commands_per_event: f64,
}

/// A node's place in a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeMeta {
    /// `server`, `master 1`, `replica of 1`.
    pub(crate) node: String,
    pub(crate) addr: String,
    pub(crate) replica: bool,
    /// The subscriber listened here.
    pub(crate) subscriber: bool,
    /// The W1 queues whose slots it serves.
    pub(crate) queues: Vec<String>,
}

impl NodeFigures {
    /// What a node did between two samples over `events` events, less the bench's own
    /// [`OWN_CALLS`].
    pub(super) fn between(meta: NodeMeta, before: Counts, after: Counts, events: usize) -> Self {
        let per_event = |x: f64| x / events.max(1) as f64;
        let cpu = after.cpu - before.cpu;
        let calls = after.calls.saturating_sub(before.calls + OWN_CALLS);
        NodeFigures {
            meta,
            cpu_seconds: cpu,
            cpu_us_per_event: per_event(cpu * 1e6),
            commands_per_event: per_event(calls as f64),
        }
    }
}

/// Every node's CPU seconds, and commands per event over every node and over the masters.
pub(crate) fn node_totals(nodes: &[NodeFigures]) -> (f64, f64, f64) {
    let cpu = nodes.iter().map(|n| n.cpu_seconds).sum();
    let all = nodes.iter().map(|n| n.commands_per_event).sum();
    let masters = nodes
        .iter()
        .filter(|n| !n.meta.replica)
        .map(|n| n.commands_per_event)
        .sum();
    (cpu, all, masters)
}

/// CPU time (user + system) used during W1 by each party on the machine.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CpuSeconds {
    pub(crate) herald: f64,
    pub(crate) redis: f64,
    /// This process: the subscriber that checks or counts messages (preloading happens before).
    pub(crate) subscriber: f64,
    /// Wall-clock seconds of the run, times the cores: the budget all three shared.
    pub(crate) available: f64,
}

/// CPU microseconds per W1 event, per party.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CpuPerEvent {
    pub(crate) herald: f64,
    pub(crate) redis: f64,
    pub(crate) subscriber: f64,
}

impl CpuSeconds {
    /// Per event, in microseconds.
    pub(crate) fn per_event(&self, events: usize) -> CpuPerEvent {
        let us = |s: f64| s * 1e6 / events.max(1) as f64;
        CpuPerEvent {
            herald: us(self.herald),
            redis: us(self.redis),
            subscriber: us(self.subscriber),
        }
    }
}

/// The `--pusher` run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PusherReport {
    pub(crate) events: usize,
    pub(crate) events_per_sec: f64,
    pub(crate) requests: u64,
    pub(crate) requests_per_1000_events: f64,
}

/// The `--outage` run (issue 11 §7).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OutageReport {
    pub(crate) outage_seconds: f64,
    pub(crate) target_rate: u32,
    pub(crate) pushed: usize,
    pub(crate) achieved_rate: f64,
    /// Events that reached the fake, duplicates included.
    pub(crate) delivered: usize,
    pub(crate) distinct_delivered: usize,
    pub(crate) lost: usize,
    pub(crate) dead_lettered: u64,
    pub(crate) delivered_during_outage: usize,
    pub(crate) peak_delayed: u64,
    /// Envelopes parked for the open circuit.
    pub(crate) peak_parked: u64,
    pub(crate) peak_waiting: u64,
    pub(crate) redis_memory_peak_above_baseline_mb: f64,
    /// Redis memory above baseline / (delayed + parked + waiting), at the largest backlog sampled.
    pub(crate) bytes_per_held_envelope: f64,
    pub(crate) herald_cpu_seconds_outage: f64,
    /// Of one core, during the outage.
    pub(crate) herald_cpu_share_outage: f64,
    pub(crate) herald_cpu_seconds_drain: f64,
    /// From recovery to the first delivery: the wait for the circuit's next probe (up to
    /// `circuit_open_for`), which depends on when in its period the server came back.
    pub(crate) resume_seconds: f64,
    /// From the first delivery after recovery to the last, and the rate over it.
    pub(crate) drain_seconds: f64,
    pub(crate) drain_per_sec: f64,
    /// Adjacent deliveries after recovery younger than the one before (0: strictly oldest first).
    pub(crate) age_inversion_fraction: f64,
    /// After recovery, how many places from its place in order of age an event arrived: p99
    /// and max.
    pub(crate) age_displacement_p99: usize,
    pub(crate) age_displacement_max: usize,
    /// Concurrency × batch size: what concurrent batches may reorder.
    pub(crate) age_window: usize,
    /// Events that arrived further than `age_window` from their place.
    pub(crate) displaced_beyond_window: usize,
}

impl OutageReport {
    fn lines(&self, line: &mut impl FnMut(&str, String)) {
        line(
            "outage",
            format!(
                "{:.0} s of 503s; {} pushed at {:.0}/s (target {}/s)",
                self.outage_seconds, self.pushed, self.achieved_rate, self.target_rate
            ),
        );
        line(
            "outage delivered",
            format!(
                "{} distinct of {} pushed ({} lost, {} events incl. repeats, {} dead-lettered)",
                self.distinct_delivered, self.pushed, self.lost, self.delivered, self.dead_lettered
            ),
        );
        line(
            "outage backlog peak",
            format!(
                "delayed {}, parked {}, waiting {}; redis +{:.1} MB, {:.0} B/envelope",
                self.peak_delayed,
                self.peak_parked,
                self.peak_waiting,
                self.redis_memory_peak_above_baseline_mb,
                self.bytes_per_held_envelope
            ),
        );
        line(
            "outage herald CPU",
            format!(
                "{:.2} s ({:.0}% of a core) down; {:.2} s draining",
                self.herald_cpu_seconds_outage,
                self.herald_cpu_share_outage * 100.0,
                self.herald_cpu_seconds_drain
            ),
        );
        line(
            "outage drain",
            format!(
                "first delivery {:.2} s after recovery, then {:.2} s at {:.0} events/s; age \
                 inversions {:.4}",
                self.resume_seconds,
                self.drain_seconds,
                self.drain_per_sec,
                self.age_inversion_fraction
            ),
        );
        line(
            "outage drain order",
            format!(
                "places from order of age: p99 {}, max {}; {} beyond {} (concurrency × batch)",
                self.age_displacement_p99,
                self.age_displacement_max,
                self.displaced_beyond_window,
                self.age_window
            ),
        );
    }
}

impl Report {
    /// The human-readable table.
    pub(crate) fn table(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: String| s.push_str(&format!("{k:<26}{v}\n"));
        let w = &self.w1;
        line(
            "workload",
            format!(
                "W1: {} envelopes of {} bytes over {} queue(s), redis broadcaster",
                w.events,
                w.envelope_bytes,
                w.queues.len()
            ),
        );
        line(
            "machine",
            format!(
                "{} cores (load average {}); redis {} on the same machine ({})",
                self.cores,
                self.load_average,
                self.redis_version,
                w.deployment()
            ),
        );
        line(
            "worker",
            format!(
                "concurrency {} x batch {} per queue, wait_replicas {}",
                self.concurrency, self.batch_size, w.wait_replicas
            ),
        );
        line(
            "throughput",
            format!("{:.0} events/s ({:.2} s)", w.events_per_sec, w.seconds),
        );
        line(
            "redis ceiling",
            format!(
                "{:.0} PUBLISH/s ({})",
                self.ceiling_publish_per_sec, self.ceiling_method
            ),
        );
        line("ratio to ceiling", format!("{:.3}", self.ratio_of_ceiling));
        line("redis commands / event", w.commands());
        line(
            "latency",
            format!(
                "p50 {:.3} ms, p99 {:.3} ms, p999 {:.3} ms, max {:.3} ms ({} events at {}/s)",
                self.latency_p50_ms,
                self.latency_p99_ms,
                self.latency_p999_ms,
                self.latency_max_ms,
                self.latency_samples,
                self.latency_rate
            ),
        );
        let c = &w.cpu_seconds;
        line(
            "CPU during W1",
            format!(
                "herald {:.2} s, redis {:.2} s, subscriber {:.2} s, of {:.2} s available",
                c.herald, c.redis, c.subscriber, c.available
            ),
        );
        let u = &w.cpu_us_per_event;
        line(
            "CPU per event",
            format!(
                "herald {:.2} µs, redis {:.2} µs, subscriber {:.2} µs ({} subscriber)",
                u.herald,
                u.redis,
                u.subscriber,
                match self.subscriber {
                    super::Check::Verify => "verifying",
                    super::Check::Count => "counting",
                }
            ),
        );
        w.node_lines(&mut line);
        line("peak RSS (W1)", format!("{:.1} MB", w.peak_rss_mb));
        line("idle RSS", format!("{:.1} MB", self.idle_rss_mb));
        line(
            "idle",
            format!(
                "{:.2} % of a core; an idle queue's event arrives in p50 {:.3} ms, max {:.3} ms",
                self.idle_cpu_percent, self.idle_wake_p50_ms, self.idle_wake_max_ms
            ),
        );
        if let Some(p) = &self.pusher {
            p.lines(&mut line);
        }
        if let Some(out) = &self.outage {
            out.lines(&mut line);
        }
        s
    }
}

impl W1Figures {
    /// `standalone`, or `cluster: 3 masters, 3 replicas`.
    pub(crate) fn deployment(&self) -> String {
        match self.mode {
            Mode::Standalone => "standalone".into(),
            Mode::Cluster => {
                let replicas = self.nodes.iter().filter(|n| n.meta.replica).count();
                let masters = self.nodes.len() - replicas;
                format!("cluster: {masters} masters, {replicas} replicas")
            }
        }
    }

    /// Commands per event, and on a cluster the masters' share.
    pub(crate) fn commands(&self) -> String {
        match self.mode {
            Mode::Standalone => format!("{:.3}", self.redis_commands_per_event),
            Mode::Cluster => format!(
                "{:.3} over every node ({:.3} on the masters)",
                self.redis_commands_per_event, self.redis_master_commands_per_event
            ),
        }
    }

    /// On a cluster, one line per node: its CPU and commands per event, and what it serves.
    fn node_lines(&self, line: &mut impl FnMut(&str, String)) {
        if self.mode == Mode::Standalone {
            return;
        }
        for n in &self.nodes {
            line(
                &format!("  {}", n.meta.node),
                format!(
                    "{}: CPU {:.2} µs/event, {:.3} commands/event{}",
                    n.meta.addr,
                    n.cpu_us_per_event,
                    n.commands_per_event,
                    n.serves()
                ),
            );
        }
    }
}

impl NodeFigures {
    /// `; 1 queue; the subscriber`: what the node serves besides replication and the bus
    /// (which queues is in the JSON; their names change from run to run).
    pub(crate) fn serves(&self) -> String {
        let mut s = String::new();
        match self.meta.queues.len() {
            0 => {}
            1 => s.push_str("; 1 queue"),
            n => s.push_str(&format!("; {n} queues")),
        }
        if self.meta.subscriber {
            s.push_str("; the subscriber");
        }
        s
    }
}

impl PusherReport {
    /// The `--pusher` run's lines of the table.
    fn lines(&self, line: &mut impl FnMut(&str, String)) {
        line(
            "pusher throughput",
            format!(
                "{:.0} events/s ({} events)",
                self.events_per_sec, self.events
            ),
        );
        line(
            "pusher requests",
            format!(
                "{} ({:.1} per 1000 events)",
                self.requests, self.requests_per_1000_events
            ),
        );
    }
}

/// Nearest-rank percentile of sorted values (0 for none).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank; the epsilon keeps 99.9% of 1000 at rank 999 despite float rounding.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(node: &str, replica: bool) -> NodeMeta {
        NodeMeta {
            node: node.into(),
            addr: "127.0.0.1:1".into(),
            replica,
            subscriber: false,
            queues: Vec::new(),
        }
    }

    #[test]
    fn node_figures_are_per_event_less_the_benchs_own_calls() {
        let counts = |cpu, calls| Counts { cpu, calls };
        let n = NodeFigures::between(
            meta("master 1", false),
            counts(1.0, 100),
            counts(1.5, 1103),
            1000,
        );
        assert!((n.cpu_seconds - 0.5).abs() < 1e-9);
        assert!((n.cpu_us_per_event - 500.0).abs() < 1e-6);
        assert!((n.commands_per_event - 1.0).abs() < 1e-9);
        // A node that saw only the bench's own INFO calls did nothing.
        let idle = NodeFigures::between(
            meta("replica of 1", true),
            counts(2.0, 10),
            counts(2.0, 13),
            1000,
        );
        assert_eq!(idle.commands_per_event, 0.0);
        let r = NodeFigures::between(
            meta("replica of 1", true),
            counts(0.0, 0),
            counts(0.25, 503),
            1000,
        );
        let (cpu, all, masters) = node_totals(&[n, r]);
        assert!((cpu - 0.75).abs() < 1e-9);
        assert!((all - 1.5).abs() < 1e-9);
        assert!((masters - 1.0).abs() < 1e-9);
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
