//! How [`super::PusherFake`] answers one request: route, signature, content type, soketi's
//! limits, scripted failures, then accept and record.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use std::time::Duration;

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

/// Answers one request: the route, signature, content type and soketi's limits first (a 4xx
/// as soketi would send it), then a standing rule or a scripted failure, else accept.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ex = Exchange {
        received_ms: now_ms(),
        path: uri.path().to_string(),
        bytes: request_bytes(&method, &uri, &headers, &body),
        body_md5: query_param(&uri, "body_md5")
            .unwrap_or_default()
            .to_string(),
        connection: conn.2,
        shared,
    };
    let (limits, close_after) = {
        let i = ex.shared.lock();
        (i.limits.clone(), i.close_after_every_response)
    };
    if close_after && conn.1.fetch_add(1, Ordering::SeqCst) > 0 {
        conn.0.store(true, Ordering::SeqCst);
        let why = "a request on a connection the server had closed after its answer";
        ex.record(0, 0, Some(why.into()), Vec::new());
        return error(500, "connection closed");
    }
    if let Some(max) = limits.max_request_bytes
        && ex.bytes > max
    {
        let message = format!(
            "Request of {} bytes exceeds max_request_size {max}",
            ex.bytes
        );
        ex.record(413, 0, Some(message.clone()), Vec::new());
        let mut resp = error(413, &message);
        resp.headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
        return resp;
    }
    let (batch, items) = match ex.admit(&method, &uri, &headers, &body, &limits) {
        Ok(admitted) => admitted,
        Err((status, message)) => {
            ex.record(status, 0, Some(message.clone()), Vec::new());
            return error(status, &message);
        }
    };
    let keys: Vec<Option<String>> = items.iter().map(|i| i.idempotency_key.clone()).collect();
    match ex.scripted(&items) {
        Some(Scripted::Rule(status, why)) => {
            let message = if status == 413 {
                format!(
                    "The data content of this event exceeds the allowed maximum ({} KB). ({why})",
                    limits.max_data_bytes / 1024
                )
            } else {
                why
            };
            ex.record(status, items.len(), Some(message.clone()), keys);
            error(status, &message)
        }
        Some(Scripted::Action(Action::Status {
            status,
            retry_after,
        })) => {
            let message = format!("scripted failure {status}");
            ex.record(status, items.len(), Some(message.clone()), keys);
            let mut resp = error(status, &message);
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
            }
            resp
        }
        Some(Scripted::Action(Action::Reset)) => {
            conn.0.store(true, Ordering::SeqCst);
            let why = "connection closed without an answer".to_string();
            ex.record(0, items.len(), Some(why), keys);
            error(500, "connection closed")
        }
        Some(Scripted::Action(Action::Slow(d))) => ex.accept(batch, &items, keys, Some(d)).await,
        None => ex.accept(batch, &items, keys, None).await,
    }
}

/// The value of query parameter `name`, as sent.
fn query_param<'u>(uri: &'u Uri, name: &str) -> Option<&'u str> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The request's size as it came over the wire: request line, headers, blank line, body.
fn request_bytes(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> usize {
    let line = method.as_str().len() + 1 + uri.to_string().len() + " HTTP/1.1\r\n".len();
    let headers: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + headers + 2 + body.len()
}

/// The `<app_id>` of `/apps/<app_id>/…`.
fn app_of(path: &str) -> &str {
    path.strip_prefix("/apps/")
        .and_then(|p| p.split('/').next())
        .unwrap_or("")
}

/// What a standing rule or the script says to do with a request instead of accepting it.
enum Scripted {
    Rule(u16, String),
    Action(Action),
}

/// One request being answered.
struct Exchange {
    shared: Arc<Shared>,
    received_ms: u64,
    path: String,
    bytes: usize,
    body_md5: String,
    connection: usize,
}

impl Exchange {
    /// Records a request that was not accepted, answered now.
    fn record(&self, status: u16, events: usize, error: Option<String>, keys: Vec<Option<String>>) {
        self.shared.lock().push_request(FakeRequest {
            received_ms: self.received_ms,
            answered_ms: now_ms(),
            path: self.path.clone(),
            status,
            events,
            error,
            idempotency_keys: keys,
            bytes: self.bytes,
            body_md5: self.body_md5.clone(),
            connection: self.connection,
        });
        self.shared.changed.notify_waiters();
    }

    /// The endpoint (`true` for `/batch_events`) and the validated events, or soketi's answer.
    fn admit(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        limits: &FakeLimits,
    ) -> Result<(bool, Vec<Item>), (u16, String)> {
        let path = &self.path;
        let endpoint = path
            .strip_prefix("/apps/")
            .and_then(|p| p.split_once('/'))
            .map(|(_, e)| e);
        let batch = match (method == Method::POST, endpoint) {
            (true, Some("events")) => false,
            (true, Some("batch_events")) => true,
            _ => return Err((404, format!("no route for {method} {path}"))),
        };
        let s = &self.shared;
        // The app the path names, with its own credentials; an unknown one is checked against
        // the first app and so refused.
        let in_path = app_of(path);
        let more = s.more_apps.lock().unwrap_or_else(|p| p.into_inner());
        let (app_id, key, secret) = more
            .iter()
            .find(|(id, _, _)| id == in_path)
            .map(|(a, k, s)| (a.clone(), k.clone(), s.clone()))
            .unwrap_or_else(|| (s.app_id.clone(), s.key.clone(), s.secret.clone()));
        drop(more);
        verify_signature(
            &app_id,
            &key,
            &secret,
            method.as_str(),
            path,
            uri.query().unwrap_or(""),
            body,
            self.received_ms / 1000,
            limits.timestamp_window,
        )
        .map_err(|why| (401, why))?;
        let json = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err((415, "Content-Type must be application/json".into()));
        }
        Ok((batch, parse_items(batch, body, limits)?))
    }

    /// A standing rejection matching one of `items`, else the next scripted action.
    fn scripted(&self, items: &[Item]) -> Option<Scripted> {
        let mut i = self.shared.lock();
        let rule = i.rules.iter().find_map(|(marker, status)| {
            let m = marker.as_str();
            let hit = items.iter().any(|it| {
                it.name.contains(m)
                    || it.data.contains(m)
                    || it.channels.iter().any(|c| c.contains(m))
            });
            hit.then(|| {
                let why = format!("rejected: an event contains the marker {marker:?}");
                Scripted::Rule(*status, why)
            })
        });
        let messages: usize = items.iter().map(|it| it.channels.len()).sum();
        let spent = i.quota.and_then(|(quota, retry_after)| {
            (i.event_count + messages > quota).then_some(Scripted::Action(Action::Status {
                status: 429,
                retry_after: Some(retry_after),
            }))
        });
        rule.or(spent)
            .or_else(|| i.script.pop_front().map(Scripted::Action))
    }

    /// Accepts the events (recording them per channel, honouring idempotency keys when asked),
    /// answers after `delay` if given.
    async fn accept(
        self,
        batch: bool,
        items: &[Item],
        keys: Vec<Option<String>>,
        delay: Option<Duration>,
    ) -> Response {
        let kept = {
            let mut i = self.shared.lock();
            let request = i.request_count;
            for it in items {
                if let Some(k) = &it.idempotency_key
                    && i.honour_idempotency
                    && !i.seen_keys.insert(k.clone())
                {
                    continue;
                }
                i.event_count += it.channels.len();
                if i.keep {
                    for c in &it.channels {
                        i.events.push(FakeEvent {
                            name: it.name.clone(),
                            channel: c.clone(),
                            data: it.data.clone(),
                            socket_id: it.socket_id.clone(),
                            idempotency_key: it.idempotency_key.clone(),
                            request,
                            app_id: app_of(&self.path).to_string(),
                        });
                    }
                }
            }
            // Recorded now, so events and requests agree even if the answer is slow; the answer
            // time is filled in below.
            i.push_request(FakeRequest {
                received_ms: self.received_ms,
                answered_ms: 0,
                path: self.path.clone(),
                status: 200,
                events: items.len(),
                error: None,
                idempotency_keys: keys,
                bytes: self.bytes,
                body_md5: self.body_md5.clone(),
                connection: self.connection,
            })
        };
        self.shared.changed.notify_waiters();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if let Some(k) = kept {
            self.shared.lock().requests[k].answered_ms = now_ms();
        }
        self.shared.changed.notify_waiters();
        let body = if batch { "{}" } else { r#"{"ok":true}"# };
        (StatusCode::OK, [("content-type", "application/json")], body).into_response()
    }
}
