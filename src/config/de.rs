//! Serde helpers for config values: durations (`"500ms"`, `"25s"`), values `${VAR}` expansion
//! left as text (`lenient`), and addresses that may be empty (`addr`).

/// Durations as `"500ms"`, `"25s"`, `"5m"` (humantime), or a bare integer of seconds.
pub(super) mod duration {
    use serde::{Deserialize, Deserializer, Serializer, de};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Secs(u64),
        Text(String),
    }

    fn from_repr<E: de::Error>(r: Repr) -> Result<Duration, E> {
        match r {
            Repr::Secs(s) => Ok(Duration::from_secs(s)),
            // A bare number of seconds also arrives as text through `${VAR}`.
            Repr::Text(t) if t.trim().parse::<u64>().is_ok() => {
                Ok(Duration::from_secs(t.trim().parse().expect("checked")))
            }
            Repr::Text(t) => humantime::parse_duration(&t).map_err(|e| {
                E::custom(format!(
                    "{t:?} is not a duration like \"500ms\" or \"25s\": {e}"
                ))
            }),
        }
    }

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_repr(Repr::deserialize(d)?)
    }

    pub(crate) mod option {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<Repr>::deserialize(d)?.map(from_repr).transpose()
        }
    }

    pub(crate) mod list {
        use super::*;
        use serde::ser::SerializeSeq;
        pub(crate) fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for d in v {
                seq.serialize_element(&humantime::format_duration(*d).to_string())?;
            }
            seq.end()
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Vec<Duration>, D::Error> {
            Vec::<Repr>::deserialize(d)?
                .into_iter()
                .map(from_repr)
                .collect()
        }
    }

    pub(crate) mod option_list {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(
            v: &Option<Vec<Duration>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::list::serialize(v, s),
                None => s.serialize_none(),
            }
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Vec<Duration>>, D::Error> {
            Option::<Vec<Repr>>::deserialize(d)?
                .map(|v| v.into_iter().map(from_repr).collect())
                .transpose()
        }
    }
}

/// Values that `${VAR}` expansion may have turned into numbers or left empty.
pub(super) mod lenient {
    use serde::{Deserialize, Deserializer, Serializer, de};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Str(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }

    /// A string, also accepting what `${VAR}` expansion typed as a number or boolean
    /// (`PUSHER_APP_ID=12345` becomes the integer 12345).
    pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match Scalar::deserialize(d)? {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        })
    }

    /// A number, also given as a numeric string (`${VAR}` inside a user-named table is text).
    pub(crate) fn number<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: std::str::FromStr + TryFrom<i64>,
    {
        let v = Scalar::deserialize(d)?;
        let parsed = match &v {
            Scalar::Int(i) => T::try_from(*i).ok(),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| match v {
            Scalar::Str(s) => de::Error::custom(format!("{s:?} is not a valid number here")),
            Scalar::Int(i) => de::Error::custom(format!("{i} is out of range here")),
            _ => de::Error::custom("expected a number"),
        })
    }

    /// `true`/`false`, also given as text.
    pub(crate) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Bool(b) => Ok(b),
            Scalar::Str(s) => s
                .trim()
                .parse()
                .map_err(|_| de::Error::custom(format!("{s:?} is not true or false"))),
            _ => Err(de::Error::custom("expected true or false")),
        }
    }

    /// A port: an integer, a numeric string, or empty (`PUSHER_PORT` unset) for none.
    pub(crate) mod port {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(p: &Option<u16>, s: S) -> Result<S::Ok, S::Error> {
            match p {
                Some(p) => s.serialize_u16(*p),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<u16>, D::Error> {
            let bad = |v: &dyn std::fmt::Display| {
                de::Error::custom(format!(
                    "port {v} is not a number from 1 to 65535 (or empty)"
                ))
            };
            match Option::<Scalar>::deserialize(d)? {
                None => Ok(None),
                Some(Scalar::Str(s)) if s.trim().is_empty() => Ok(None),
                Some(Scalar::Str(s)) => s.trim().parse().map(Some).map_err(|_| bad(&s)),
                Some(Scalar::Int(i)) => u16::try_from(i).map(Some).map_err(|_| bad(&i)),
                Some(Scalar::Float(f)) => Err(bad(&f)),
                Some(Scalar::Bool(b)) => Err(bad(&b)),
            }
        }
    }
}

/// An optional socket address: `"127.0.0.1:9477"`, or `""` for none (the server is off).
pub(super) mod addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(crate) fn serialize<S: Serializer>(
        a: &Option<SocketAddr>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => s.serialize_str(&a.to_string()),
            None => s.serialize_str(""),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(de::Error::custom)
    }

    /// `""` is none; anything else must be `ip:port`.
    pub(crate) fn parse(text: &str) -> Result<Option<SocketAddr>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:9477"))
    }
}
