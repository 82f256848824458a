//! W1, the benchmark workload: an `OrderShipped` envelope of about 330 bytes, as a Laravel app
//! pushes it (`herald bench`, the criterion benchmarks and tests share it).

/// One W1 envelope. `k` picks the order; `sent_us`, when given, stamps the producer's clock.
pub fn w1_envelope(k: u64, pad_to: usize, sent_us: Option<u64>) -> Vec<u8> {
    let customer = k % 100_000;
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let stamp = sent_us
        .map(|t| format!(",\"sent_us\":{t}"))
        .unwrap_or_default();
    let mut e = format!(
        r#"{{"id":"{id}","event":"App\\Events\\OrderShipped","channels":["orders.{ch}"],"data":{{"order_id":{k},"status":"shipped","total":"123.45","carrier":"DHL","tracking":"TRK{k:010}","customer":{{"id":{customer},"name":"Customer {customer:05}","email":"customer{customer:05}@example.com"}}{stamp}"#,
        ch = k % 1000,
    );
    let tail = "}}";
    let note_overhead = ",\"note\":\"\"".len();
    if pad_to > e.len() + tail.len() + note_overhead {
        let pad = pad_to - e.len() - tail.len() - note_overhead;
        e.push_str(",\"note\":\"");
        e.extend(std::iter::repeat_n('x', pad));
        e.push('"');
    }
    e.push_str(tail);
    e.into_bytes()
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
}
