//! Reading a Pusher server's answer: the body (bounded), an error hidden in a 2xx body
//! (soketi), and the server's own words for error messages. Pure but for reading the body.

/// Most of an answer's body kept for error messages.
const MAX_ERROR_BODY: usize = 4096;

/// The body, at most [`MAX_ERROR_BODY`] bytes of it.
pub(super) async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while out.len() < MAX_ERROR_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ERROR_BODY - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => return Err(crate::delivery::http_error_text(e)),
        }
    }
    Ok(out)
}

/// The status of an error reported inside a 2xx body (`{"error":…,"code":401}`), if any.
pub(super) fn embedded_error_status(body: &[u8]) -> Option<u16> {
    #[derive(serde::Deserialize)]
    struct Embedded {
        error: serde_json::Value,
        code: u16,
    }
    let e: Embedded = serde_json::from_slice(body).ok()?;
    (e.error.is_string() && (400..600).contains(&e.code)).then_some(e.code)
}

/// The server's own words: `error` (soketi, sockudo), `message` (Reverb, Laravel), or the text.
pub(super) fn server_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let field = |k: &str| v.get(k).and_then(|m| m.as_str()).map(str::to_string);
            let msg = field("error").or_else(|| field("message"))?;
            Some(match v.get("errors") {
                Some(errors) => format!("{msg} {errors}"),
                None => msg,
            })
        });
    let msg = from_json.unwrap_or_else(|| text.trim().to_string());
    if msg.is_empty() {
        "(empty answer)".into()
    } else {
        msg.chars().take(500).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_inside_a_2xx_body_are_believed() {
        assert_eq!(
            embedded_error_status(br#"{"error":"The secret authentication failed","code":401}"#),
            Some(401)
        );
        for ok in [&br#"{}"#[..], br#"{"ok":true}"#, b"", br#"{"channels":{}}"#] {
            assert_eq!(embedded_error_status(ok), None);
        }
    }

    #[test]
    fn server_messages_are_extracted() {
        assert_eq!(
            server_message(
                br#"{"error":"Invalid API signature","code":"auth_failed","status":401}"#
            ),
            "Invalid API signature"
        );
        assert_eq!(
            server_message(
                br#"{"message":"The given data was invalid.","errors":{"data":["required"]}}"#
            ),
            r#"The given data was invalid. {"data":["required"]}"#
        );
        assert_eq!(server_message(b"Unknown auth_key\n"), "Unknown auth_key");
        assert_eq!(server_message(b""), "(empty answer)");
    }
}
