//! `[limits]`: input limits, checked before anything is delivered.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};
use crate::envelope::Limits;

/// `[limits]`: checked before anything is delivered.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest envelope accepted, in bytes; larger ones are dead-lettered unread.
    pub max_envelope_bytes: usize,
    /// Longest event name (characters).
    pub max_event_name: usize,
    /// Longest channel name (characters); Pusher documents 164.
    pub max_channel_name: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_envelope_bytes: l.max_bytes,
            max_event_name: l.max_event_name,
            max_channel_name: l.max_channel_name,
        }
    }
}

impl LimitsConfig {
    /// The limits the decoder enforces.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.max_envelope_bytes,
            max_event_name: self.max_event_name,
            max_channel_name: self.max_channel_name,
        }
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.max_envelope_bytes < 64 {
            return Err(invalid("limits.max_envelope_bytes", "must be at least 64"));
        }
        Ok(())
    }
}
