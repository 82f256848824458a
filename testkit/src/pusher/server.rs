//! How [`super::PusherFake`] answers one request: route, signature, content type, soketi's
//! limits, scripted failures, then accept and record.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::conn::ConnHandle;
use super::verify::verify_signature;
use super::{Action, FakeEvent, FakeLimits, FakeRequest, Shared, now_ms};

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({"error": message, "code": status.as_u16()});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// One event object of a request, validated.
struct Item {
    name: String,
    data: String,
    channels: Vec<String>,
    socket_id: Option<String>,
    idempotency_key: Option<String>,
}

/// Parses and validates a body; `Err((status, message))` as soketi would answer.
fn parse_items(batch: bool, body: &[u8], limits: &FakeLimits) -> Result<Vec<Item>, (u16, String)> {
    let incorrect = || (400, "The received data is incorrect".to_string());
    let v: Value = serde_json::from_slice(body).map_err(|_| incorrect())?;
    let objects: Vec<&Value> = if batch {
        let list = v
            .get("batch")
            .and_then(Value::as_array)
            .ok_or_else(incorrect)?;
        if list.len() > limits.max_batch_size {
            return Err((
                400,
                format!(
                    "Cannot batch-send more than {} messages at once",
                    limits.max_batch_size
                ),
            ));
        }
        list.iter().collect()
    } else {
        vec![&v]
    };
    let mut items = Vec::with_capacity(objects.len());
    for o in objects {
        let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let name = text("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(incorrect)?;
        // Pusher requires a string; a JSON object here is a client bug.
        let data = text("data").ok_or((400, "data must be a string".to_string()))?;
        let channels: Vec<String> = match (o.get("channels"), text("channel")) {
            (Some(Value::Array(list)), None) if !batch => list
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(incorrect)?,
            (None, Some(c)) => vec![c],
            _ => return Err(incorrect()),
        };
        if channels.is_empty() {
            return Err(incorrect());
        }
        if channels.len() > limits.max_channels {
            return Err((
                400,
                format!(
                    "Cannot broadcast to more than {} channels at once",
                    limits.max_channels
                ),
            ));
        }
        if name.len() > limits.max_event_name {
            return Err((400, "Event name is too long".into()));
        }
        if data.len() > limits.max_data_bytes {
            return Err((
                413,
                format!(
                    "The data content of this event exceeds the allowed maximum ({} KB).",
                    limits.max_data_bytes / 1024
                ),
            ));
        }
        items.push(Item {
            name,
            data,
            channels,
            socket_id: text("socket_id"),
            idempotency_key: text("idempotency_key"),
        });
    }
    Ok(items)
}

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_ms = now_ms();
    let path = uri.path().to_string();
    let record = |status: u16, events: usize, error: Option<String>, keys: Vec<Option<String>>| {
        shared.lock().push_request(FakeRequest {
            received_ms,
            answered_ms: now_ms(),
            path: path.clone(),
            status,
            events,
            error,
            idempotency_keys: keys,
        });
        shared.changed.notify_waiters();
    };
    let refuse = |status: u16, message: String| {
        record(status, 0, Some(message.clone()), Vec::new());
        error(status, &message)
    };

    let prefix = format!("/apps/{}/", shared.app_id);
    let endpoint = path
        .strip_prefix("/apps/")
        .and_then(|p| p.split_once('/'))
        .map(|(_, e)| e);
    let batch = match (method == Method::POST, endpoint) {
        (true, Some("events")) => false,
        (true, Some("batch_events")) => true,
        _ => return refuse(404, format!("no route for {method} {path}")),
    };
    let limits = shared.lock().limits.clone();
    if let Err(why) = verify_signature(
        &shared.app_id,
        &shared.key,
        &shared.secret,
        method.as_str(),
        &path,
        uri.query().unwrap_or(""),
        &body,
        received_ms / 1000,
        limits.timestamp_window,
    ) {
        return refuse(401, why);
    }
    debug_assert!(path.starts_with(&prefix));
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return refuse(415, "Content-Type must be application/json".into());
    }
    let items = match parse_items(batch, &body, &limits) {
        Ok(items) => items,
        Err((status, message)) => return refuse(status, message),
    };
    let keys: Vec<Option<String>> = items.iter().map(|i| i.idempotency_key.clone()).collect();

    let (rule, action) = {
        let mut i = shared.lock();
        let rule = i.rules.iter().find_map(|(marker, status)| {
            let m = marker.as_str();
            items
                .iter()
                .any(|it| {
                    it.name.contains(m)
                        || it.data.contains(m)
                        || it.channels.iter().any(|c| c.contains(m))
                })
                .then(|| {
                    (
                        *status,
                        format!("rejected: an event contains the marker {marker:?}"),
                    )
                })
        });
        let action = if rule.is_none() {
            i.script.pop_front()
        } else {
            None
        };
        (rule, action)
    };
    if let Some((status, why)) = rule {
        let message = if status == 413 {
            format!(
                "The data content of this event exceeds the allowed maximum ({} KB). ({why})",
                limits.max_data_bytes / 1024
            )
        } else {
            why
        };
        record(status, items.len(), Some(message.clone()), keys);
        return error(status, &message);
    }
    let mut delay = None;
    match action {
        Some(Action::Status {
            status,
            retry_after,
        }) => {
            let message = format!("scripted failure {status}");
            record(status, items.len(), Some(message.clone()), keys);
            let mut resp = error(status, &message);
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
            }
            return resp;
        }
        Some(Action::Reset) => {
            conn.0.store(true, Ordering::SeqCst);
            record(
                0,
                items.len(),
                Some("connection closed without an answer".into()),
                keys,
            );
            return error(500, "connection closed");
        }
        Some(Action::Slow(d)) => delay = Some(d),
        None => {}
    }

    // Accept.
    let kept = {
        let mut i = shared.lock();
        let request = i.request_count;
        for it in items.iter() {
            if let Some(k) = &it.idempotency_key
                && i.honour_idempotency
                && !i.seen_keys.insert(k.clone())
            {
                continue;
            }
            i.event_count += it.channels.len();
            if !i.keep {
                continue;
            }
            for c in &it.channels {
                i.events.push(FakeEvent {
                    name: it.name.clone(),
                    channel: c.clone(),
                    data: it.data.clone(),
                    socket_id: it.socket_id.clone(),
                    idempotency_key: it.idempotency_key.clone(),
                    request,
                });
            }
        }
        // Record the request now, so events and requests agree even if the answer is slow; the
        // answer time is filled in below.
        i.push_request(FakeRequest {
            received_ms,
            answered_ms: 0,
            path: path.clone(),
            status: 200,
            events: items.len(),
            error: None,
            idempotency_keys: keys,
        })
    };
    shared.changed.notify_waiters();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some(k) = kept {
        shared.lock().requests[k].answered_ms = now_ms();
    }
    shared.changed.notify_waiters();
    let body = if batch { "{}" } else { r#"{"ok":true}"# };
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}
