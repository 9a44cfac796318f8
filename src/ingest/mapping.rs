//! Payload → canonical [`OffboardingEvent`]s.
//!
//! A source whose payload already has the canonical shape needs no mapping. Any
//! other shape is mapped with `[sources.map]`: canonical dotted field → JSON Pointer
//! into the payload. The event id is the scheme's message id when it has one, else
//! the payload's `id` (or its mapped pointer), else the SHA-256 of the body.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::domain::{EventError, OffboardingEvent};

/// Why a body cannot become an event (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Not JSON at all.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not a valid canonical event after mapping.
    #[error("{0}")]
    Invalid(#[from] EventError),
}

impl MapError {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "invalid_json",
            Self::Invalid(_) => "invalid_event",
        }
    }
}

/// Maps a raw body onto canonical events (one per event the body carries).
pub fn map_body(
    body: &[u8],
    map: &BTreeMap<String, String>,
    message_id: Option<&str>,
    body_sha256: &str,
) -> Result<Vec<OffboardingEvent>, MapError> {
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| MapError::NotJson(e.to_string()))?;
    let mut canonical = if map.is_empty() {
        payload
    } else {
        apply_pointers(&payload, map)
    };
    if let (Some(id), Some(obj)) = (message_id, canonical.as_object_mut()) {
        obj.insert("id".into(), Value::String(id.to_owned()));
    }
    Ok(vec![OffboardingEvent::from_json(
        &canonical,
        Some(body_sha256),
    )?])
}

/// Builds the canonical object from pointers; keys absent in the payload stay absent.
pub fn apply_pointers(payload: &Value, map: &BTreeMap<String, String>) -> Value {
    let mut out = match payload {
        Value::Object(o) => Value::Object(o.clone()),
        _ => Value::Object(Map::new()),
    };
    for (field, pointer) in map {
        if let Some(v) = payload.pointer(pointer) {
            set_path(&mut out, field, v.clone());
        }
    }
    out
}

fn set_path(root: &mut Value, dotted: &str, value: Value) {
    let mut cur = root;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(obj) = cur else { return };
        if parts.peek().is_none() {
            obj.insert(part.to_owned(), value);
            return;
        }
        cur = obj
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_wins_and_pointers_map() {
        let body = br#"{"id":"p1","type":"employee.terminated","who":{"mail":"a@b.co"}}"#;
        let map = BTreeMap::from([("employee.email".to_owned(), "/who/mail".to_owned())]);
        let ev = map_body(body, &map, Some("msg_9"), "sha").unwrap();
        assert_eq!(ev[0].id, "msg_9");
        assert_eq!(ev[0].employee.email.as_str(), "a@b.co");
        let ev = map_body(body, &map, None, "sha").unwrap();
        assert_eq!(ev[0].id, "p1");
    }
}
