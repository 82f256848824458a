//! `herald bench --outage <duration>`: issue 11 §7, a Pusher endpoint down while events arrive
//! at volume.
//!
//! Owns: the scenario (the local Pusher fake answers 503 to everything for the outage while a
//! producer pushes stamped W1 envelopes at `--outage-rate` with one pipelined `LPUSH` per 10 ms
//! tick, then the fake is healthy again), the sampler beside it (delayed-set and parked-set
//! `ZCARD`, waiting list `LLEN`, Redis `used_memory`, every 100 ms), the tally of what reached
//! the fake (distinct order ids: nothing lost; after recovery, how far each event arrived from
//! its place in order of age, and adjacent inversions of producer stamps), and the
//! [`OutageReport`]. Does not own: any herald behaviour; it observes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use herald_testkit::PusherFake;
use herald_testkit::w1::{find_u64, w1_envelope};

use super::measure::{now_us, process_cpu};
use super::report::OutageReport;
use super::target::Target;
use super::{BenchError, Child, Conn, Options};

/// What reached the fake, folded as it arrives (the fake's events are taken every sample).
#[derive(Debug, Default)]
pub(super) struct Tally {
    ids: HashSet<u64>,
    /// Events seen, duplicates included.
    pub(super) delivered: usize,
    /// Adjacent pairs (in arrival order, after recovery) and how many went backwards in age.
    pub(super) pairs: u64,
    pub(super) inversions: u64,
    last_stamp: Option<u64>,
    /// Producer stamps of the events after recovery, in arrival order.
    stamps: Vec<u64>,
}

impl Tally {
    /// Counts one delivered event: its order id and producer stamp (µs); `ordered` when it
    /// arrived after recovery, so its age order counts.
    pub(super) fn see(&mut self, id: u64, stamp: u64, ordered: bool) {
        self.delivered += 1;
        self.ids.insert(id);
        if ordered {
            self.stamps.push(stamp);
            if let Some(prev) = self.last_stamp {
                self.pairs += 1;
                if stamp < prev {
                    self.inversions += 1;
                }
            }
            self.last_stamp = Some(stamp);
        }
    }

    pub(super) fn distinct(&self) -> usize {
        self.ids.len()
    }

    /// How many places each event after recovery arrived from its place in order of age
    /// (events with one stamp share their places), sorted.
    pub(super) fn displacements(&self) -> Vec<usize> {
        let mut by_age = self.stamps.clone();
        by_age.sort_unstable();
        let mut d: Vec<usize> = (self.stamps.iter().enumerate())
            .map(|(at, s)| {
                let first = by_age.partition_point(|x| x < s);
                let last = by_age.partition_point(|x| x <= s) - 1;
                first.saturating_sub(at) + at.saturating_sub(last)
            })
            .collect();
        d.sort_unstable();
        d
    }

    /// Share of adjacent deliveries after recovery that were younger than the one before.
    pub(super) fn inversion_fraction(&self) -> f64 {
        if self.pairs == 0 {
            0.0
        } else {
            self.inversions as f64 / self.pairs as f64
        }
    }
}

/// Peaks seen by the sampler.
#[derive(Debug, Default)]
struct Peaks {
    delayed: u64,
    parked: u64,
    waiting: u64,
    memory: u64,
    /// (backlog, memory above baseline) at the sample with the largest backlog.
    at_backlog: (u64, u64),
}

/// Bytes of Redis memory per envelope held back (0 with no backlog).
pub(super) fn bytes_per_envelope(memory_above_baseline: u64, backlog: u64) -> f64 {
    if backlog == 0 {
        0.0
    } else {
        memory_above_baseline as f64 / backlog as f64
    }
}

/// Runs the outage scenario on a private queue and reports it.
pub(super) async fn run(
    o: &Options,
    target: &mut Target,
    tag: &str,
    outage: Duration,
    rate: u32,
) -> Result<OutageReport, BenchError> {
    let fake = PusherFake::start().await?;
    fake.keep_details(true);
    let queue = format!("herald:bench:{tag}:outage");
    let delayed = format!("{{{queue}}}:delayed");
    let parked = format!("{{{queue}}}:parked:on:pusher");
    let held = [delayed.as_str(), parked.as_str()];
    // Every key sampled here is in the queue's slot: its master holds the backlog.
    let conn = &mut target.conn_for(&queue).await?;
    let pusher = fake.connection_toml("pusher", "");
    let child = Child::start(o, std::slice::from_ref(&queue), "\"pusher\"", &pusher).await?;
    // Ready when one warm-up envelope went through.
    let _: () = redis::cmd("LPUSH")
        .arg(&queue)
        .arg(w1_envelope(u64::MAX, o.payload_bytes, Some(now_us())))
        .query_async(conn)
        .await?;
    let ready = Instant::now();
    while fake.event_count() < 1 {
        if ready.elapsed() > Duration::from_secs(30) {
            return Err(BenchError::Failed(
                "herald never delivered the warm-up".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.take_events();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = used_memory(conn).await?;

    let pid = child.pid().map_or("0".to_string(), |p| p.to_string());
    fake.reject_matching("orders.", 503);
    let cpu_before = process_cpu(&pid);
    let started = Instant::now();
    let producer = tokio::spawn(produce(
        conn.clone(),
        queue.clone(),
        rate,
        o.payload_bytes,
        outage,
    ));
    let mut tally = Tally::default();
    let mut peaks = Peaks::default();
    while started.elapsed() < outage {
        sample(conn, &queue, held, baseline, &mut peaks).await?;
        fold(&fake, &mut tally, false);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pushed = producer
        .await
        .map_err(|e| BenchError::Failed(format!("producer: {e}")))??;
    let produced_for = started.elapsed().as_secs_f64();
    fake.clear_rejections();
    let recovered = Instant::now();
    let outage_cpu = process_cpu(&pid) - cpu_before;
    let delivered_in_outage = tally.delivered;
    let delivering = drain(
        conn, &queue, held, baseline, &fake, &mut tally, &mut peaks, pushed,
    )
    .await;
    let drain_cpu = process_cpu(&pid) - cpu_before - outage_cpu;
    let failed: u64 = redis::cmd("ZCARD")
        .arg(format!("{{{queue}}}:failed"))
        .query_async(conn)
        .await
        .unwrap_or(0);
    child.stop().await;
    let since = |t: Instant, from: Instant| t.duration_since(from).as_secs_f64();
    let resume_seconds = delivering.map_or(0.0, |(first, _)| since(first, recovered));
    let drain_seconds = delivering.map_or(0.0, |(first, last)| since(last, first));
    let drained = tally.delivered - delivered_in_outage;
    let displaced = tally.displacements();
    let window = o.concurrency * o.batch_size;
    Ok(OutageReport {
        outage_seconds: outage.as_secs_f64(),
        target_rate: rate,
        pushed,
        achieved_rate: pushed as f64 / produced_for,
        delivered: tally.delivered,
        distinct_delivered: tally.distinct(),
        lost: pushed.saturating_sub(tally.distinct()),
        dead_lettered: failed,
        delivered_during_outage: delivered_in_outage,
        peak_delayed: peaks.delayed,
        peak_parked: peaks.parked,
        peak_waiting: peaks.waiting,
        redis_memory_peak_above_baseline_mb: peaks.memory as f64 / 1e6,
        bytes_per_held_envelope: bytes_per_envelope(peaks.at_backlog.1, peaks.at_backlog.0),
        herald_cpu_seconds_outage: outage_cpu,
        herald_cpu_share_outage: outage_cpu / produced_for,
        herald_cpu_seconds_drain: drain_cpu,
        resume_seconds,
        drain_seconds,
        drain_per_sec: if drain_seconds > 0.0 {
            drained as f64 / drain_seconds
        } else {
            0.0
        },
        age_inversion_fraction: tally.inversion_fraction(),
        age_displacement_p99: percentile_of(&displaced, 0.99),
        age_displacement_max: displaced.last().copied().unwrap_or(0),
        age_window: window,
        displaced_beyond_window: displaced.iter().filter(|&&d| d > window).count(),
    })
}

/// The `q` quantile of sorted `values` (0 when empty).
fn percentile_of(values: &[usize], q: f64) -> usize {
    let Some(last) = values.len().checked_sub(1) else {
        return 0;
    };
    values[((last as f64) * q).round() as usize]
}

/// Samples until every pushed envelope reached the fake (or nothing moved for 60 s); the times
/// of the first and the last delivery (the first sample that found any, and the last).
#[allow(clippy::too_many_arguments)]
async fn drain(
    conn: &mut Conn,
    queue: &str,
    held: [&str; 2],
    baseline: u64,
    fake: &PusherFake,
    tally: &mut Tally,
    peaks: &mut Peaks,
    pushed: usize,
) -> Option<(Instant, Instant)> {
    let mut seen: Option<(Instant, Instant)> = None;
    let mut moved = Instant::now();
    while tally.distinct() < pushed && moved.elapsed() < Duration::from_secs(60) {
        let _ = sample(conn, queue, held, baseline, peaks).await;
        if fold(fake, tally, true) > 0 {
            moved = Instant::now();
            seen = Some((seen.map_or(moved, |(first, _)| first), moved));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

/// Takes the fake's events into `tally`; how many there were.
fn fold(fake: &PusherFake, tally: &mut Tally, ordered: bool) -> usize {
    let events = fake.take_events();
    for e in &events {
        let data = e.data.as_bytes();
        let id = find_u64(data, b"\"order_id\":").unwrap_or(u64::MAX);
        let stamp = find_u64(data, b"\"sent_us\":").unwrap_or(0);
        tally.see(id, stamp, ordered);
    }
    events.len()
}

async fn sample(
    conn: &mut Conn,
    queue: &str,
    [delayed, parked]: [&str; 2],
    baseline: u64,
    peaks: &mut Peaks,
) -> Result<(), BenchError> {
    let (zcard, parked, llen): (u64, u64, u64) = redis::pipe()
        .cmd("ZCARD")
        .arg(delayed)
        .cmd("ZCARD")
        .arg(parked)
        .cmd("LLEN")
        .arg(queue)
        .query_async(conn)
        .await?;
    let memory = used_memory(conn).await?.saturating_sub(baseline);
    peaks.delayed = peaks.delayed.max(zcard);
    peaks.parked = peaks.parked.max(parked);
    peaks.waiting = peaks.waiting.max(llen);
    peaks.memory = peaks.memory.max(memory);
    let backlog = zcard + parked + llen;
    if backlog > peaks.at_backlog.0 {
        peaks.at_backlog = (backlog, memory);
    }
    Ok(())
}

async fn used_memory(conn: &mut Conn) -> Result<u64, BenchError> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// Pushes stamped W1 envelopes at `rate` for `length`, one pipelined `LPUSH` per 10 ms tick;
/// how many were pushed.
async fn produce(
    mut conn: Conn,
    queue: String,
    rate: u32,
    pad: usize,
    length: Duration,
) -> Result<usize, BenchError> {
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pushed = 0usize;
    while start.elapsed() < length {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64().min(length.as_secs_f64()) * rate as f64) as usize;
        if due <= pushed {
            continue;
        }
        let stamp = now_us();
        let mut cmd = redis::cmd("LPUSH");
        cmd.arg(&queue);
        for k in pushed..due {
            cmd.arg(w1_envelope(k as u64, pad, Some(stamp)));
        }
        let _: () = cmd.query_async(&mut conn).await?;
        pushed = due;
    }
    Ok(pushed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_distinct_ids_and_inversions_after_recovery_only() {
        let mut t = Tally::default();
        t.see(1, 50, false);
        t.see(1, 40, false);
        assert_eq!((t.delivered, t.distinct(), t.pairs), (2, 1, 0));
        for (id, stamp) in [(2, 10), (3, 20), (4, 15), (5, 30)] {
            t.see(id, stamp, true);
        }
        assert_eq!((t.distinct(), t.pairs, t.inversions), (5, 3, 1));
        assert!((t.inversion_fraction() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(Tally::default().inversion_fraction(), 0.0);
    }

    #[test]
    fn displacement_is_the_distance_from_the_places_of_an_events_age() {
        let mut t = Tally::default();
        // Ages 1 1 2 3 4; arrived 2 1 4 1 3: places by age 0-1 (1), 2 (2), 3 (3), 4 (4).
        for stamp in [2, 1, 4, 1, 3] {
            t.see(stamp, stamp, true);
        }
        // 2 at 0 (place 2): 2; 1 at 1: 0; 4 at 2 (place 4): 2; 1 at 3 (places 0-1): 2; 3 at 4: 1.
        assert_eq!(t.displacements(), vec![0, 1, 2, 2, 2]);
        assert_eq!(percentile_of(&t.displacements(), 0.99), 2);
        assert_eq!(percentile_of(&[], 0.99), 0);
    }

    #[test]
    fn bytes_per_envelope_divides_and_tolerates_no_backlog() {
        assert_eq!(bytes_per_envelope(1000, 4), 250.0);
        assert_eq!(bytes_per_envelope(1000, 0), 0.0);
    }
}
