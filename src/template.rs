//! Channel templates: `orders.{order_id}`, `user.{customer.id}`.
//!
//! Owns: the template syntax (literal text and `{path.to.field}` holes), parsing it once when
//! the config is read, and filling the holes from an envelope's `data`. Does not own: where
//! templates come from (`config`, `events.*.channels`) or when they apply (`registry`).

use std::fmt;

use serde_json::Value;

use crate::envelope::Rejection;

/// A parsed channel template. Built only by [`Template::parse`] (or by reading the config), so
/// holding one means the syntax is valid.
#[derive(Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Literal(String),
    Field(Vec<String>),
}

impl Template {
    /// Parses `orders.{order_id}` or `user.{customer.id}`.
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or("unclosed `{`")?;
            let path = &after[..close];
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(format!(
                    "`{{{path}}}` is not a field path like `{{order_id}}`"
                ));
            }
            parts.push(Part::Field(path.split('.').map(String::from).collect()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err("`}` without `{`".into());
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// Whether any hole reads `data` (a template without one needs no parse of `data`).
    pub(crate) fn has_fields(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// Fills the holes from `data`. Strings and numbers are allowed; anything else is an error.
    pub(crate) fn render(&self, data: &Value) -> Result<String, Rejection> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Field(path) => out.push_str(&self.field(data, path)?),
            }
        }
        Ok(out)
    }

    fn field(&self, data: &Value, path: &[String]) -> Result<String, Rejection> {
        let bad = |reason: String| Rejection::Template {
            template: self.source.clone(),
            reason,
        };
        let mut v = data;
        for seg in path {
            v = v
                .get(seg)
                .ok_or_else(|| bad(format!("data has no field `{}`", path.join("."))))?;
        }
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(bad(format!(
                "field `{}` is {}, not a string or number",
                path.join("."),
                kind(other)
            ))),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
    }
}

impl TryFrom<String> for Template {
    type Error = String;

    fn try_from(source: String) -> Result<Template, String> {
        Template::parse(&source).map_err(|why| format!("{source:?}: {why}"))
    }
}

impl From<Template> for String {
    fn from(t: Template) -> String {
        t.source
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_syntax() {
        assert!(Template::parse("orders.{order_id}").is_ok());
        assert!(Template::parse("plain").is_ok());
        assert!(Template::parse("a.{").is_err());
        assert!(Template::parse("a.{}").is_err());
        assert!(Template::parse("a.{x..y}").is_err());
        assert!(Template::parse("a}").is_err());
    }

    #[test]
    fn holes_are_filled_from_data() {
        let t = Template::parse("user.{customer.id}.{n}").unwrap();
        let data = serde_json::json!({"customer": {"id": "c7"}, "n": 3});
        assert_eq!(t.render(&data).unwrap(), "user.c7.3");
        assert_eq!(
            t.render(&serde_json::json!({"n": 1})).unwrap_err().code(),
            "bad_template"
        );
    }
}
