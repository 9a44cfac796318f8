//! The mapping target: a source's mapping settings and a request, mapped the way
//! the receiver maps them after the signature check.

use axum::http::header::CONTENT_TYPE;
use offboard_core::{
    domain::OffboardingEvent,
    ingest::mapping::{Input, MAX_EVENTS, Mapping},
};

use crate::{
    input::{first_line, headers, sections},
    signatures::source,
};

/// A source's keys as TOML (`name`, `scheme`, `[map]`, `[values]`, `[defaults]`,
/// `each`, `event_id`, `format`, `form_field`, `[ping]`), a line `%%`, the verified
/// message id (one line, empty for none) followed by request header lines, a line
/// `%%`, and the body.
///
/// A mapping that compiles maps the body into at most [`MAX_EVENTS`] events or says
/// why not with one of its error codes, and every event it maps reads back equal
/// from the JSON the store keeps of it (stored data is input too: an event that did
/// not would become a corrupt job).
pub fn mapping(data: &[u8]) {
    let [settings, head, body] = sections(data);
    let Some(config) = std::str::from_utf8(settings).ok().and_then(source) else {
        return;
    };
    let mapping = match Mapping::from_config(&config) {
        Ok(m) => m,
        Err(e) => {
            assert!(
                e.to_string().starts_with("sources."),
                "a mapping error must name its key: {e}"
            );
            return;
        }
    };
    let _ = mapping.describe();
    let _ = mapping.describe_event_id(Some(("webhook-id", true)));
    let (message_id, lines) = first_line(head);
    let message_id = std::str::from_utf8(message_id)
        .ok()
        .filter(|m| !m.is_empty());
    let headers = headers(lines);
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let _ = mapping.is_ping(body, content_type);
    let body_sha256 = sha256_hex(body);
    let input = Input {
        body,
        content_type,
        headers: &headers,
        message_id,
        body_sha256: &body_sha256,
    };
    match mapping.map(&input) {
        Ok(events) => {
            assert!(
                !events.is_empty() && events.len() <= MAX_EVENTS,
                "{} events from one request",
                events.len()
            );
            for event in &events {
                stored_and_read_back(event);
            }
        }
        Err(e) => {
            assert!(
                [
                    "invalid_json",
                    "invalid_form",
                    "unmappable",
                    "invalid_event"
                ]
                .contains(&e.code()),
                "unknown error code {}",
                e.code()
            );
            let _ = e.to_string();
        }
    }
}

/// The store keeps an event as `serde_json::to_string(&event)` and reads it back
/// with `OffboardingEvent::from_json(.., None)`.
fn stored_and_read_back(event: &OffboardingEvent) {
    let stored = serde_json::to_string(event).unwrap_or_else(|e| panic!("{event:?}: {e}"));
    let json = serde_json::from_str(&stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
    match OffboardingEvent::from_json(&json, None) {
        Ok(read) => assert_eq!(&read, event, "{stored} reads back different"),
        Err(e) => panic!("a mapped event does not read back from the store: {e}\n{stored}"),
    }
}

fn sha256_hex(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body))
}
