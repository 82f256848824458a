//! `[metrics]` and `[admin]`: the operator HTTP endpoint (`/metrics`, `/healthz`, `/readyz`) and
//! the dashboard and admin API served beside it.
//!
//! Owns: the address, the admin token and the rule for what a token may be. Does not own: who
//! may see what (`admin::auth`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, invalid};

/// `[metrics]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`, and of the dashboard (`/`) and admin
    /// API (`/api/…`); empty (`None`) disables the server. Env: `HERALD_METRICS_ADDR`.
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

/// `[admin]`: the dashboard and the admin API on `metrics.addr`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// When set, every dashboard page and admin API request needs `Authorization: Bearer
    /// <token>` (or the cookie the login form sets). When empty and `metrics.addr` is not a
    /// loopback address, the dashboard and API are off. Env: `HERALD_ADMIN_TOKEN`.
    pub token: Secret,
}

impl AdminConfig {
    /// A token, when set, is one HTTP header value and one cookie value: printable ASCII, no
    /// spaces. The message never shows the token.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let t = self.token.expose();
        if t.is_empty() {
            return Ok(());
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "admin.token",
                "expected printable ASCII without spaces (as it is sent in an \
                 `Authorization: Bearer` header); value not shown",
            ));
        }
        Ok(())
    }
}
