//! The bench's report: every figure, as JSON (`--json`) or as a table.

use serde::Serialize;

/// Everything `herald bench` prints.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) redis_version: String,
    pub(crate) cores: usize,
    pub(crate) events: usize,
    pub(crate) envelope_bytes: usize,
    pub(crate) concurrency: usize,
    pub(crate) batch_size: usize,
    pub(crate) seconds: f64,
    pub(crate) events_per_sec: f64,
    /// `PUBLISH`/s Redis itself manages here, pipelined, with one pattern subscriber.
    pub(crate) ceiling_publish_per_sec: f64,
    pub(crate) ceiling_method: String,
    pub(crate) ratio_of_ceiling: f64,
    pub(crate) redis_commands_per_event: f64,
    pub(crate) latency_rate: u32,
    pub(crate) latency_samples: usize,
    pub(crate) latency_p50_ms: f64,
    pub(crate) latency_p99_ms: f64,
    pub(crate) latency_p999_ms: f64,
    pub(crate) latency_max_ms: f64,
    pub(crate) peak_rss_mb: f64,
    pub(crate) idle_rss_mb: f64,
    /// CPU of an idle herald, in percent of one core.
    pub(crate) idle_cpu_percent: f64,
    /// Push → subscriber for single envelopes onto an idle queue.
    pub(crate) idle_wake_p50_ms: f64,
    pub(crate) idle_wake_max_ms: f64,
    /// What the subscriber did with each message (`verify`: every byte checked).
    pub(crate) subscriber: super::Check,
    /// CPU seconds spent during the W1 run, per party: what limits throughput.
    pub(crate) cpu_seconds: CpuSeconds,
    /// The same, per event, in microseconds.
    pub(crate) cpu_us_per_event: CpuPerEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pusher: Option<PusherReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) outage: Option<OutageReport>,
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
                "{:.2} s at {:.0} events/s; age inversions {:.4}",
                self.drain_seconds, self.drain_per_sec, self.age_inversion_fraction
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
        line(
            "workload",
            format!(
                "W1: {} envelopes of {} bytes, redis broadcaster",
                self.events, self.envelope_bytes
            ),
        );
        line(
            "machine",
            format!(
                "{} cores; redis {} on the same machine",
                self.cores, self.redis_version
            ),
        );
        line(
            "worker",
            format!(
                "concurrency {} x batch {}",
                self.concurrency, self.batch_size
            ),
        );
        line(
            "throughput",
            format!(
                "{:.0} events/s ({:.2} s)",
                self.events_per_sec, self.seconds
            ),
        );
        line(
            "redis ceiling",
            format!(
                "{:.0} PUBLISH/s ({})",
                self.ceiling_publish_per_sec, self.ceiling_method
            ),
        );
        line("ratio to ceiling", format!("{:.3}", self.ratio_of_ceiling));
        line(
            "redis commands / event",
            format!("{:.3}", self.redis_commands_per_event),
        );
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
        let c = &self.cpu_seconds;
        line(
            "CPU during W1",
            format!(
                "herald {:.2} s, redis {:.2} s, subscriber {:.2} s, of {:.2} s available",
                c.herald, c.redis, c.subscriber, c.available
            ),
        );
        let u = &self.cpu_us_per_event;
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
        line("peak RSS (W1)", format!("{:.1} MB", self.peak_rss_mb));
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

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
