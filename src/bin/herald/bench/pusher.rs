//! `herald bench --pusher`: W1 through the Pusher broadcaster against the local fake.

use std::time::{Duration, Instant};

use herald_testkit::PusherFake;

use super::counter::{bar, preload};
use super::report::PusherReport;
use super::target::Target;
use super::{BenchError, Child, Options};

/// W1 through the Pusher broadcaster (and nothing else) against the local Pusher-compatible
/// fake (`herald_testkit::PusherFake`, which verifies every signature as strictly as sockudo),
/// counting the HTTP requests herald needed.
pub(super) async fn run(
    o: &Options,
    target: &mut Target,
    tag: &str,
) -> Result<PusherReport, BenchError> {
    let fake = PusherFake::start().await?;
    fake.keep_details(false);
    let queue = format!("herald:bench:{tag}:pusher");
    let preloading = bar(o.progress, o.events as u64, "preloading");
    let mut conn = target.conn_for(&queue).await?;
    let orders = 0..o.events as u64;
    preload(&mut conn, &queue, orders, o.payload_bytes, &preloading).await?;
    preloading.finish_and_clear();
    let started = Instant::now();
    let pusher = fake.connection_toml("pusher", "");
    let child = Child::start(o, &[queue], "\"pusher\"", &pusher).await?;
    let progress = bar(o.progress, o.events as u64, "W1 pusher");
    let deadline = started + Duration::from_secs(300 + o.events as u64 / 100);
    let mut last = (0, Instant::now());
    loop {
        let n = fake.event_count();
        if n != last.0 {
            last = (n, Instant::now());
        }
        progress.set_position(n as u64);
        if n >= o.events {
            break;
        }
        if Instant::now() > deadline {
            child.stop().await;
            return Err(BenchError::Failed(format!(
                "only {n} of {} events reached the Pusher fake",
                o.events
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    progress.finish_and_clear();
    let seconds = last.1.duration_since(started).as_secs_f64();
    child.stop().await;
    let requests = fake.request_count() as u64;
    Ok(PusherReport {
        events: o.events,
        events_per_sec: o.events as f64 / seconds,
        requests,
        requests_per_1000_events: requests as f64 * 1000.0 / o.events as f64,
    })
}
