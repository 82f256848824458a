//! What one delivery is, and how it can fail.
//!
//! Owns: [`DeliveryId`] (one listener or one broadcast connection, for one envelope) and
//! [`DeliveryError`], which carries the retry decision next to the error (`is_retryable`,
//! `retry_after`) and a short stable `code` for metrics and dead letters. Does not own: running
//! deliveries (`listeners`, `broadcast`) or combining their outcomes (`settle`).

use std::fmt;
use std::time::Duration;

/// One delivery of an envelope: a listener, or a broadcast connection.
///
/// Written as `listener:<name>` or `broadcast:<connection>` in the `pending` list of a re-queued
/// envelope and in dead letters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryId {
    /// A listener, by its name in `[listeners]` (or as registered in code).
    Listener(String),
    /// A broadcast connection, by its name in `[broadcasting.connections]`.
    Broadcast(String),
}

impl DeliveryId {
    /// Parses `listener:<name>` or `broadcast:<connection>`.
    pub fn parse(s: &str) -> Option<DeliveryId> {
        if let Some(name) = s.strip_prefix("listener:") {
            Some(DeliveryId::Listener(name.to_string()))
        } else {
            s.strip_prefix("broadcast:")
                .map(|c| DeliveryId::Broadcast(c.to_string()))
        }
    }

    /// The listener or connection name, without the kind.
    pub fn name(&self) -> &str {
        match self {
            DeliveryId::Listener(n) | DeliveryId::Broadcast(n) => n,
        }
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryId::Listener(n) => write!(f, "listener:{n}"),
            DeliveryId::Broadcast(n) => write!(f, "broadcast:{n}"),
        }
    }
}

/// Why one delivery failed. Whether it is worth retrying is decided here, once.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// The delivery did not finish within its time bound.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Could not connect, or the connection broke mid-request.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The remote answered with a non-success HTTP status.
    #[error("HTTP {status}: {body}")]
    Http {
        /// The status.
        status: u16,
        /// What the server said (bounded), with a hint when herald has one.
        body: String,
        /// From a `Retry-After` header.
        retry_after: Option<Duration>,
    },
    /// A Redis command failed (connection lost, server busy, …).
    #[error("redis: {0}")]
    Redis(String),
    /// The remote is known to be failing (open circuit); the delivery was not attempted.
    #[error("{reason}")]
    Deferred {
        /// Why, for the log.
        reason: String,
        /// When the circuit may let a request through again.
        retry_after: Option<Duration>,
        /// The circuit whose closing ends the wait (a Pusher connection, or
        /// `<connection>:app:<app>`): the envelope is parked until then, oldest first, instead
        /// of coming back every `retry_after`. `None`: wait `retry_after` (a spent budget).
        circuit: Option<String>,
    },
    /// The event can never be delivered by this sink as it is (too large, bad channel for this
    /// sink, …). Fatal: retrying cannot help.
    #[error("{reason}")]
    Invalid {
        /// The dead-letter code, e.g. `data_too_large`.
        code: &'static str,
        /// What is wrong, for a human.
        reason: String,
    },
    /// Something the delivery needs is not there yet (an app a multi-app Pusher connection
    /// does not know, perhaps about to be added): retryable, with backoff, counted as an
    /// attempt.
    #[error("{reason}")]
    Unavailable {
        /// The dead-letter code, e.g. `unknown_app`.
        code: &'static str,
        /// What is missing, for a human.
        reason: String,
    },
    /// A listener embedded by a program reported its own failure.
    #[error("{message}")]
    Custom {
        /// What the listener said.
        message: String,
        /// Whether to call it again later with the same event.
        retryable: bool,
    },
}

/// What an HTTP status means for a delivery. The one place statuses are classified:
///
/// | status | retryable | server failing (counts against a circuit) | content refused (split to find the event) |
/// |---|---|---|---|
/// | 408 | yes | no: the request was slow, not the server | no |
/// | 429 | yes | yes | no |
/// | 5xx | yes | yes | no |
/// | 400, 413, 422 | no | no | yes |
/// | other 4xx | no | no | no |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HttpClass {
    RequestTimeout,
    Throttled,
    ServerError,
    ContentRefused,
    Refused,
}

fn http_class(status: u16) -> HttpClass {
    match status {
        408 => HttpClass::RequestTimeout,
        429 => HttpClass::Throttled,
        500.. => HttpClass::ServerError,
        400 | 413 | 422 => HttpClass::ContentRefused,
        _ => HttpClass::Refused,
    }
}

impl DeliveryError {
    /// Whether trying again later may succeed: timeouts, connection errors, Redis errors,
    /// 408/429/5xx. Any other 4xx and invalid input are fatal.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Timeout(_)
            | DeliveryError::Connect(_)
            | DeliveryError::Redis(_)
            | DeliveryError::Unavailable { .. }
            | DeliveryError::Deferred { .. } => true,
            DeliveryError::Http { status, .. } => matches!(
                http_class(*status),
                HttpClass::RequestTimeout | HttpClass::Throttled | HttpClass::ServerError
            ),
            DeliveryError::Invalid { .. } => false,
            DeliveryError::Custom { retryable, .. } => *retryable,
        }
    }

    /// Whether the remote is failing rather than refusing one request (5xx, 429, timeouts,
    /// connection errors): what counts against a connection's circuit.
    pub(crate) fn is_server_failure(&self) -> bool {
        match self {
            DeliveryError::Http { status, .. } => matches!(
                http_class(*status),
                HttpClass::Throttled | HttpClass::ServerError
            ),
            DeliveryError::Timeout(_) | DeliveryError::Connect(_) => true,
            _ => false,
        }
    }

    /// Whether the server refused the request's content (400, 413, 422): a request carrying
    /// several events may be split to find the one at fault.
    pub(crate) fn refuses_content(&self) -> bool {
        matches!(self, DeliveryError::Http { status, .. } if http_class(*status) == HttpClass::ContentRefused)
    }

    /// The earliest the remote asked us to come back, when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Http { retry_after, .. }
            | DeliveryError::Deferred { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short, stable code for metric labels and dead letters; never a raw message.
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryError::Timeout(_) => "timeout",
            DeliveryError::Connect(_) => "connect",
            DeliveryError::Http { status: 429, .. } => "http_429",
            DeliveryError::Http { status, .. } if *status >= 500 => "http_5xx",
            DeliveryError::Http { .. } => "http_4xx",
            DeliveryError::Redis(_) => "redis",
            DeliveryError::Deferred { .. } => "circuit_open",
            DeliveryError::Invalid { code, .. } | DeliveryError::Unavailable { code, .. } => code,
            DeliveryError::Custom {
                retryable: true, ..
            } => "listener_retry",
            DeliveryError::Custom { .. } => "listener_failed",
        }
    }
}

/// The text of an HTTP transport error and its causes ("error sending request: connection
/// refused"), without the URL, which may carry credentials or a signed query.
pub(crate) fn http_error_text(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Whether a request failed because the connection it went out on was closed under it (reset,
/// broken pipe, or closed before the answer), after the connection was made: what a pooled
/// connection gives when the server closed it after its last answer without saying so
/// (Reverb). Not a refused connection, not a timeout.
pub(crate) fn is_closed_connection(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    if e.is_connect() || e.is_timeout() {
        return false;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            )
        {
            return true;
        }
        // hyper's IncompleteMessage, which it exposes as text only.
        if s.to_string()
            .contains("connection closed before message completed")
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The outcome of one delivery.
pub type DeliveryResult = Result<(), DeliveryError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(err: DeliveryError, retryable: bool, code: &str) {
        assert_eq!(err.is_retryable(), retryable, "{err}");
        assert_eq!(err.code(), code, "{err}");
    }

    fn http(status: u16) -> DeliveryError {
        DeliveryError::Http {
            status,
            body: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn retry_decision_per_variant() {
        check(
            DeliveryError::Timeout(Duration::from_secs(1)),
            true,
            "timeout",
        );
        check(DeliveryError::Connect("refused".into()), true, "connect");
        check(DeliveryError::Redis("broken pipe".into()), true, "redis");
        check(http(500), true, "http_5xx");
        check(http(503), true, "http_5xx");
        check(http(429), true, "http_429");
        check(http(408), true, "http_4xx");
        check(http(400), false, "http_4xx");
        check(http(401), false, "http_4xx");
        check(http(404), false, "http_4xx");
        check(http(413), false, "http_4xx");
        check(
            DeliveryError::Invalid {
                code: "payload_too_large",
                reason: "x".into(),
            },
            false,
            "payload_too_large",
        );
        check(
            DeliveryError::Custom {
                message: "m".into(),
                retryable: true,
            },
            true,
            "listener_retry",
        );
    }

    #[test]
    fn delivery_ids_round_trip() {
        for s in ["listener:audit", "broadcast:pusher", "listener:a:b"] {
            assert_eq!(DeliveryId::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(DeliveryId::parse("pusher"), None);
    }
}
