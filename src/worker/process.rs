//! One reserved batch, start to finish: decode → plan → deliver → decide.
//!
//! Owns: [`process`], the function that tells a batch's whole story (a reviewer checks "nothing
//! lost" here), and the log line and metric of each outcome. Does not own: any decision
//! (`registry` routes, `settle` decides) or where envelopes go next (`queue` settles).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;

use super::Shared;
use super::table::DeliveryIx;
use crate::broadcast::Message;
use crate::clock::{self, Clock};
use crate::delivery::{DeliveryError, DeliveryId, DeliveryResult};
use crate::envelope::{self, Envelope};
use crate::listeners::{self, Event};
use crate::queue::{DeadLetter, Settlement, activity};
use crate::registry::{ConnectionIx, Plan};
use crate::settle::{self, Decision};

/// One envelope that decoded and routed, with the outcomes of its deliveries.
struct Routed {
    env: Envelope,
    plan: Plan,
    /// Seconds since the epoch when this attempt started; the age origin without `created_at`.
    seen: f64,
    results: Vec<(DeliveryIx, DeliveryResult)>,
}

/// Processes one reserved batch and says how to settle it. Never fails: bad input becomes a
/// dead letter, failed deliveries become retries or dead letters.
pub(crate) async fn process(shared: &Shared, queue: &str, batch: Vec<Bytes>) -> Settlement {
    let mut settlement = Settlement::default();
    let mut routed = route(shared, queue, batch, &mut settlement);
    let ages = deliver(shared, queue, &mut routed).await;
    // Decided on a clock read after the deliveries: a `Retry-After` counts from when the
    // answer came, not from when the batch started.
    let clock = Clock::now();
    for r in routed {
        decide(shared, queue, r, clock, &mut settlement);
    }
    let tally = &mut settlement.activity;
    for ((ix, bucket), n) in ages.0 {
        *tally
            .ages
            .entry((shared.table.id(ix).to_string(), bucket))
            .or_default() += n;
    }
    settlement
}

/// Decodes and plans every envelope. Bad input, an unroutable envelope and one that already
/// used up its attempts (it keeps killing workers) go straight into the settlement.
fn route(
    shared: &Shared,
    queue: &str,
    batch: Vec<Bytes>,
    settlement: &mut Settlement,
) -> Vec<Routed> {
    let clock = Clock::now();
    let mut routed = Vec::with_capacity(batch.len());
    for raw in batch {
        let env = match envelope::decode(raw.clone(), &shared.limits) {
            Ok(env) => env,
            Err(why) => {
                let dead = settle::rejected(queue, &raw, None, &why, clock);
                reject(shared, queue, settlement, dead);
                continue;
            }
        };
        let plan = match shared.registry.plan(&env) {
            Ok(plan) => plan,
            Err(why) => {
                let dead = settle::rejected(queue, &raw, Some(&env), &why, clock);
                reject(shared, queue, settlement, dead);
                continue;
            }
        };
        if env.attempts >= settle::max_attempts(&env, &plan.retry) {
            let deliveries = shared.registry.deliveries(&plan).collect();
            let d = settle::poisoned(queue, &env, deliveries, &plan.retry, clock);
            record(shared, queue, &env, &plan, d, settlement);
            continue;
        }
        routed.push(Routed {
            env,
            plan,
            seen: clock.secs(),
            results: Vec::new(),
        });
    }
    routed
}

/// Successful deliveries per (delivery, age bucket), for the activity counters. A batch has a
/// few distinct pairs (its deliveries × the buckets its ages span), so a list searched from the
/// end (the pair of the previous outcome is the likeliest) beats hashing every outcome.
#[derive(Default)]
struct Ages(Vec<((DeliveryIx, usize), u64)>);

impl Ages {
    fn add(&mut self, key: (DeliveryIx, usize)) {
        match self.0.iter_mut().rev().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => self.0.push((key, 1)),
        }
    }
}

/// Runs every listener call and one send per broadcast connection, all concurrently, and
/// records each outcome on its envelope.
async fn deliver(shared: &Shared, queue: &str, routed: &mut [Routed]) -> Ages {
    let listened = join_all(listener_calls(shared, queue, routed));
    let broadcast = join_all(broadcasts(shared, queue, routed));
    let (listened, broadcast) = futures::join!(listened, broadcast);
    let mut ages = Ages::default();
    let now = clock::now_secs();
    for (i, ix, result, took) in listened {
        let ix = DeliveryIx::Listener(ix);
        observe(shared, ix, &routed[i], &result, took, now, &mut ages);
        routed[i].results.push((ix, result));
    }
    for (c, members, results, took) in broadcast {
        let ix = DeliveryIx::Connection(c);
        for (i, result) in members.into_iter().zip(results) {
            observe(shared, ix, &routed[i], &result, took, now, &mut ages);
            routed[i].results.push((ix, result));
        }
    }
    ages
}

/// One future per (envelope, listener): (envelope index, listener, outcome, time taken).
fn listener_calls<'a>(
    shared: &'a Shared,
    queue: &'a str,
    routed: &'a [Routed],
) -> impl Iterator<
    Item = impl Future<Output = (usize, crate::registry::ListenerIx, DeliveryResult, Duration)> + 'a,
> + 'a {
    routed.iter().enumerate().flat_map(move |(i, r)| {
        r.plan.listeners.iter().map(move |&l| async move {
            let event = Event {
                id: &r.env.id,
                queue,
                event: &r.env.event,
                channels: &r.plan.channels,
                data: &r.env.data,
                socket: r.env.socket.as_deref(),
                attempt: r.env.attempts + 1,
                envelope: &r.env,
            };
            let start = Instant::now();
            let result = listeners::run(shared.table.listener(l).target.as_ref(), &event).await;
            (i, l, result, start.elapsed())
        })
    })
}

/// One future per broadcast connection with messages in this batch: (connection, envelope
/// indexes, one outcome per envelope, time taken).
fn broadcasts<'a>(
    shared: &'a Shared,
    queue: &'a str,
    routed: &'a [Routed],
) -> impl Iterator<
    Item = impl Future<Output = (ConnectionIx, Vec<usize>, Vec<DeliveryResult>, Duration)> + 'a,
> + 'a {
    shared.table.connections().filter_map(move |(c, slot)| {
        let (members, messages): (Vec<usize>, Vec<Message>) = routed
            .iter()
            .enumerate()
            .filter(|(_, r)| r.plan.connections.contains(&c))
            .map(|(i, r)| (i, message(r)))
            .unzip();
        if members.is_empty() {
            return None;
        }
        Some(async move {
            let start = Instant::now();
            let mut results = slot.target.send(&messages, queue).await;
            // One outcome per message is the driver contract; a missing one must not read as
            // success.
            results.resize_with(members.len(), || {
                Err(DeliveryError::Custom {
                    message: format!("broadcaster {} reported no outcome", slot.id.name()),
                    retryable: true,
                })
            });
            (c, members, results, start.elapsed())
        })
    })
}

fn message(r: &Routed) -> Message<'_> {
    Message {
        id: &r.env.id,
        name: &r.plan.name,
        channels: &r.plan.channels,
        data: &r.env.data,
        socket: r.env.socket.as_deref(),
        final_payload: r.env.final_payload,
        app: r.env.app.as_deref(),
    }
}

/// Counts one outcome: its time, and for a success the event's age (`now` − created).
fn observe(
    shared: &Shared,
    ix: DeliveryIx,
    r: &Routed,
    result: &DeliveryResult,
    took: Duration,
    now: f64,
    ages: &mut Ages,
) {
    let m = shared.table.metrics(ix);
    m.took(took.as_secs_f64());
    if result.is_ok() {
        let age = (now - r.env.created_at.unwrap_or(r.seen)).max(0.0);
        m.ok(age);
        ages.add((ix, activity::age_bucket(age)));
    }
}

/// The settle decision for one envelope whose deliveries ran.
fn decide(shared: &Shared, queue: &str, r: Routed, clock: Clock, settlement: &mut Settlement) {
    let results: Vec<(DeliveryId, DeliveryResult)> = r
        .results
        .iter()
        .map(|(ix, result)| (shared.table.id(*ix).clone(), result.clone()))
        .collect();
    let d = settle::decide(queue, &r.env, &results, &r.plan.retry, clock);
    for ((ix, result), (id, _)) in r.results.iter().zip(&results) {
        if let Err(e) = result {
            if !matches!(e, DeliveryError::Deferred { .. }) {
                settlement.activity.failed += 1;
            }
            let retry = d.retry.as_ref().filter(|retry| retry.pending.contains(id));
            shared.table.metrics(*ix).failed(retry.is_some());
            if let Some(retry) = retry {
                log_retry(queue, &r.env, id, e, retry);
            }
        }
    }
    record(shared, queue, &r.env, &r.plan, d, settlement);
}

fn log_retry(queue: &str, env: &Envelope, id: &DeliveryId, e: &DeliveryError, r: &settle::Retry) {
    if matches!(e, DeliveryError::Deferred { .. }) {
        // Parked while a circuit is open or a budget spent: expected, counted, not worth a line each.
        tracing::debug!(
            message = "Delivery deferred: the connection's circuit is open or its shared budget is spent.",
            envelope_id = %env.id,
            queue = %queue,
            delivery = %id,
            retry_in_ms = r.delay.as_millis() as u64,
        );
    } else {
        tracing::warn!(
            message = "Delivery failed; will retry.",
            envelope_id = %env.id,
            queue = %queue,
            event = %env.event,
            delivery = %id,
            attempt = r.attempts,
            retry_in_ms = r.delay.as_millis() as u64,
            code = e.code(),
            error = %e,
        );
    }
}

/// Adds a rejected envelope's dead letter to the settlement, with its log line and metric.
fn reject(
    shared: &Shared,
    queue: &str,
    settlement: &mut Settlement,
    (id, dead): (String, DeadLetter),
) {
    tracing::warn!(
        message = "Envelope rejected; dead-lettered.",
        envelope_id = %id,
        queue = %queue,
        event = dead.event.as_deref().unwrap_or("-"),
        code = %dead.code,
        reason = %dead.reason,
    );
    shared.metrics.dead_lettered(&dead.code);
    shared.metrics.processed(queue, None);
    settlement.activity.settled += 1;
    settlement.activity.dead += 1;
    settlement.dead.push((id, dead));
}

/// Adds a decision to the settlement, with the processed count and one log line per dead
/// letter (retries were logged per delivery).
fn record(
    shared: &Shared,
    queue: &str,
    env: &Envelope,
    plan: &Plan,
    d: Decision,
    settlement: &mut Settlement,
) {
    shared
        .metrics
        .processed(queue, plan.known.then_some(env.event.as_str()));
    settlement.activity.settled += 1;
    if let Some(r) = d.retry {
        settlement.activity.retried += 1;
        match r.parked_on {
            Some(circuit) => settlement.parked.push((circuit, r.age_ms, r.payload)),
            None => settlement.retries.push((r.due_ms, r.payload)),
        }
    }
    if let Some((id, dead)) = d.dead {
        tracing::warn!(
            message = "Dead-lettered.",
            envelope_id = %id,
            queue = %queue,
            event = %env.event,
            deliveries = %dead.deliveries.iter().map(|d| d.delivery.as_str()).collect::<Vec<_>>().join(","),
            attempt = dead.attempts,
            code = %dead.code,
            reason = %dead.reason,
        );
        shared.metrics.dead_lettered(&dead.code);
        settlement.activity.dead += 1;
        settlement.dead.push((id, dead));
    }
}
