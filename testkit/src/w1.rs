//! W1, the benchmark workload: an `OrderShipped` envelope of about 330 bytes, as a Laravel app
//! pushes it (`herald bench`, the criterion benchmarks and tests share it).

/// The event name as JSON, as a Laravel app writes it.
const EVENT: &str = r#""App\\Events\\OrderShipped""#;

/// One W1 envelope. `k` picks the order; `sent_us`, when given, stamps the producer's clock.
pub fn w1_envelope(k: u64, pad_to: usize, sent_us: Option<u64>) -> Vec<u8> {
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    format!(
        r#"{{"id":"{id}","event":{EVENT},"channels":["{channel}"],"data":{data}}}"#,
        channel = w1_channel(k),
        data = w1_data(k, pad_to, sent_us),
    )
    .into_bytes()
}

/// The channel envelope `k` is broadcast on.
pub fn w1_channel(k: u64) -> String {
    format!("orders.{}", k % 1000)
}

/// What Laravel's `RedisBroadcaster` publishes for envelope `k` (same `pad_to` and `sent_us`):
/// `{"event":…,"data":{…,"socket":null},"socket":null}` — an event without
/// `InteractsWithSockets` gets `socket` added to its payload, and the message repeats it. Built
/// from the W1 parts, not from herald's code, so a subscriber can check every byte against it.
pub fn w1_message(k: u64, pad_to: usize, sent_us: Option<u64>) -> Vec<u8> {
    let data = w1_data(k, pad_to, sent_us);
    let fields = &data[..data.len() - 1];
    format!(r#"{{"event":{EVENT},"data":{fields},"socket":null}},"socket":null}}"#).into_bytes()
}

/// The envelope's `data` object, padded with `note` so the whole envelope is `pad_to` bytes.
fn w1_data(k: u64, pad_to: usize, sent_us: Option<u64>) -> String {
    let customer = k % 100_000;
    let stamp = sent_us
        .map(|t| format!(",\"sent_us\":{t}"))
        .unwrap_or_default();
    let mut data = format!(
        r#"{{"order_id":{k},"status":"shipped","total":"123.45","carrier":"DHL","tracking":"TRK{k:010}","customer":{{"id":{customer},"name":"Customer {customer:05}","email":"customer{customer:05}@example.com"}}{stamp}"#,
    );
    // The envelope around `data`: `{"id":"<36>","event":…,"channels":["…"],"data":` … `}`.
    let head = r#"{"id":"","event":,"channels":[""],"data":"#.len() + 36 + EVENT.len();
    let around = head + w1_channel(k).len() + 1;
    let note_overhead = ",\"note\":\"\"".len();
    let tail = 1;
    if pad_to > around + data.len() + tail + note_overhead {
        let pad = pad_to - around - data.len() - tail - note_overhead;
        data.push_str(",\"note\":\"");
        data.extend(std::iter::repeat_n('x', pad));
        data.push('"');
    }
    data.push('}');
    data
}

/// The number right after `needle` in `hay` (reads `"sent_us":<n>` back out of a message).
pub fn find_u64(hay: &[u8], needle: &[u8]) -> Option<u64> {
    let start = hay.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let digits: Vec<u8> = hay[start..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w1_envelopes_are_json_and_padding_keeps_them_json() {
        let e = w1_envelope(42, 0, None);
        let v: serde_json::Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(v["channels"], serde_json::json!(["orders.42"]));
        let padded: serde_json::Value =
            serde_json::from_slice(&w1_envelope(42, 1000, Some(7))).unwrap();
        assert_eq!(padded["data"]["sent_us"], 7);
    }

    #[test]
    fn padding_reaches_the_size_asked_for() {
        assert_eq!(w1_envelope(99_999, 330, None).len(), 330);
        assert_eq!(w1_envelope(7, 1000, Some(123)).len(), 1000);
    }

    #[test]
    fn the_message_is_the_envelope_data_with_laravels_socket_added() {
        let e: serde_json::Value = serde_json::from_slice(&w1_envelope(42, 400, Some(9))).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&w1_message(42, 400, Some(9))).unwrap();
        let mut data = e["data"].clone();
        data["socket"] = serde_json::Value::Null;
        assert_eq!(m["data"], data);
        assert_eq!(m["event"], e["event"]);
        assert_eq!(m["socket"], serde_json::Value::Null);
        assert_eq!(e["channels"][0], w1_channel(42).as_str());
    }
}
