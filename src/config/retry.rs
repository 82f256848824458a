//! `[retry]` and the per-event `events.*.retry` overrides.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// Retry policy for failed deliveries; `events.<name>.retry` overrides it per event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per delivery, the first included. Env: `HERALD_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// First delay of the exponential schedule (doubles each attempt, full jitter).
    #[serde(with = "super::de::duration")]
    pub base: Duration,
    /// Longest delay of the exponential schedule.
    #[serde(with = "super::de::duration")]
    pub cap: Duration,
    /// Explicit delays instead of the exponential schedule; the last one repeats.
    #[serde(with = "super::de::duration::list")]
    pub delays: Vec<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 10,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            delays: Vec::new(),
        }
    }
}

/// Per-event retry override: any key left out keeps the global value.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOverride {
    /// Attempts per delivery for this event.
    pub max_attempts: Option<u32>,
    /// First delay of the exponential schedule.
    #[serde(with = "super::de::duration::option")]
    pub base: Option<Duration>,
    /// Longest delay of the exponential schedule.
    #[serde(with = "super::de::duration::option")]
    pub cap: Option<Duration>,
    /// Explicit delays; the last one repeats.
    #[serde(with = "super::de::duration::option_list")]
    pub delays: Option<Vec<Duration>>,
}

impl RetryConfig {
    /// This policy with `o`'s keys applied.
    pub fn with(&self, o: &RetryOverride) -> RetryConfig {
        RetryConfig {
            max_attempts: o.max_attempts.unwrap_or(self.max_attempts),
            base: o.base.unwrap_or(self.base),
            cap: o.cap.unwrap_or(self.cap),
            delays: o.delays.clone().unwrap_or_else(|| self.delays.clone()),
        }
    }

    /// Checks the policy found at `key`.
    pub(super) fn check(&self, key: &str) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(invalid(format!("{key}.max_attempts"), "must be at least 1"));
        }
        if self.base.is_zero() || self.cap < self.base {
            return Err(invalid(key, "need 0 < base <= cap"));
        }
        Ok(())
    }
}
