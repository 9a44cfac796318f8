//! Outbound webhooks, signed the Standard Webhooks way with the same definition
//! offboard verifies inbound ones by ([`crate::signing`]): `webhook-id` is the
//! notification's stable id, `webhook-timestamp` the send time, and
//! `webhook-signature` covers `{id}.{timestamp}.{body}`. A 2xx is delivered;
//! anything else, or no answer, is a failed attempt.

use serde_json::Value;

use super::{email::SendError, settings::Endpoint};
use crate::signing;

/// POSTs one stored webhook body to `endpoint`, signed at `now` (Unix seconds).
pub(super) async fn send(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    id: &str,
    body: &Value,
    now: i64,
) -> Result<(), SendError> {
    let body = body.to_string().into_bytes();
    let headers = signing::headers(&endpoint.key, id, now, &body)
        .map_err(|e| SendError::Webhook(format!("signing: {e}")))?;
    let mut request = http
        .post(endpoint.url.clone())
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("offboard/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let answer = request
        .body(body)
        .send()
        .await
        .map_err(|e| SendError::Webhook(describe(&e)))?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(SendError::Webhook(format!(
            "{} answered {status}",
            endpoint.name
        )))
    }
}

/// A transport error with its cause chain (reqwest's top line alone says little),
/// without the URL (it may carry a token in its path).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "no answer"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}
