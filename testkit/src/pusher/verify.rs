//! The signature check of [`super::PusherFake`], as sockudo does it; written independently of
//! herald's signer, so a signing bug cannot hide by agreeing with itself.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// Checks a request's signature the way sockudo does; `Err` carries the reason for the 401.
#[allow(clippy::too_many_arguments)]
pub fn verify_signature(
    app_id: &str,
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
    now_secs: u64,
    window_secs: u64,
) -> Result<(), String> {
    let url = url::Url::parse(&format!("http://fake/?{query}"))
        .map_err(|e| format!("unreadable query: {e}"))?;
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut signature = None;
    for (k, v) in url.query_pairs() {
        if k == "auth_signature" {
            signature = Some(v.into_owned());
        } else if params.insert(k.to_lowercase(), v.into_owned()).is_some() {
            return Err(format!("parameter {k} given twice"));
        }
    }
    let signature = signature.ok_or("missing auth_signature")?;
    if params.get("auth_key").map(String::as_str) != Some(key) {
        return Err("unknown auth_key".into());
    }
    let in_path = path
        .strip_prefix("/apps/")
        .and_then(|rest| rest.split('/').next());
    if in_path != Some(app_id) {
        return Err("Authenticated app does not match route app_id".into());
    }
    if params.get("auth_version").map(String::as_str) != Some("1.0") {
        return Err("auth_version must be 1.0".into());
    }
    let ts: u64 = params
        .get("auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or("missing or non-numeric auth_timestamp")?;
    if ts.abs_diff(now_secs) > window_secs {
        return Err("Timestamp expired or too far in the future".into());
    }
    match (body.is_empty(), params.get("body_md5")) {
        (false, None) => return Err("body_md5 is required for a request with a body".into()),
        (false, Some(md5)) if *md5 != hex::encode(Md5::digest(body)) => {
            return Err("body_md5 does not match the body".into());
        }
        (true, Some(_)) => return Err("body_md5 given for an empty body".into()),
        _ => {}
    }
    let joined: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let to_sign = format!(
        "{}\n{path}\n{}",
        method.to_ascii_uppercase(),
        joined.join("&")
    );
    let given = hex::decode(&signature).map_err(|_| "auth_signature is not hex")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&given)
        .map_err(|_| "Invalid API signature".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    const QUERY: &str = "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
        &body_md5=ec365a775a4cd0599faeb73354201b6f\
        &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";

    fn check(path: &str, query: &str, body: &[u8], now: u64) -> Result<(), String> {
        verify_signature(
            "3",
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "POST",
            path,
            query,
            body,
            now,
            600,
        )
    }

    /// Pusher's worked example is accepted; every single change to it is refused.
    #[test]
    fn accepts_the_docs_vector_and_nothing_else() {
        let ts = 1353088179;
        assert_eq!(check("/apps/3/events", QUERY, BODY, ts), Ok(()));
        assert_eq!(check("/apps/3/events", QUERY, BODY, ts + 600), Ok(()));
        let cases: [(&str, String, &[u8], u64, &str); 7] = [
            ("/apps/3/events", QUERY.into(), BODY, ts + 601, "Timestamp"),
            ("/apps/4/events", QUERY.into(), BODY, ts, "route app_id"),
            (
                "/apps/3/batch_events",
                QUERY.into(),
                BODY,
                ts,
                "Invalid API signature",
            ),
            (
                "/apps/3/events",
                QUERY.into(),
                b"{}",
                ts,
                "body_md5 does not match",
            ),
            (
                "/apps/3/events",
                QUERY.replace("278d", "278e"),
                BODY,
                ts,
                "unknown auth_key",
            ),
            (
                "/apps/3/events",
                QUERY.replace("da4548", "da4549"),
                BODY,
                ts,
                "Invalid API signature",
            ),
            (
                "/apps/3/events",
                QUERY.replace("&body_md5=ec365a775a4cd0599faeb73354201b6f", ""),
                BODY,
                ts,
                "body_md5 is required",
            ),
        ];
        for (path, query, body, now, why) in cases {
            let err = check(path, &query, body, now).unwrap_err();
            assert!(err.contains(why), "{err:?} should say {why:?}");
        }
    }
}
