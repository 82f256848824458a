//! `[failed]`: the dead-letter store's cap.

use serde::{Deserialize, Serialize};

/// `[failed]`: the dead-letter store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailedConfig {
    /// Most dead letters kept per queue; the oldest are evicted beyond it (0 = no cap).
    pub max_entries: usize,
}

impl Default for FailedConfig {
    fn default() -> Self {
        FailedConfig {
            max_entries: 10_000,
        }
    }
}
