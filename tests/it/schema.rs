//! The envelope schema (config/envelope.schema.json) agrees with the README and with herald's
//! own decoder: every README example is valid under both; every kind of bad input is invalid
//! under both.

use bytes::Bytes;
use herald::envelope::{Limits, decode};
use serde_json::Value;

fn schema() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(include_str!("../../config/envelope.schema.json")).unwrap();
    jsonschema::validator_for(&schema).expect("the schema itself is valid")
}

/// Code blocks fenced as ```json envelope in the README.
fn readme_examples() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```json envelope" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            out.push(block.join("\n"));
        }
    }
    out
}

#[test]
fn readme_envelope_examples_validate_against_the_schema_and_decode() {
    let validator = schema();
    let examples = readme_examples();
    assert!(
        examples.len() >= 3,
        "the README should show envelope examples"
    );
    for example in examples {
        let v: Value = serde_json::from_str(&example).unwrap_or_else(|e| panic!("{e}: {example}"));
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{example}\n{errors:?}");
        decode(Bytes::from(example.clone()), &Limits::default())
            .unwrap_or_else(|e| panic!("herald rejects a README example: {e}\n{example}"));
    }
}

#[test]
fn bad_envelopes_are_invalid_under_the_schema_and_rejected_by_herald() {
    let validator = schema();
    for bad in [
        r#"{"data":{}}"#,
        r#"{"event":"E"}"#,
        r#"{"event":"E","data":[1]}"#,
        r#"{"event":"E","data":[]}"#,
        r#"{"event":"E","data":[],"final_payload":false}"#,
        r#"{"event":"E","data":[1],"final_payload":true}"#,
        r#"{"event":"E","data":{},"final_payload":1}"#,
        r#"{"event":"","data":{}}"#,
        r#"{"event":"E","data":{},"channels":["a b"]}"#,
        r#"{"event":"E","data":{},"channels":"a"}"#,
        r#"{"event":"E","data":{},"max_attempts":0}"#,
        r#"{"event":"E","data":{},"pending":["nope"]}"#,
        r#"[1]"#,
    ] {
        let v: Value = serde_json::from_str(bad).unwrap();
        assert!(!validator.is_valid(&v), "schema accepts {bad}");
        assert!(
            decode(Bytes::from(bad), &Limits::default()).is_err(),
            "herald accepts {bad}"
        );
    }
}
