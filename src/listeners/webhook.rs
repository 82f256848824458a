//! The `webhook` listener: POST the event as JSON to a URL.
//!
//! Body: `{"id","event","channels","data","socket","queue","attempt"}` with `data` verbatim.
//! Headers: `X-Herald-Id`, `X-Herald-Event`, `X-Herald-Attempt`, and, when a secret is set,
//! `X-Herald-Signature: sha256=<hex HMAC-SHA256(secret, body)>` (GitHub's scheme). 2xx is success;
//! 408, 429 (honouring `Retry-After`), 5xx and timeouts are retried; any other status is fatal.

use std::time::Duration;

use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Event, Listener};
use crate::config::{Secret, WebhookConfig};
use crate::delivery::{DeliveryError, DeliveryResult};

pub(crate) struct Webhook {
    url: String,
    secret: Option<Secret>,
    timeout: Duration,
    headers: Vec<(String, Secret)>,
    http: reqwest::Client,
}

impl Webhook {
    pub(crate) fn new(c: &WebhookConfig, http: reqwest::Client) -> Webhook {
        Webhook {
            url: c.url.clone(),
            secret: c.secret.clone().filter(|s| !s.is_empty()),
            timeout: c.timeout,
            headers: c.headers.clone().into_iter().collect(),
            http,
        }
    }

    fn body(event: &Event<'_>) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            id: &'a str,
            event: &'a str,
            channels: &'a [String],
            data: &'a serde_json::value::RawValue,
            socket: Option<&'a str>,
            queue: &'a str,
            attempt: u32,
        }
        serde_json::to_vec(&Body {
            id: event.id,
            event: event.event,
            channels: event.channels,
            data: event.data,
            socket: event.socket,
            queue: event.queue,
            attempt: event.attempt,
        })
        .expect("webhook body serializes")
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Maps a transport error to a delivery error.
pub(crate) fn transport_error(e: reqwest::Error, limit: Duration) -> DeliveryError {
    if e.is_timeout() {
        DeliveryError::Timeout(limit)
    } else {
        DeliveryError::Connect(crate::delivery::http_error_text(e))
    }
}

/// Reads at most a short prefix of an error body, for the dead letter.
pub(crate) async fn error_body(resp: reqwest::Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    let mut s: String = text.chars().take(500).collect();
    if text.len() > s.len() {
        s.push('…');
    }
    s
}

impl Listener for Webhook {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn handle<'a>(&'a self, event: &'a Event<'a>) -> BoxFuture<'a, DeliveryResult> {
        Box::pin(async move {
            let body = Self::body(event);
            let mut req = self
                .http
                .post(&self.url)
                .timeout(self.timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("X-Herald-Id", event.id)
                .header("X-Herald-Event", event.event)
                .header("X-Herald-Attempt", event.attempt.to_string());
            if let Some(secret) = &self.secret {
                req = req.header("X-Herald-Signature", signature(secret.expose(), &body));
            }
            for (k, v) in &self.headers {
                req = req.header(k, v.expose());
            }
            let resp = req
                .body(body)
                .send()
                .await
                .map_err(|e| transport_error(e, self.timeout))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let retry_after = retry_after(resp.headers());
            Err(DeliveryError::Http {
                status: status.as_u16(),
                body: error_body(resp).await,
                retry_after,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_a_known_hmac() {
        // echo -n 'hello' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            super::signature("secret", b"hello"),
            "sha256=88aab3ede8d3adf94d26ab90d3bafd4a2083070c3bcce9c014ee04a443847c0b"
        );
    }
}
