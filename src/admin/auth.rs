//! Who may use the dashboard and the admin API, and from where.
//!
//! Owns: the access mode ([`Access`]: open on loopback without a token, a token, or off), the
//! one middleware every dashboard and API request passes ([`guard`]), the login form and its
//! session cookie, and the actor name each action is logged with. Does not own: `/metrics`,
//! `/healthz`, `/readyz` (always open) or what the API does (`api`).
//!
//! The rules, in the order they are checked:
//! 1. Off (`metrics.addr` not loopback, no token): 403 with the reason, for every page and call.
//!    Payloads can hold personal data; a network-reachable dashboard needs a token.
//! 2. A request that changes something (any method but GET/HEAD) from another origin is refused:
//!    `Sec-Fetch-Site` other than `same-origin`/`none`, or an `Origin` whose host is not the
//!    request's `Host`. Together with the API's JSON-only bodies (a cross-site form cannot send
//!    one) and the `SameSite=Strict` cookie, a page elsewhere cannot drive an action through a
//!    browser that is logged in. Requests without either header (curl) are not browsers'.
//! 3. Open mode answers only to a loopback `Host` (`localhost`, `127.0.0.1`, `[::1]`): another
//!    name resolving to 127.0.0.1 (DNS rebinding) would otherwise read the page from a site.
//! 4. Token mode: `Authorization: Bearer <token>`, or the cookie the login form sets, else 401
//!    (the login form for a page, JSON for the API) and no data.

use std::net::{IpAddr, SocketAddr};

use axum::Form;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::AppState;
use super::assets;
use crate::config::Secret;

/// The session cookie's name.
const COOKIE: &str = "herald_admin";

/// Who may use the dashboard and the API.
pub(crate) enum Access {
    /// Bound to loopback without a token: anyone on this machine.
    Open,
    /// Every request shows the token, or the session cookie made from it.
    Token {
        token: Secret,
        /// The cookie value a login sets: HMAC-SHA256(token, a fixed label), so the cookie is not
        /// the token, changes when the token does, and is the same on every replica.
        session: String,
    },
    /// Not loopback and no token: the dashboard and API are off.
    Disabled,
}

impl Access {
    /// The mode for a server bound to `addr` with `token` (empty: none).
    pub(crate) fn for_address(addr: SocketAddr, token: &Secret) -> Access {
        if !token.is_empty() {
            let mut mac = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes())
                .expect("HMAC takes any key length");
            mac.update(b"herald admin session v1");
            Access::Token {
                token: token.clone(),
                session: hex::encode(mac.finalize().into_bytes()),
            }
        } else if addr.ip().is_loopback() {
            Access::Open
        } else {
            Access::Disabled
        }
    }

    /// The log line saying where the dashboard is and how it is protected, or why it is off.
    pub(crate) fn announce(&self, addr: SocketAddr) {
        match self {
            Access::Open => tracing::info!(
                message = "Dashboard and admin API served without a token (loopback only).",
                url = %format!("http://{addr}/"),
            ),
            Access::Token { .. } => tracing::info!(
                message = "Dashboard and admin API served; every request needs the admin token.",
                url = %format!("http://{addr}/"),
            ),
            Access::Disabled => tracing::warn!(
                message = "Dashboard and admin API disabled: metrics.addr is not a loopback address and no admin token is set (HERALD_ADMIN_TOKEN / admin.token); dead-letter payloads can hold personal data. /metrics, /healthz and /readyz are served.",
                addr = %addr,
            ),
        }
    }

    /// How `headers` authenticate, if they do: `token` or `cookie` (`open` in open mode).
    fn authenticate(&self, headers: &HeaderMap) -> Option<&'static str> {
        match self {
            Access::Open => Some("open"),
            Access::Disabled => None,
            Access::Token { token, session } => {
                let bearer = header_str(headers, header::AUTHORIZATION)
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim);
                if bearer.is_some_and(|b| same(b, token.expose())) {
                    return Some("token");
                }
                let cookie = cookie(headers, COOKIE);
                cookie.filter(|c| same(c, session)).map(|_| "cookie")
            }
        }
    }
}

/// Who made a request, for the log line of an action: client address, how it authenticated,
/// and the `X-Forwarded-For` a proxy added (as the proxy said it).
#[derive(Clone, Debug)]
pub(crate) struct Who(pub(crate) String);

/// The middleware in front of every dashboard page and API call (see the module docs).
pub(crate) async fn guard(
    State(s): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Access::Disabled = *s.access {
        return refuse(
            StatusCode::FORBIDDEN,
            "The dashboard and admin API are disabled: herald serves them off loopback only with \
             an admin token (HERALD_ADMIN_TOKEN / admin.token), because dead-letter payloads can \
             hold personal data.",
        );
    }
    let headers = req.headers();
    if !matches!(*req.method(), Method::GET | Method::HEAD)
        && let Some(why) = cross_origin(headers)
    {
        tracing::warn!(message = "Refused a cross-origin admin request.", client = %client, path = %req.uri().path(), why = %why);
        return refuse(
            StatusCode::FORBIDDEN,
            &format!("cross-origin request refused: {why}"),
        );
    }
    if let Access::Open = *s.access
        && !loopback_host(headers)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "Host not allowed: without an admin token the dashboard answers only to localhost, \
             127.0.0.1 or [::1].",
        );
    }
    let path = req.uri().path();
    let public = path.starts_with("/assets/") || path == "/login" || path == "/logout";
    let Some(how) = s.access.authenticate(headers) else {
        if public {
            return next.run(req).await;
        }
        return unauthorized(path);
    };
    let mut who = format!("{client} ({how})");
    if let Some(fwd) = header_str(headers, "x-forwarded-for") {
        who.push_str(&format!(" for {fwd}"));
    }
    req.extensions_mut().insert(Who(who));
    next.run(req).await
}

/// Why a request that changes something comes from another origin, if it does.
fn cross_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = header_str(headers, "sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!("Sec-Fetch-Site is {site}"));
    }
    let origin = header_str(headers, header::ORIGIN)?;
    let host = header_str(headers, header::HOST).unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match origin_host {
        Some(o) if o.eq_ignore_ascii_case(host) => None,
        _ => Some(format!("Origin {origin} is not this server ({host})")),
    }
}

/// Whether the `Host` header names this machine's loopback.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = header_str(headers, header::HOST) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// 401: the login form for a page, JSON for the API; never any data.
fn unauthorized(path: &str) -> Response {
    if path.starts_with("/api") {
        let body = serde_json::json!({
            "error": "unauthorized: send Authorization: Bearer <admin token>"
        });
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(body),
        )
            .into_response();
    }
    (StatusCode::UNAUTHORIZED, assets::login_page(None)).into_response()
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}

async fn login_form(State(s): State<AppState>, headers: HeaderMap) -> Response {
    match s.access.authenticate(&headers) {
        Some(_) => Redirect::to("/").into_response(),
        None => assets::login_page(None).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(s): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Access::Token { token, session } = &*s.access else {
        return Redirect::to("/").into_response();
    };
    if !same(form.token.trim(), token.expose()) {
        tracing::warn!(message = "Dashboard login failed: wrong token.", client = %client);
        let page = assets::login_page(Some("That is not the admin token."));
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    tracing::info!(message = "Dashboard login.", client = %client);
    let secure = header_str(&headers, "x-forwarded-proto") == Some("https");
    let cookie = format!(
        "{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Equality of two secrets in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_mode_follows_the_address_and_the_token() {
        let lo: SocketAddr = "127.0.0.1:9477".parse().unwrap();
        let v6: SocketAddr = "[::1]:9477".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9477".parse().unwrap();
        let none = Secret::default();
        assert!(matches!(Access::for_address(lo, &none), Access::Open));
        assert!(matches!(Access::for_address(v6, &none), Access::Open));
        assert!(matches!(Access::for_address(any, &none), Access::Disabled));
        let t = Secret::new("s3cret");
        assert!(matches!(Access::for_address(any, &t), Access::Token { .. }));
    }

    #[test]
    fn a_token_or_its_session_cookie_authenticates() {
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        let a = Access::for_address(any, &Secret::new("s3cret"));
        let Access::Token { session, .. } = &a else {
            unreachable!()
        };
        assert!(!session.contains("s3cret"));
        let check = |h: &[(&'static str, &str)]| a.authenticate(&headers(h));
        assert_eq!(check(&[("authorization", "Bearer s3cret")]), Some("token"));
        assert_eq!(check(&[("authorization", "Bearer s3cre")]), None);
        assert_eq!(check(&[("authorization", "Basic s3cret")]), None);
        let good = format!("a=1; {COOKIE}={session}");
        assert_eq!(check(&[("cookie", &good)]), Some("cookie"));
        assert_eq!(check(&[("cookie", "herald_admin=s3cret")]), None);
        assert_eq!(check(&[]), None);
    }

    #[test]
    fn cross_origin_is_told_by_fetch_metadata_or_origin() {
        let check = |h: &[(&'static str, &str)]| cross_origin(&headers(h)).is_some();
        assert!(!check(&[]), "curl sends neither");
        assert!(!check(&[("sec-fetch-site", "same-origin")]));
        assert!(check(&[("sec-fetch-site", "cross-site")]));
        assert!(check(&[("sec-fetch-site", "same-site")]));
        let host = ("host", "127.0.0.1:9477");
        assert!(!check(&[host, ("origin", "http://127.0.0.1:9477")]));
        assert!(check(&[host, ("origin", "http://evil.example")]));
        assert!(check(&[host, ("origin", "null")]));
    }

    #[test]
    fn open_mode_answers_only_to_loopback_names() {
        let ok = |h: &str| loopback_host(&headers(&[("host", h)]));
        assert!(
            ok("127.0.0.1:9477") && ok("localhost:9477") && ok("[::1]:9477") && ok("localhost")
        );
        assert!(!ok("evil.example:9477"));
        assert!(!ok("10.0.0.5:9477"));
        assert!(!loopback_host(&HeaderMap::new()));
    }
}
