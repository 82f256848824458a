//! The JSON admin API behind the dashboard, under `/api` (documented in the README).
//!
//! Owns: the routes, reading their query strings and bodies into `ops` types once, and the JSON
//! of answers and errors. Every action is a call of `herald::ops`, the code `herald failed …`
//! runs, with the caller as its [`Actor`]. Does not own: access (`auth`, already checked) or any
//! logic of its own.
//!
//! Actions take JSON bodies only (`Content-Type: application/json`): a form on another site
//! cannot send one without a CORS preflight, which this server never answers.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Who;
use crate::metrics::DEAD_LETTER_REASONS;
use crate::ops::{Actor, Cursor, DeadLetter, Filter, Minute, OpsError, QueueError, Selection};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/meta", get(meta))
        .route("/stats", get(stats))
        .route("/queues", get(queues))
        .route("/activity", get(activity))
        .route("/processes", get(processes))
        .route("/connections", get(connections))
        .route("/config", get(config))
        .route("/dead-letters", get(list))
        .route("/dead-letters/{id}", get(show))
        .route("/dead-letters/retry", post(retry))
        .route("/dead-letters/forget", post(forget))
        .route("/dead-letters/flush", post(flush))
        .route("/queues/pause", post(pause))
        .route("/queues/resume", post(resume))
}

/// An error as the API answers it: a status and `{"error": "…"}`.
struct ApiError(StatusCode, String);

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> ApiError {
        let status = match e {
            OpsError::UnknownQueue { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(why: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, why.into())
}

type Answer = Result<Json<Value>, ApiError>;

fn answer(v: impl serde::Serialize) -> Answer {
    Ok(Json(serde_json::to_value(v).expect("answers serialize")))
}

/// `?queue=` (default: the first configured queue).
#[derive(Deserialize)]
struct QueueParam {
    queue: Option<String>,
    minutes: Option<u64>,
}

/// What the page needs once: version, queues, the clock, the known reason codes.
async fn meta(State(s): State<AppState>) -> Answer {
    let queues: Vec<String> = s
        .ops
        .queues()
        .iter()
        .map(|q| q.name().to_string())
        .collect();
    answer(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "now_ms": crate::ops::Ops::now_ms(),
        "queues": queues,
        "reasons": DEAD_LETTER_REASONS,
        "age_bounds_s": Minute::age_bounds(),
        "auth": match *s.access { super::Access::Token { .. } => "token", _ => "open" },
    }))
}

/// Exactly what `herald stats --json` prints.
async fn stats(State(s): State<AppState>) -> Answer {
    answer(s.ops.stats().await?)
}

async fn queues(State(s): State<AppState>) -> Answer {
    let mut out = Vec::new();
    for q in s.ops.queues() {
        out.push(q.overview().await?);
    }
    answer(json!({ "now_ms": crate::ops::Ops::now_ms(), "queues": out }))
}

async fn activity(State(s): State<AppState>, Query(p): Query<QueueParam>) -> Answer {
    let q = s.ops.configured_queue(p.queue.as_deref())?;
    answer(q.activity(p.minutes.unwrap_or(60)).await?)
}

async fn processes(State(s): State<AppState>) -> Answer {
    answer(json!({
        "now_ms": crate::ops::Ops::now_ms(),
        "processes": s.ops.processes().await?,
    }))
}

async fn connections(State(s): State<AppState>, Query(p): Query<QueueParam>) -> Answer {
    answer(json!({
        "now_ms": crate::ops::Ops::now_ms(),
        "connections": s.ops.connections(p.minutes.unwrap_or(60)).await?,
    }))
}

/// The effective configuration, secrets masked, as TOML (what `check-config` prints).
async fn config(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        s.ops.config_toml(),
    )
        .into_response()
}

/// `GET /api/dead-letters`: the query string of a listing. Empty values count as absent, as
/// an HTML form sends them.
#[derive(Deserialize)]
struct ListParams {
    queue: Option<String>,
    reason: Option<String>,
    delivery: Option<String>,
    event: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

fn set(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn millis(name: &str, v: Option<String>) -> Result<Option<u64>, ApiError> {
    set(v)
        .map(|s| {
            s.parse()
                .map_err(|_| bad(format!("{name}: expected ms since the epoch, got {s:?}")))
        })
        .transpose()
}

impl ListParams {
    fn filter(&mut self) -> Result<Filter, ApiError> {
        Ok(Filter {
            reason: set(self.reason.take()),
            delivery: set(self.delivery.take()),
            event: set(self.event.take()),
            since_ms: millis("since", self.since.take())?,
            until_ms: millis("until", self.until.take())?,
        })
    }
}

/// A dead letter in a listing: everything but the payload, and the payload's size.
fn summary(id: &str, d: &DeadLetter) -> Value {
    let mut v = serde_json::to_value(d).expect("dead letters serialize");
    let o = v.as_object_mut().expect("an object");
    o.remove("payload");
    o.remove("payload_base64");
    o.insert("id".into(), json!(id));
    o.insert("payload_bytes".into(), json!(d.payload_bytes().len()));
    v
}

async fn list(State(s): State<AppState>, Query(mut p): Query<ListParams>) -> Answer {
    let q = s.ops.configured_queue(set(p.queue.take()).as_deref())?;
    let filter = p.filter()?;
    let after = set(p.after.take())
        .map(|a| a.parse::<Cursor>().map_err(bad))
        .transpose()?;
    let page = q.failed_page(&filter, after, p.limit.unwrap_or(50)).await?;
    let entries: Vec<Value> = page.entries.iter().map(|(id, d)| summary(id, d)).collect();
    answer(json!({
        "queue": q.name(),
        "filter": filter,
        "entries": entries,
        "next": page.next,
        "total": page.total,
    }))
}

async fn show(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<QueueParam>,
) -> Answer {
    let q = s.ops.configured_queue(p.queue.as_deref())?;
    let Some(d) = q.failed_get(&id).await? else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no dead letter {id:?} in {}", q.name()),
        ));
    };
    let mut v = serde_json::to_value(&d).expect("dead letters serialize");
    v["id"] = json!(id);
    // The original bytes stay in `payload`; this is for reading.
    v["payload_pretty"] = json!(d.payload_pretty());
    answer(v)
}

/// The body of retry and forget: a queue and `ids`, or a `filter`, or `all`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    queue: Option<String>,
    ids: Option<Vec<String>>,
    filter: Option<Filter>,
    #[serde(default)]
    all: bool,
}

impl ActionBody {
    fn selection(self) -> Result<(Option<String>, Selection), ApiError> {
        let sel = match (self.ids, self.filter, self.all) {
            (Some(ids), None, false) if !ids.is_empty() => Selection::Ids(ids),
            (None, Some(f), false) => Selection::Matching(f),
            (None, None, true) => Selection::Matching(Filter::default()),
            _ => {
                return Err(bad(
                    "name exactly one of: \"ids\" (non-empty), \"filter\", \"all\": true",
                ));
            }
        };
        Ok((self.queue, sel))
    }
}

async fn retry(
    State(s): State<AppState>,
    Extension(who): Extension<Who>,
    Json(body): Json<ActionBody>,
) -> Answer {
    let (queue, sel) = body.selection()?;
    let q = s.ops.configured_queue(queue.as_deref())?;
    answer(q.retry(&Actor::dashboard(who.0), &sel).await?)
}

async fn forget(
    State(s): State<AppState>,
    Extension(who): Extension<Who>,
    Json(body): Json<ActionBody>,
) -> Answer {
    let (queue, sel) = body.selection()?;
    let q = s.ops.configured_queue(queue.as_deref())?;
    answer(q.forget(&Actor::dashboard(who.0), &sel).await?)
}

/// The body of flush, pause and resume.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueBody {
    queue: Option<String>,
}

async fn flush(
    State(s): State<AppState>,
    Extension(who): Extension<Who>,
    Json(body): Json<QueueBody>,
) -> Answer {
    let q = s.ops.configured_queue(body.queue.as_deref())?;
    let n = q.flush(&Actor::dashboard(who.0)).await?;
    answer(json!({ "queue": q.name(), "flushed": n }))
}

async fn pause(
    State(s): State<AppState>,
    Extension(who): Extension<Who>,
    Json(body): Json<QueueBody>,
) -> Answer {
    let q = s.ops.configured_queue(body.queue.as_deref())?;
    let changed = q.pause(&Actor::dashboard(who.0)).await?;
    answer(json!({ "queue": q.name(), "paused": true, "changed": changed }))
}

async fn resume(
    State(s): State<AppState>,
    Extension(who): Extension<Who>,
    Json(body): Json<QueueBody>,
) -> Answer {
    let q = s.ops.configured_queue(body.queue.as_deref())?;
    let changed = q.resume(&Actor::dashboard(who.0)).await?;
    answer(json!({ "queue": q.name(), "paused": false, "changed": changed }))
}
