//! `[listeners.<name>]`: the configured listeners (`log`, `webhook`, `forward`), referenced by
//! name from `events.*.listeners`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, invalid};

/// One listener; `type` picks the kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ListenerConfig {
    /// Write the event to the log.
    Log,
    /// POST the event as JSON.
    Webhook(WebhookConfig),
    /// Push the envelope onto another queue list key (prefix applied).
    Forward(ForwardConfig),
}

/// A `type = "webhook"` listener. `Debug` masks a password in its URL, as `check-config` does.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL to POST to.
    pub url: String,
    /// When set, `X-Herald-Signature: sha256=<hex HMAC-SHA256 of the body>` is sent.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Time bound for one call.
    #[serde(default = "default_webhook_timeout", with = "super::de::duration")]
    pub timeout: Duration,
    /// Extra request headers. Their values are treated as secrets (an `Authorization` header is
    /// the usual use): masked in `check-config` and `Debug`.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &super::mask_url_password(&self.url))
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .field("headers", &self.headers)
            .finish()
    }
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

/// A `type = "forward"` listener.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Queue list key to push onto (before the prefix).
    pub queue: String,
}

impl ListenerConfig {
    /// Checks listener `name`; `consumed` are the queues this worker consumes.
    pub(super) fn check(&self, name: &str, consumed: &[String]) -> Result<(), ConfigError> {
        let key = format!("listeners.{name}");
        match self {
            ListenerConfig::Webhook(h) => {
                let ok = reqwest::Url::parse(&h.url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if !ok {
                    return Err(invalid(format!("{key}.url"), "not an http(s) URL"));
                }
            }
            ListenerConfig::Forward(f) => {
                if f.queue.is_empty() {
                    return Err(invalid(format!("{key}.queue"), "must not be empty"));
                }
                if consumed.contains(&f.queue) {
                    return Err(invalid(
                        format!("{key}.queue"),
                        "forwarding to a queue this worker consumes would loop",
                    ));
                }
            }
            ListenerConfig::Log => {}
        }
        Ok(())
    }
}
