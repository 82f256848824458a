//! Settling: delivery outcomes → what happens to the envelope. Pure; no I/O.
//!
//! Owns: the one place outcomes combine (vector's `BatchStatus::update`): acknowledge, retry
//! only the deliveries still pending with `attempts + 1` after a backoff, dead-letter fatal or
//! exhausted deliveries, and dead-letter envelopes that were redelivered after crashes until
//! they ran out of attempts. Does not own: applying the decision (`queue::Queue::settle`, one
//! atomic script) or running deliveries.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::clock::Clock;
use crate::config::RetryConfig;
use crate::delivery::{DeliveryError, DeliveryId, DeliveryResult};
use crate::envelope::{Envelope, Rejection};
use crate::queue::{DeadLetter, FailedDelivery};

/// What to do with one envelope once its deliveries ran. Both parts may be present: a fatal
/// delivery is dead-lettered while a retryable one of the same envelope is retried.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub retry: Option<Retry>,
    pub dead: Option<(String, DeadLetter)>,
}

/// An envelope to put in the delayed set.
#[derive(Debug)]
pub(crate) struct Retry {
    /// The re-encoded envelope: only the pending deliveries, `attempts` raised.
    pub payload: Vec<u8>,
    /// When it is due, in ms since the epoch.
    pub due_ms: u64,
    pub pending: Vec<DeliveryId>,
    /// Attempts made so far, the one that just failed included.
    pub attempts: u32,
    pub delay: Duration,
    /// The circuit every pending delivery waits for, when nothing else failed: the envelope is
    /// parked until that circuit closes (`queue::Queue::settle`), not put in the delayed set.
    pub parked_on: Option<String>,
    /// The envelope's age stamp (its `created_at`, else when herald first saw it), in ms since
    /// the epoch: parked envelopes come back oldest first by it.
    pub age_ms: u64,
}

/// How bad a failed outcome is, when several must combine into one. A fatal error beats a real
/// retryable failure, which beats a deferral (a circuit open, a part not attempted): a deferral
/// must never hide the 5xx next to it, or an event would retry without using up attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    /// Parked, not tried.
    Deferred,
    /// Tried and failed; may succeed later.
    Retryable,
    /// Cannot succeed as it is.
    Fatal,
}

fn severity(e: &DeliveryError) -> Severity {
    match e {
        e if !e.is_retryable() => Severity::Fatal,
        DeliveryError::Deferred { .. } => Severity::Deferred,
        _ => Severity::Retryable,
    }
}

/// One outcome for a delivery made of several parts (an event split over several requests):
/// the most severe error, and among equals the one asking to wait longest. `None` when there
/// is none.
pub(crate) fn worst(errors: impl IntoIterator<Item = DeliveryError>) -> Option<DeliveryError> {
    errors.into_iter().reduce(|w, e| {
        let (se, sw) = (severity(&e), severity(&w));
        if se > sw || (se == sw && e.retry_after() > w.retry_after()) {
            e
        } else {
            w
        }
    })
}

/// The one circuit every failed delivery of `results` was deferred by, if there is one: an
/// envelope waiting only for it is parked until it closes.
fn one_circuit(results: &[(DeliveryId, DeliveryResult)]) -> Option<String> {
    let mut circuits = results.iter().filter_map(|(_, r)| r.as_ref().err());
    let first = match circuits.next()? {
        DeliveryError::Deferred { circuit, .. } => circuit.as_ref()?,
        _ => return None,
    };
    circuits
        .all(|e| matches!(e, DeliveryError::Deferred { circuit: Some(c), .. } if c == first))
        .then(|| first.clone())
}

/// The attempt limit for `env` under `policy`.
pub(crate) fn max_attempts(env: &Envelope, policy: &RetryConfig) -> u32 {
    env.max_attempts.unwrap_or(policy.max_attempts)
}

/// Combines the outcomes of one attempt at `env`.
pub(crate) fn decide(
    queue: &str,
    env: &Envelope,
    results: &[(DeliveryId, DeliveryResult)],
    policy: &RetryConfig,
    clock: Clock,
) -> Decision {
    // A delivery deferred by an open circuit was parked, not tried: when nothing else failed,
    // this round does not count against max_attempts (the envelope waits for the remote
    // instead of burning its retries on it).
    let tried = results
        .iter()
        .any(|(_, r)| matches!(r, Err(e) if severity(e) > Severity::Deferred));
    let attempts = if tried {
        env.attempts.saturating_add(1)
    } else {
        env.attempts
    };
    let max = max_attempts(env, policy);
    let exhausted = tried && attempts >= max;

    let mut pending = Vec::new();
    let mut dead = Vec::new();
    let mut retry_after = Duration::ZERO;
    for (id, result) in results {
        let Err(e) = result else { continue };
        if e.is_retryable() && !exhausted {
            pending.push(id.clone());
            retry_after = retry_after.max(e.retry_after().unwrap_or_default());
        } else {
            dead.push(FailedDelivery {
                delivery: id.to_string(),
                code: e.code().to_string(),
                error: e.to_string(),
                retryable: e.is_retryable(),
            });
        }
    }

    let mut decision = Decision::default();
    if !pending.is_empty() {
        let delay = backoff(policy, attempts).max(retry_after);
        let first_seen = clock.secs();
        decision.retry = Some(Retry {
            payload: env.encode_requeue(attempts, Some(&pending), first_seen),
            due_ms: clock.now_ms + delay.as_millis() as u64,
            pending,
            attempts,
            delay,
            parked_on: if tried { None } else { one_circuit(results) },
            age_ms: (env.created_at.unwrap_or(first_seen) * 1000.0) as u64,
        });
    }
    if !dead.is_empty() {
        let (code, reason) = if dead.iter().any(|d| d.retryable) {
            (
                "retries_exhausted".to_string(),
                format!(
                    "gave up after {}: {}",
                    attempts_text(attempts),
                    summary(&dead)
                ),
            )
        } else {
            (dead[0].code.clone(), summary(&dead))
        };
        decision.dead = Some(dead_letter(queue, env, code, reason, dead, attempts, clock));
    }
    decision
}

/// "1 attempt", "3 attempts".
fn attempts_text(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_string()
    } else {
        format!("{n} attempts")
    }
}

/// An envelope redelivered after worker crashes until it ran out of attempts: dead-lettered
/// without running anything, so a message that kills workers stops doing so.
pub(crate) fn poisoned(
    queue: &str,
    env: &Envelope,
    deliveries: Vec<DeliveryId>,
    policy: &RetryConfig,
    clock: Clock,
) -> Decision {
    let max = max_attempts(env, policy);
    let reason = format!(
        "already attempted {} times (limit {max}); the worker running it stopped before settling, \
         so it may be what kills workers",
        env.attempts
    );
    let failed = deliveries
        .iter()
        .map(|d| FailedDelivery {
            delivery: d.to_string(),
            code: "redelivered".into(),
            error: "worker stopped before this delivery was settled".into(),
            retryable: true,
        })
        .collect();
    Decision {
        retry: None,
        dead: Some(dead_letter(
            queue,
            env,
            "redelivered_too_often".into(),
            reason,
            failed,
            env.attempts,
            clock,
        )),
    }
}

/// Input that cannot be processed: dead-letter the original bytes with the reason.
pub(crate) fn rejected(
    queue: &str,
    raw: &[u8],
    env: Option<&Envelope>,
    why: &Rejection,
    clock: Clock,
) -> (String, DeadLetter) {
    // Keep the producer's id when the bytes still name one, so `herald failed show <id>` finds it.
    let id = match env {
        Some(e) => e.id.clone(),
        None => {
            crate::envelope::lenient_id(raw).unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
        }
    };
    (
        id.clone(),
        DeadLetter {
            envelope_id: env.map(|e| e.id.clone()),
            queue: queue.to_string(),
            event: env.map(|e| e.event.clone()),
            code: why.code().to_string(),
            reason: why.to_string(),
            deliveries: Vec::new(),
            attempts: env.map_or(0, |e| e.attempts),
            failed_at: clock.now_ms,
            payload: DeadLetter::payload_of(raw),
        },
    )
}

fn dead_letter(
    queue: &str,
    env: &Envelope,
    code: String,
    reason: String,
    deliveries: Vec<FailedDelivery>,
    attempts: u32,
    clock: Clock,
) -> (String, DeadLetter) {
    (
        env.id.clone(),
        DeadLetter {
            envelope_id: Some(env.id.clone()),
            queue: queue.to_string(),
            event: Some(env.event.clone()),
            code,
            reason,
            deliveries,
            attempts,
            failed_at: clock.now_ms,
            payload: DeadLetter::payload_of(env.raw()),
        },
    )
}

fn summary(dead: &[FailedDelivery]) -> String {
    dead.iter()
        .map(|d| format!("{}: {}", d.delivery, d.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The delay before attempt `attempts + 1`: the explicit list (its last entry repeating), or
/// exponential from `base` doubling up to `cap` with full jitter (uniform in `[0, d]`, as AWS's
/// "Exponential Backoff and Jitter" recommends, so replicas retrying together spread out).
pub(crate) fn backoff(policy: &RetryConfig, attempts: u32) -> Duration {
    let n = attempts.max(1) as usize - 1;
    if !policy.delays.is_empty() {
        return policy.delays[n.min(policy.delays.len() - 1)];
    }
    let ceiling = ExponentialBuilder::default()
        .with_min_delay(policy.base)
        .with_max_delay(policy.cap)
        .with_factor(2.0)
        .without_max_times()
        .build()
        .nth(n)
        .unwrap_or(policy.cap);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Limits, decode};
    use bytes::Bytes;

    fn env(json: &str) -> Envelope {
        decode(Bytes::copy_from_slice(json.as_bytes()), &Limits::default()).unwrap()
    }

    fn policy(max: u32) -> RetryConfig {
        RetryConfig {
            max_attempts: max,
            delays: vec![Duration::from_secs(5)],
            ..RetryConfig::default()
        }
    }

    const CLOCK: Clock = Clock { now_ms: 1_000_000 };

    fn l(n: &str) -> DeliveryId {
        DeliveryId::Listener(n.into())
    }
    fn b(n: &str) -> DeliveryId {
        DeliveryId::Broadcast(n.into())
    }
    fn http(status: u16) -> DeliveryResult {
        Err(DeliveryError::Http {
            status,
            body: "x".into(),
            retry_after: None,
        })
    }

    /// One line per case: outcomes → (pending retried, dead deliveries, dead code).
    #[track_caller]
    fn check(
        attempts: u32,
        results: &[(DeliveryId, DeliveryResult)],
        want_retry: &[&str],
        want_dead: &[&str],
        want_code: Option<&str>,
    ) {
        let e = env(&format!(
            r#"{{"event":"E","data":{{}},"attempts":{attempts}}}"#
        ));
        let d = decide("q", &e, results, &policy(3), CLOCK);
        let retry: Vec<String> = d
            .retry
            .as_ref()
            .map(|r| r.pending.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        assert_eq!(retry, want_retry);
        let dead: Vec<String> = d
            .dead
            .as_ref()
            .map(|(_, dl)| dl.deliveries.iter().map(|x| x.delivery.clone()).collect())
            .unwrap_or_default();
        assert_eq!(dead, want_dead);
        assert_eq!(d.dead.as_ref().map(|(_, dl)| dl.code.as_str()), want_code);
    }

    #[test]
    fn outcomes_table() {
        // all ok → ack
        check(0, &[(l("a"), Ok(())), (b("redis"), Ok(()))], &[], &[], None);
        // one retryable failure → only it is retried
        check(
            0,
            &[(l("a"), http(500)), (b("redis"), Ok(()))],
            &["listener:a"],
            &[],
            None,
        );
        // fatal → dead, nothing retried
        check(
            0,
            &[(l("a"), http(404)), (b("redis"), Ok(()))],
            &[],
            &["listener:a"],
            Some("http_4xx"),
        );
        // mixed: fatal dead-lettered, retryable retried
        check(
            0,
            &[(l("a"), http(404)), (b("p"), http(503))],
            &["broadcast:p"],
            &["listener:a"],
            Some("http_4xx"),
        );
        // last attempt: retryable becomes exhausted
        check(
            2,
            &[(l("a"), http(500))],
            &[],
            &["listener:a"],
            Some("retries_exhausted"),
        );
        check(1, &[(l("a"), http(500))], &["listener:a"], &[], None);
    }

    #[test]
    fn retry_carries_attempts_and_pending_and_honours_retry_after() {
        let e = env(r#"{"id":"e1","event":"E","data":{"k":1}}"#);
        let results = [(
            b("pusher"),
            Err(DeliveryError::Http {
                status: 429,
                body: String::new(),
                retry_after: Some(Duration::from_secs(30)),
            }),
        )];
        let d = decide("q", &e, &results, &policy(5), CLOCK);
        let r = d.retry.unwrap();
        assert_eq!(r.attempts, 1);
        assert_eq!(r.due_ms, CLOCK.now_ms + 30_000);
        let back = env(std::str::from_utf8(&r.payload).unwrap());
        assert_eq!(back.id, "e1");
        assert_eq!(back.attempts, 1);
        assert_eq!(back.pending, Some(vec![b("pusher")]));
    }

    #[test]
    fn deliveries_deferred_by_an_open_circuit_do_not_use_up_attempts() {
        let deferred = || {
            Err(DeliveryError::Deferred {
                reason: "circuit open".into(),
                retry_after: Some(Duration::from_secs(7)),
                circuit: Some("pusher".into()),
            })
        };
        // On what would be the last attempt: parked again, attempts unchanged, due when the
        // circuit may close.
        let e = env(r#"{"event":"E","data":{},"attempts":2}"#);
        let d = decide("q", &e, &[(b("pusher"), deferred())], &policy(3), CLOCK);
        assert!(d.dead.is_none());
        let r = d.retry.unwrap();
        assert_eq!(r.attempts, 2);
        assert_eq!(r.due_ms, CLOCK.now_ms + 7_000);
        assert_eq!(
            r.parked_on.as_deref(),
            Some("pusher"),
            "parked until it closes"
        );
        // A real failure next to it still counts.
        let d = decide(
            "q",
            &e,
            &[(b("pusher"), deferred()), (l("hook"), http(500))],
            &policy(3),
            CLOCK,
        );
        assert!(d.retry.is_none());
        let dead = d.dead.unwrap().1;
        assert_eq!(dead.code, "retries_exhausted");
        assert_eq!(dead.deliveries.len(), 2);
    }

    #[test]
    fn only_an_envelope_waiting_for_one_circuit_alone_is_parked() {
        let on = |circuit: Option<&str>| {
            Err(DeliveryError::Deferred {
                reason: "deferred".into(),
                retry_after: Some(Duration::from_secs(1)),
                circuit: circuit.map(Into::into),
            })
        };
        let e = env(r#"{"event":"E","data":{},"created_at":1700000000.5}"#);
        let parked = |results: &[(DeliveryId, DeliveryResult)]| {
            let r = decide("q", &e, results, &policy(3), CLOCK).retry.unwrap();
            r.parked_on
        };
        let d = decide("q", &e, &[(b("a"), on(Some("a")))], &policy(3), CLOCK);
        assert_eq!(
            d.retry.unwrap().age_ms,
            1_700_000_000_500,
            "by its created_at"
        );
        assert_eq!(
            parked(&[(b("a"), on(Some("a"))), (b("b"), Ok(()))]).as_deref(),
            Some("a")
        );
        // Two circuits, or a spent budget (no circuit), or a real failure: the delayed set.
        assert_eq!(
            parked(&[(b("a"), on(Some("a"))), (b("b"), on(Some("b")))]),
            None
        );
        assert_eq!(parked(&[(b("a"), on(Some("a"))), (b("b"), on(None))]), None);
        assert_eq!(
            parked(&[(b("a"), on(Some("a"))), (l("h"), http(500))]),
            None
        );
    }

    #[test]
    fn envelope_max_attempts_overrides_policy() {
        let e = env(r#"{"event":"E","data":{},"max_attempts":1}"#);
        let d = decide("q", &e, &[(l("a"), http(500))], &policy(10), CLOCK);
        assert!(d.retry.is_none());
        let dead = d.dead.unwrap().1;
        assert_eq!(dead.code, "retries_exhausted");
        // Regression: the reason said "gave up after 1 attempts".
        assert!(
            dead.reason.starts_with("gave up after 1 attempt: "),
            "{}",
            dead.reason
        );
    }

    #[test]
    fn backoff_schedules() {
        let explicit = RetryConfig {
            delays: vec![Duration::from_secs(1), Duration::from_secs(5)],
            ..RetryConfig::default()
        };
        assert_eq!(backoff(&explicit, 1), Duration::from_secs(1));
        assert_eq!(backoff(&explicit, 2), Duration::from_secs(5));
        assert_eq!(backoff(&explicit, 9), Duration::from_secs(5));
        let exp = RetryConfig {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            ..RetryConfig::default()
        };
        for (attempt, ceiling) in [(1, 1), (2, 2), (3, 4), (9, 256), (10, 300), (40, 300)] {
            for _ in 0..50 {
                let d = backoff(&exp, attempt);
                assert!(
                    d <= Duration::from_secs(ceiling),
                    "attempt {attempt}: {d:?}"
                );
            }
        }
        // Full jitter spreads over the whole range, not only its top half.
        assert!((0..200).any(|_| backoff(&exp, 9) < Duration::from_secs(128)));
    }
}
