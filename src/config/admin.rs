//! `[metrics]`: the operator HTTP endpoint (`/metrics`, `/healthz`, `/readyz`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[metrics]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`; empty (`None`) disables the server.
    /// Env: `HERALD_METRICS_ADDR`.
    #[serde(with = "super::de::addr")]
    pub addr: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            addr: Some(SocketAddr::from(([127, 0, 0, 1], 9477))),
        }
    }
}
