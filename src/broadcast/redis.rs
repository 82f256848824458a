//! The `redis` broadcaster: `PUBLISH <prefix><channel> <message>` for every channel, the whole
//! batch in one pipeline.
//!
//! The message is what Laravel's `RedisBroadcaster::broadcast` publishes
//! (laravel/framework src/Illuminate/Broadcasting/Broadcasters/RedisBroadcaster.php), so
//! laravel-echo-server and Echo clients work unchanged:
//! `{"event":<name>,"data":<payload with "socket">,"socket":<socket id or null>}`.
//! The quirk is deliberate: Laravel builds `data` before it pulls `socket` out of the payload, so
//! `data` carries `socket` too (`null` when there is none). See research/wire-formats.md §1a.

use super::Message;
use crate::delivery::{DeliveryError, DeliveryResult};
use crate::envelope::object_members;
use crate::queue::Redis;

pub(crate) struct RedisBroadcaster {
    redis: Redis,
    prefix: String,
}

impl RedisBroadcaster {
    pub(crate) fn new(redis: Redis, prefix: String) -> RedisBroadcaster {
        RedisBroadcaster { redis, prefix }
    }

    pub(crate) async fn send(&self, batch: &[Message<'_>]) -> Vec<DeliveryResult> {
        let mut pipe = ::redis::pipe();
        let mut commands = 0;
        for m in batch {
            let payload = laravel_message(m);
            for channel in m.channels {
                let mut name = String::with_capacity(self.prefix.len() + channel.len());
                name.push_str(&self.prefix);
                name.push_str(channel);
                pipe.cmd("PUBLISH").arg(name).arg(&payload).ignore();
                commands += 1;
            }
        }
        if commands == 0 {
            return batch.iter().map(|_| Ok(())).collect();
        }
        match self.redis.publish(&pipe).await {
            Ok(()) => batch.iter().map(|_| Ok(())).collect(),
            Err(e) => {
                let e = DeliveryError::Redis(format!("PUBLISH: {e}"));
                batch.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }
}

/// Laravel's RedisBroadcaster message for one event. A final payload is Laravel's own
/// `BroadcastEvent` payload, `socket` already in it when Laravel puts it there, so it is copied
/// as it is; otherwise `socket` is added to `data`, as `broadcastWith()` events get it.
pub(crate) fn laravel_message(m: &Message<'_>) -> Vec<u8> {
    let (name, data, socket) = (m.name, m.data.get(), m.socket);
    let mut out = Vec::with_capacity(data.len() + name.len() + 64);
    out.extend_from_slice(b"{\"event\":");
    serde_json::to_writer(&mut out, name).expect("strings serialize");
    out.extend_from_slice(b",\"data\":");
    if m.final_payload {
        out.extend_from_slice(data.as_bytes());
    } else {
        write_data_with_socket(&mut out, data, socket);
    }
    out.extend_from_slice(b",\"socket\":");
    serde_json::to_writer(&mut out, &socket).expect("strings serialize");
    out.push(b'}');
    out
}

/// Writes the payload object with `"socket"` set, as Laravel's payload carries it. The common
/// case appends one member to the producer's text; only a payload that already has a `socket`
/// member is rebuilt (to replace it, as Laravel's merge does).
fn write_data_with_socket(out: &mut Vec<u8>, data: &str, socket: Option<&str>) {
    let socket_member = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"\"socket\":");
        serde_json::to_writer(&mut *out, &socket).expect("strings serialize");
    };
    if data.contains("\"socket\"")
        && let Ok(members) = object_members(data)
    {
        out.push(b'{');
        for (k, v) in members.iter().filter(|(k, _)| k != "socket") {
            serde_json::to_writer(&mut *out, k.as_ref()).expect("strings serialize");
            out.push(b':');
            out.extend_from_slice(v.get().as_bytes());
            out.push(b',');
        }
        socket_member(out);
        out.push(b'}');
        return;
    }
    let body = data[1..data.len() - 1].trim();
    out.push(b'{');
    if !body.is_empty() {
        out.extend_from_slice(body.as_bytes());
        out.push(b',');
    }
    socket_member(out);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    use serde_json::value::RawValue;

    fn encode(name: &str, data: &str, socket: Option<&str>, final_payload: bool) -> String {
        let raw = RawValue::from_string(data.to_string()).unwrap();
        let m = Message {
            id: "id",
            name,
            channels: &[],
            data: &raw,
            socket,
            final_payload,
            app: None,
        };
        String::from_utf8(laravel_message(&m)).unwrap()
    }

    fn msg(name: &str, data: &str, socket: Option<&str>) -> Value {
        serde_json::from_str(&encode(name, data, socket, false)).unwrap()
    }

    /// Regression: an event with neither `InteractsWithSockets` nor `broadcastWith()` got
    /// `"socket":null` inside `data`, where Laravel adds nothing.
    #[test]
    fn a_final_payload_is_published_unchanged() {
        assert_eq!(
            encode("E", r#"{"a":1}"#, None, true),
            r#"{"event":"E","data":{"a":1},"socket":null}"#
        );
        assert_eq!(
            encode("E", r#"{"a":1,"socket":"1.2"}"#, Some("1.2"), true),
            r#"{"event":"E","data":{"a":1,"socket":"1.2"},"socket":"1.2"}"#
        );
        assert_eq!(
            encode("E", "[]", None, true),
            r#"{"event":"E","data":[],"socket":null}"#
        );
    }

    #[test]
    fn matches_laravel_including_socket_inside_data() {
        // research/wire-formats.md §1a, checked by running Laravel's code.
        assert_eq!(
            msg(r"App\Events\Foo", r#"{"name":"Taylor"}"#, Some("123.456")),
            json!({"event":"App\\Events\\Foo","data":{"name":"Taylor","socket":"123.456"},"socket":"123.456"})
        );
        assert_eq!(
            msg("E", r#"{"a":1}"#, None),
            json!({"event":"E","data":{"a":1,"socket":null},"socket":null})
        );
        assert_eq!(
            msg("E", "{}", None),
            json!({"event":"E","data":{"socket":null},"socket":null})
        );
        assert_eq!(
            msg("E", "{ \n }", None),
            json!({"event":"E","data":{"socket":null},"socket":null})
        );
    }

    #[test]
    fn an_existing_socket_member_is_replaced_not_repeated() {
        let text = encode(
            "E",
            r#"{"socket":"old","b":[1,{"socket":2}]}"#,
            Some("1.2"),
            false,
        );
        assert_eq!(text.matches("\"socket\":\"").count(), 2, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["data"], json!({"b":[1,{"socket":2}],"socket":"1.2"}));
    }
}
