//! Request-size budgets (`max_request_bytes`): packing units into requests whose whole size,
//! request line and headers included, stays under the server's limit. Pure; no I/O.
//!
//! Owns: the estimate of what a request costs besides its body ([`overhead`]), refusing before
//! any request an event with a unit that alone cannot fit ([`refuse_oversized`], dead letter
//! code `request_too_large`), and packing single-channel units into `/batch_events` bodies
//! under the budget ([`pack`]). Does not own: the body's bytes (`batch::write_event`) or the
//! per-event limits (`batch::plan`).
//!
//! Laravel Reverb refuses a request over `max_request_size` (10,000 bytes by default, headers
//! included) with 413 and closes the connection; without a budget herald would send ten 10 KB
//! events in one 100 KB request and bisect it down after nine 413s.

use super::batch::{self, Plan, Unit};
use crate::delivery::{DeliveryError, DeliveryResult};

/// Bytes allowed for what herald does not measure exactly: the headers reqwest adds (`accept`,
/// `content-length`, `user-agent`, …) and their line ends, with room to spare.
const HEADER_ALLOWANCE: usize = 320;
/// The signed query besides the key: `auth_timestamp` (10 digits), `auth_version`,
/// `body_md5` (32 hex), `auth_signature` (64 hex), and the names and separators.
const QUERY_ALLOWANCE: usize = 180;
/// `/batch_events`, the longer endpoint.
const LONGEST_ENDPOINT: usize = "/batch_events".len();

/// What a request costs besides its body, for `app_path` (`/apps/<id>`), `key` and `host`:
/// request line, signed query, `Host`, `Content-Type` and the other headers.
pub(crate) fn overhead(app_path: &str, key: &str, host: &str) -> usize {
    "POST  HTTP/1.1\r\n?".len()
        + app_path.len()
        + LONGEST_ENDPOINT
        + QUERY_ALLOWANCE
        + key.len()
        + "host: \r\n".len()
        + host.len()
        + "content-type: application/json\r\n".len()
        + HEADER_ALLOWANCE
}

/// The body budget of a connection: `max_request_bytes` less [`overhead`]; `None` when the
/// connection sets no request limit (0).
pub(crate) fn body_budget(max_request_bytes: usize, overhead: usize) -> Option<usize> {
    (max_request_bytes > 0).then(|| max_request_bytes.saturating_sub(overhead))
}

fn event_len(u: &Unit<'_>, batch_item: bool, idempotency: bool) -> usize {
    let mut out = Vec::with_capacity(u.data.len() + 128);
    batch::write_event(&mut out, u, batch_item, idempotency);
    out.len()
}

/// Refuses every message with a unit whose `/events` request alone exceeds `budget` body
/// bytes: the message becomes an `Invalid` outcome and its units are marked done with it, so
/// no request carries them. `done` is indexed by unit.
pub(crate) fn refuse_oversized(
    plan: &mut Plan<'_>,
    done: &mut [Option<DeliveryResult>],
    budget: usize,
    idempotency: bool,
    connection: &str,
    max_request_bytes: usize,
) {
    for m in plan.messages.iter_mut() {
        let Ok(units) = m else { continue };
        let too_big = units.iter().find_map(|&u| {
            let len = event_len(&plan.units[u], false, idempotency);
            (len > budget).then_some((u, len))
        });
        let Some((u, len)) = too_big else { continue };
        let unit = &plan.units[u];
        let e = DeliveryError::Invalid {
            code: "request_too_large",
            reason: format!(
                "event {}: its request to {} channel(s) would carry a {len}-byte body, over the \
                 {budget} bytes that connection {connection:?}'s max_request_bytes of \
                 {max_request_bytes} leaves after the request line and headers",
                unit.id,
                unit.channels.len()
            ),
        };
        for &u in units.iter() {
            done[u] = Some(Err(e.clone()));
        }
        *m = Err(e);
    }
}

/// Groups `pending` units into requests: single-channel units packed into `/batch_events`
/// bodies of at most `max_batch_size` items and `budget` bytes, in order; every multi-channel
/// unit alone on `/events`. A unit that alone exceeds the budget was refused before
/// ([`refuse_oversized`]); one given anyway goes alone.
pub(crate) fn pack(
    units: &[Unit<'_>],
    pending: &[usize],
    max_batch_size: usize,
    budget: Option<usize>,
    idempotency: bool,
) -> Vec<Vec<usize>> {
    let Some(budget) = budget else {
        return batch::pack(units, pending, max_batch_size);
    };
    let (single, multi): (Vec<usize>, Vec<usize>) =
        pending.iter().partition(|&&u| units[u].channels.len() == 1);
    // `{"batch":[` … `]}`
    const FRAME: usize = 12;
    let mut requests: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut len = FRAME;
    for u in single {
        let item = event_len(&units[u], true, idempotency);
        let comma = usize::from(!current.is_empty());
        let full = current.len() >= max_batch_size.max(1) || len + comma + item > budget;
        if full && !current.is_empty() {
            requests.push(std::mem::take(&mut current));
            len = FRAME;
        }
        len += usize::from(!current.is_empty()) + item;
        current.push(u);
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests.extend(multi.into_iter().map(|u| vec![u]));
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::Message;
    use crate::broadcast::pusher::batch::Settings;
    use serde_json::value::RawValue;

    struct Owned {
        id: String,
        channels: Vec<String>,
        data: Box<RawValue>,
    }

    fn owned(id: &str, channel: &str, bytes: usize) -> Owned {
        Owned {
            id: id.into(),
            channels: vec![channel.into()],
            data: RawValue::from_string(format!(r#"{{"x":"{}"}}"#, "a".repeat(bytes))).unwrap(),
        }
    }

    fn msgs(o: &[Owned]) -> Vec<Message<'_>> {
        o.iter()
            .map(|o| Message {
                id: &o.id,
                name: "E",
                channels: &o.channels,
                data: &o.data,
                socket: None,
                final_payload: false,
                app: None,
            })
            .collect()
    }

    /// Reverb's 10,000 bytes: a burst of large events is packed so every request, headers
    /// included, is under the limit, and never more than max_batch_size to a request.
    #[test]
    fn a_burst_of_large_events_packs_under_the_request_budget() {
        let owned: Vec<Owned> = (0..30)
            .map(|i| owned(&format!("e{i}"), &format!("c{i}"), 1000 + 300 * (i % 10)))
            .collect();
        let batch = msgs(&owned);
        let mut plan = batch::plan(
            &batch,
            &Settings::documented("reverb"),
            None,
            &mut |_, _, _| [0; 24],
        );
        let over = overhead("/apps/app-id", "app-key", "127.0.0.1:8080");
        let budget = body_budget(10_000, over).unwrap();
        let mut done = vec![None; plan.units.len()];
        refuse_oversized(&mut plan, &mut done, budget, true, "reverb", 10_000);
        assert!(done.iter().all(Option::is_none), "each fits alone");
        let pending: Vec<usize> = (0..plan.units.len()).collect();
        let requests = pack(&plan.units, &pending, 10, Some(budget), true);
        let mut seen: Vec<usize> = requests.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, pending, "every unit exactly once");
        for r in &requests {
            let (_, body) = batch::body(&plan.units, r, true);
            assert!(body.len() + over <= 10_000, "{} + {over}", body.len());
            assert!(r.len() <= 10);
        }
        assert!(
            requests.len() > 3,
            "more requests than ten to a batch would need"
        );
        // Without a budget: ten to a request.
        assert_eq!(pack(&plan.units, &pending, 10, None, true).len(), 3);
    }

    #[test]
    fn an_event_that_alone_cannot_fit_is_refused_with_a_reason() {
        let owned = [owned("small", "a", 10), owned("huge", "b", 9_990)];
        let batch = msgs(&owned);
        let mut plan = batch::plan(
            &batch,
            &Settings::documented("reverb"),
            None,
            &mut |_, _, _| [0; 24],
        );
        let budget = body_budget(10_000, overhead("/apps/1", "k", "h")).unwrap();
        let mut done = vec![None; plan.units.len()];
        refuse_oversized(&mut plan, &mut done, budget, false, "reverb", 10_000);
        assert!(plan.messages[0].is_ok() && done[0].is_none());
        match &plan.messages[1] {
            Err(DeliveryError::Invalid { code, reason }) => {
                assert_eq!(*code, "request_too_large");
                assert!(reason.contains("event huge"), "{reason}");
                assert!(reason.contains("max_request_bytes of 10000"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(done[1].is_some(), "no request carries it");
        assert_eq!(body_budget(0, 500), None);
    }
}
