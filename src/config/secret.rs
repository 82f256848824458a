//! Secrets in the config: values that must never reach logs, metrics, errors or `check-config`.
//!
//! Owns: [`Secret`] and [`RedisUrl`], whose `Debug`, `Display` and `Serialize` print `****` in
//! place of the secret, so neither a `{:?}` of any config nor `check-config` can show one;
//! [`mask_url_password`]; and which keys hold secrets before they are typed (for `${VAR}`
//! expansion errors). Does not own: where secrets are used (each sink calls `expose`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret prints as.
const MASK: &str = "****";

/// Keys whose values are secrets wherever they appear (checked before values are typed, so a
/// broken `${…}` in one is reported without its text).
const SECRET_KEYS: &[&str] = &[
    "secret",
    "password",
    "token",
    "encryption_master_key_base64",
];

/// Whether the config key `key` (dotted path) holds a secret.
pub(super) fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key.rsplit('.').next().unwrap_or(key))
}

/// A secret string: a Pusher app secret, a webhook signing secret, an encryption key, a header
/// value. Prints as `****` (empty as `""`) everywhere; [`Secret::expose`] is the only way in.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is unset (empty).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn shown(&self) -> &'static str {
        if self.0.is_empty() { "" } else { MASK }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        super::de::lenient::string(d).map(Secret)
    }
}

/// A Redis URL, `redis://[user:password@]host:port[/db]` (`rediss://` for TLS), checked when
/// read. Prints with its password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Checks that `url` is a Redis URL without connecting.
    pub fn parse(url: &str) -> Result<RedisUrl, String> {
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss" | "unix" | "redis+unix"));
        if ok {
            Ok(RedisUrl(url.to_string()))
        } else {
            Err(format!(
                "{:?} is not a redis:// or rediss:// URL",
                mask_url_password(url)
            ))
        }
    }

    /// The URL with its password, for the client that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.0.starts_with("rediss://")
    }
}

impl PartialEq<&str> for RedisUrl {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", mask_url_password(&self.0))
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_url_password(&self.0))
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&mask_url_password(&self.0))
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RedisUrl, D::Error> {
        let url = String::deserialize(d)?;
        RedisUrl::parse(&url).map_err(serde::de::Error::custom)
    }
}

/// `scheme://user:password@host` → `scheme://user:****@host`; anything else unchanged.
pub fn mask_url_password(s: &str) -> String {
    if let Ok(mut u) = reqwest::Url::parse(s)
        && u.password().is_some()
        && u.set_password(Some(MASK)).is_ok()
    {
        return u.to_string();
    }
    s.to_string()
}
