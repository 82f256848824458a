//! Request signing for the Pusher HTTP API, `auth_version` 1.0 (research/wire-formats.md §2b).
//!
//! Owns: the query string of a signed request: `auth_key`, `auth_timestamp`, `auth_version`,
//! `body_md5` (for a non-empty body), sorted by key and joined as `k=v` without URL-escaping,
//! then `&auth_signature=<hex HMAC-SHA256 of "METHOD\npath\nquery">`. This is what the official
//! libraries send (checked against pusher-http-node in `tests/fixtures/pusher_requests.json`).
//! Does not own: verifying signatures (the strict fake in `herald::testing` does that with its
//! own code, so a bug here cannot hide itself).

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// Lowercase hex MD5 of `body`.
pub(crate) fn md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// Lowercase hex HMAC-SHA256 of `data` under `secret`.
pub(crate) fn hmac_hex(secret: &str, data: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(data.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The query string for `method path` carrying `body`, signed with `key`/`secret` at
/// `timestamp` (seconds since the epoch).
///
/// The values here (key, digits, hex) need no escaping; the key is checked by config
/// validation to be what a Pusher app key is.
pub(crate) fn signed_query(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
) -> String {
    // Already in byte order: auth_key < auth_timestamp < auth_version < body_md5.
    let mut query = format!("auth_key={key}&auth_timestamp={timestamp}&auth_version=1.0");
    if !body.is_empty() {
        query.push_str("&body_md5=");
        query.push_str(&md5_hex(body));
    }
    let signature = hmac_hex(
        secret,
        &format!("{}\n{path}\n{query}", method.to_ascii_uppercase()),
    );
    query.push_str("&auth_signature=");
    query.push_str(&signature);
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Pusher's HTTP API reference (pusher/docs rest-api.md).
    #[test]
    fn docs_test_vector() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(md5_hex(body), "ec365a775a4cd0599faeb73354201b6f");
        let query = signed_query(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "POST",
            "/apps/3/events",
            body,
            1353088179,
        );
        assert_eq!(
            query,
            "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
             &body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn an_empty_body_carries_no_body_md5() {
        let query = signed_query("k", "s", "get", "/apps/1/channels", b"", 1);
        assert!(query.starts_with("auth_key=k&auth_timestamp=1&auth_version=1.0&auth_signature="));
        assert_eq!(
            query.rsplit('=').next().unwrap(),
            hmac_hex(
                "s",
                "GET\n/apps/1/channels\nauth_key=k&auth_timestamp=1&auth_version=1.0"
            )
        );
    }
}
