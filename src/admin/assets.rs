//! The dashboard's page and assets, embedded in the binary: no CDN, no build step, works offline.
//!
//! Owns: serving `index.html`, `app.js`, `app.css` and the icon from `assets/` (hand-written;
//! nothing generates them), the login page, and the headers every page gets (a strict Content
//! Security Policy: only these files run). Does not own: access (`auth`) or data (`api`).

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::AppState;

const INDEX: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const ICON: &str = include_str!("assets/icon.svg");

/// Only the embedded files load and run; nothing may frame the page.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page(Html(INDEX.to_string())) }))
        .route(
            "/assets/app.js",
            get(|h: HeaderMap| async move { asset(&h, APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|h: HeaderMap| async move { asset(&h, APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/icon.svg",
            get(|h: HeaderMap| async move { asset(&h, ICON, "image/svg+xml") }),
        )
}

/// The login form, with `error` shown above it. Holds no data.
pub(super) fn login_page(error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    page(Html(LOGIN.replace("<!--error-->", &error)))
}

/// A page with the security headers.
fn page(html: Html<String>) -> Response {
    let mut r = html.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A static file, revalidated by its ETag (a build's files never change while it runs).
fn asset(headers: &HeaderMap, body: &'static str, content_type: &'static str) -> Response {
    let etag = format!("\"{}-{:x}\"", env!("CARGO_PKG_VERSION"), fnv(body));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::ETAG, etag),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        body,
    )
        .into_response()
}

/// FNV-1a: a cheap fingerprint of a file for its ETag.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
