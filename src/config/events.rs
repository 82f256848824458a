//! `[events."<name or pattern>"]`: the registry (Laravel's `$listen`).

use serde::{Deserialize, Serialize};

use super::{ConfigError, RetryConfig, RetryOverride, invalid};
use crate::template::Template;

/// One registry entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventConfig {
    /// Listener names to run.
    pub listeners: Vec<String>,
    /// Broadcast connections; unset means `broadcasting.default`, `[]` means none.
    pub connections: Option<Vec<String>>,
    /// Extra channels, templates over `data`: `orders.{order_id}`, `user.{customer.id}`.
    pub channels: Vec<Template>,
    /// Broadcast under this name instead of the event's (Laravel's `broadcastAs`).
    pub broadcast_as: Option<String>,
    /// Retry policy for this event's deliveries.
    pub retry: Option<RetryOverride>,
}

impl EventConfig {
    /// Checks entry `event`; `retry` is the global policy its override applies to.
    pub(super) fn check(&self, event: &str, retry: &RetryConfig) -> Result<(), ConfigError> {
        let key = super::event_key(event);
        if let Some(r) = &self.retry {
            retry.with(r).check(&format!("{key}.retry"))?;
        }
        if self.broadcast_as.as_deref() == Some("") {
            return Err(invalid(format!("{key}.broadcast_as"), "must not be empty"));
        }
        Ok(())
    }
}
