//! Decoding and encoding envelopes: what is accepted, what is rejected with which code.

use super::*;
use serde_json::{Value, json};
use std::ops::Not;

fn dec(s: &str) -> Result<Envelope, Rejection> {
    decode(Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
}

#[track_caller]
fn check_rejected(input: &str, code: &str) {
    match dec(input) {
        Ok(e) => panic!("{input} was accepted as {e:?}"),
        Err(r) => assert_eq!(r.code(), code, "{input}: {r}"),
    }
}

#[test]
fn minimal_envelope_decodes() {
    let e = dec(
        r#"{"event":"App\\Events\\OrderShipped","channels":["orders.1"],"data":{"order_id":1}}"#,
    )
    .unwrap();
    assert_eq!(e.event, r"App\Events\OrderShipped");
    assert_eq!(e.channels, ["orders.1"]);
    assert_eq!(e.data.get(), r#"{"order_id":1}"#);
    assert!(e.id_assigned());
    assert_eq!(e.id.len(), 36);
    assert_eq!(e.attempts, 0);
    assert_eq!(e.pending, None);
}

#[test]
fn bad_input_is_rejected_with_a_code() {
    check_rejected("not json", "invalid_json");
    check_rejected(r#"{"event":"E","data":{}"#, "invalid_json");
    check_rejected(r#"[1,2]"#, "not_an_object");
    check_rejected(r#""str""#, "not_an_object");
    check_rejected(r#"{"data":{}}"#, "missing_field");
    check_rejected(r#"{"event":"E"}"#, "missing_field");
    check_rejected(r#"{"event":"E","data":[1]}"#, "invalid_field");
    check_rejected(r#"{"event":"E","data":"x"}"#, "invalid_field");
    check_rejected(r#"{"event":"E","data":null}"#, "invalid_field");
    check_rejected(r#"{"event":1,"data":{}}"#, "invalid_field");
    check_rejected(r#"{"event":"","data":{}}"#, "invalid_field");
    check_rejected(r#"{"event":"E","data":{},"channels":"a"}"#, "invalid_field");
    check_rejected(
        r#"{"event":"E","data":{},"channels":["a b"]}"#,
        "bad_channel",
    );
    check_rejected(r#"{"event":"E","data":{},"channels":[""]}"#, "bad_channel");
    check_rejected(
        r#"{"event":"E","data":{},"max_attempts":0}"#,
        "invalid_field",
    );
    check_rejected(
        r#"{"event":"E","data":{},"pending":["x"]}"#,
        "invalid_field",
    );
    check_rejected(r#"{"event":"E","event":"F","data":{}}"#, "not_an_object");
    check_rejected(r#"{"event":"E","data":{},"id":""}"#, "invalid_field");
    let long = "e".repeat(201);
    check_rejected(
        &format!(r#"{{"event":"{long}","data":{{}}}}"#),
        "event_name_too_long",
    );
}

#[test]
fn final_payload_allows_phps_empty_array_and_nothing_else_new() {
    let e = dec(r#"{"event":"E","data":[],"final_payload":true}"#).unwrap();
    assert!(e.final_payload);
    assert_eq!(e.data.get(), "[]");
    assert!(
        dec(r#"{"event":"E","data":{}}"#)
            .unwrap()
            .final_payload
            .not()
    );
    check_rejected(r#"{"event":"E","data":[]}"#, "invalid_field");
    check_rejected(
        r#"{"event":"E","data":[1],"final_payload":true}"#,
        "invalid_field",
    );
    check_rejected(
        r#"{"event":"E","data":{},"final_payload":"yes"}"#,
        "invalid_field",
    );
}

#[test]
fn oversize_envelope_is_rejected_before_parsing() {
    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    let err = decode(
        Bytes::from_static(b"{\"event\":\"E\",\"data\":{}}"),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.code(), "payload_too_large");
    assert!(err.to_string().contains("over the limit of 10"));
}

#[test]
fn channel_rules_follow_pusher() {
    for ok in [
        "orders.1",
        "private-user.7",
        "presence-room",
        "#server-to-user-1",
        "a_b-c=d@e,f.g;h",
    ] {
        validate_channel(ok, 164).unwrap();
    }
    for bad in ["", "#", "a b", "a/b", "é", "a*"] {
        assert!(validate_channel(bad, 164).is_err(), "{bad}");
    }
    assert!(validate_channel(&"a".repeat(165), 164).is_err());
    validate_channel(&"a".repeat(164), 164).unwrap();
}

#[test]
fn attempts_counted_by_a_reaper_add_to_the_producers() {
    let e = dec(r#"{"attempts":1,"event":"E","data":{},"attempts":2}"#).unwrap();
    assert_eq!(e.attempts, 3);
}

#[test]
fn requeue_keeps_every_member_and_puts_attempts_first() {
    let raw = r#"{"event":"E","data":{"big":12345678901234567890,"f":1.50},"custom":{"k":[1,2]},"attempts":1,"pending":["broadcast:redis"]}"#;
    let e = dec(raw).unwrap();
    let out =
        String::from_utf8(e.encode_requeue(2, Some(&[DeliveryId::Listener("hook".into())]), 1.5))
            .unwrap();
    assert!(
        out.starts_with(r#"{"attempts":2,"pending":["listener:hook"],"id":""#),
        "{out}"
    );
    // Producer members are copied verbatim, including number spellings serde would change.
    assert!(
        out.contains(r#""data":{"big":12345678901234567890,"f":1.50}"#),
        "{out}"
    );
    assert!(out.contains(r#""custom":{"k":[1,2]}"#));
    let back = dec(&out).unwrap();
    assert_eq!(back.id, e.id);
    assert_eq!(back.attempts, 2);
    assert_eq!(
        back.pending,
        Some(vec![DeliveryId::Listener("hook".into())])
    );
    assert_eq!(back.created_at, Some(1.5));
}

#[test]
fn forward_drops_herald_bookkeeping() {
    let e = dec(r#"{"id":"x","event":"E","data":{"a":1},"attempts":3,"pending":["listener:a"],"created_at":2}"#)
        .unwrap();
    let out: Value = serde_json::from_slice(&e.encode_forward(9.0)).unwrap();
    assert_eq!(
        out,
        json!({"id":"x","event":"E","data":{"a":1},"created_at":2})
    );
}

#[test]
fn strings_are_unescaped_as_serde_does() {
    for text in [
        r#""plain""#,
        r#""App\\Events\\OrderShipped""#,
        r#""a\"b\/c\n\t\r\b\f""#,
        r#""\u00e9t\u00e9 \ud83d\ude00""#,
        r#""""#,
        r#""trailing\\""#,
    ] {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        let want: String = serde_json::from_str(text).unwrap();
        assert_eq!(string(Some(&raw), "x").unwrap(), Some(want), "{text}");
    }
    let number: Box<RawValue> = serde_json::from_str("5").unwrap();
    assert!(string(Some(&number), "x").is_err());
}

#[test]
fn string_arrays_are_read_as_serde_reads_them() {
    for text in [
        r#"[]"#,
        r#"[ ]"#,
        r#"["orders.42"]"#,
        r#"[ "a" , "b,c" ,"presence-x;y" ]"#,
        r#"["esc\"aped", "b"]"#,
        r#"["\u00e9"]"#,
    ] {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        let want: Vec<String> = serde_json::from_str(text).unwrap();
        assert_eq!(strings(Some(&raw), "x").unwrap(), Some(want), "{text}");
    }
    for text in [
        r#"["a", 1]"#,
        r#"[null]"#,
        r#"{"a":"b"}"#,
        r#""a""#,
        r#"[["a"]]"#,
    ] {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        assert!(strings(Some(&raw), "x").is_err(), "{text}");
    }
}

#[test]
fn numeric_ids_are_kept_as_text() {
    assert_eq!(dec(r#"{"id":42,"event":"E","data":{}}"#).unwrap().id, "42");
}

#[test]
fn app_names_a_multi_app_connections_app() {
    let e = dec(r#"{"event":"E","channels":["c"],"data":{},"app":"acme-1.eu_2"}"#).unwrap();
    assert_eq!(e.app.as_deref(), Some("acme-1.eu_2"));
    assert_eq!(
        dec(r#"{"event":"E","data":{},"app":null}"#).unwrap().app,
        None
    );
    assert_eq!(dec(r#"{"event":"E","data":{}}"#).unwrap().app, None);
    for bad in [
        r#""""#,
        r#""../etc/passwd""#,
        r#"".hidden""#,
        r#""a:b""#,
        r#""a b""#,
        "7",
    ] {
        check_rejected(
            &format!(r#"{{"event":"E","data":{{}},"app":{bad}}}"#),
            "invalid_field",
        );
    }
    let long = "a".repeat(101);
    check_rejected(
        &format!(r#"{{"event":"E","data":{{}},"app":"{long}"}}"#),
        "invalid_field",
    );
}
