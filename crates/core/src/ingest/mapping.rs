//! Payload → canonical [`OffboardingEvent`]s, driven by configuration so a new HR
//! system needs no code.
//!
//! A [`Mapping`] is compiled once from a source's config and applied per request:
//! 1. parse the body: JSON, or a form (`format`, or by Content-Type; see [`super::FormError`]);
//! 2. `each`: an array pointer, one event per element (pointers then read the element);
//! 3. `[sources.map]`: canonical dotted field ← JSON Pointer (or `"{/first} {/last}"`);
//!    without a map the payload must already be canonical;
//! 4. `[sources.values]`: per field, payload value → canonical value (`"*"` = any other);
//! 5. `[sources.defaults]`: constants for fields still empty;
//! 6. the event id (DESIGN.md §4): `event_id` when configured (`header:NAME`, a
//!    pointer, `body_sha256`), else the scheme's message id, else the payload's
//!    (mapped) `id`, else the body's SHA-256. Array elements get distinct ids:
//!    `<message id or body hash>:<index>`, or their own mapped `id`.
//!
//! When the result is not a valid event the error names the canonical field and,
//! if it was mapped, the pointer that was absent, so a 400 says exactly why.
//! A configured [`Ping`] recognises a sender's set-up ping, which creates nothing.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::form;
use crate::{
    config::SourceConfig,
    domain::{EventError, OffboardingEvent, json_kind},
};

/// Canonical fields a mapping may set (DESIGN.md §5).
pub const CANONICAL_FIELDS: &[&str] = &[
    "id",
    "type",
    "occurred_at",
    "employee.id",
    "employee.email",
    "employee.name",
    "employee.department",
    "employee.country",
    "employee.manager_email",
    "termination.effective_at",
    "termination.kind",
    "termination.rehire_eligible",
    "termination.reason",
    "legal_hold",
];

/// Most events one request may carry.
pub const MAX_EVENTS: usize = 1000;

/// Why a body cannot become an event (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Not JSON at all.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// A form body that cannot be read.
    #[error("body is not a usable form: {0}")]
    BadForm(#[from] form::FormError),
    /// The payload's shape doesn't fit the source's mapping (e.g. `each` is no array).
    #[error("{0}")]
    Unmappable(String),
    /// Not a valid canonical event after mapping.
    #[error("{}{error}{}", at_prefix(.at.as_deref()), .hint.as_deref().unwrap_or_default())]
    Invalid {
        /// Which array element, when `each` is used.
        at: Option<String>,
        /// The field and problem.
        error: EventError,
        /// Where the field was mapped from, when that pointer was absent.
        hint: Option<String>,
    },
}

fn at_prefix(at: Option<&str>) -> String {
    at.map(|a| format!("{a}: ")).unwrap_or_default()
}

impl MapError {
    /// The 400's JSON `error.code` (`invalid_json`, `invalid_form`, `unmappable`,
    /// `invalid_event`); part of the HTTP contract, so never renamed.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "invalid_json",
            Self::BadForm(_) => "invalid_form",
            Self::Unmappable(_) => "unmappable",
            Self::Invalid { .. } => "invalid_event",
        }
    }
}

/// Why a source's mapping keys (`[sources.map]`, `values`, `defaults`, `each`,
/// `event_id`, `format`, `ping`) are refused at start-up and by `offboard sources`.
/// Every variant names the config key, so the message says what to edit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingConfigError {
    /// A key names a field that is not one of [`CANONICAL_FIELDS`].
    #[error("{key}: unknown canonical field {field:?} (expected one of {})", CANONICAL_FIELDS.join(", "))]
    UnknownField {
        /// The table: `sources.map`, `sources.values` or `sources.defaults`.
        key: &'static str,
        /// The field as written.
        field: String,
    },
    /// A value that must be a JSON Pointer does not start with `/`.
    #[error("{key}: {value:?} is not a JSON Pointer (start it with /)")]
    NotPointer {
        /// The config key, e.g. `sources.each`.
        key: &'static str,
        /// The value as written.
        value: String,
    },
    /// A `[sources.map]` value is neither a pointer nor a `{/pointer}` template.
    #[error(
        "{key}: {text:?} is neither a JSON Pointer (start it with /) nor a template like \"{{/first}} {{/last}}\""
    )]
    NotPointerOrTemplate {
        /// `sources.map."<field>"`.
        key: String,
        /// The value as written.
        text: String,
    },
    /// A `{/pointer}` template opens a hole it never closes.
    #[error("{key}: unclosed {{ in {text:?}")]
    UnclosedTemplate {
        /// `sources.map."<field>"`.
        key: String,
        /// The template as written.
        text: String,
    },
    /// A value map entry or a default is an array, object or null.
    #[error("{key}: {value} is not a string, number or boolean")]
    NotScalar {
        /// `sources.values."<field>"."<from>"` or `sources.defaults."<field>"`.
        key: String,
        /// The offending value.
        value: Value,
    },
    /// `event_id = "header:NAME"` with a NAME no HTTP header can have.
    #[error("sources.event_id: {name:?} is not a valid HTTP header name")]
    BadHeaderName {
        /// The name after `header:`, trimmed.
        name: String,
    },
    /// An enumerated key has a value outside its choices.
    #[error("{key}: {value:?} is not understood (expected {expected})")]
    NotUnderstood {
        /// `sources.event_id` or `sources.format`.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The accepted forms, for the message.
        expected: &'static str,
    },
    /// Both `event_id` and `map.id` say where the event id comes from.
    #[error("sources.event_id and sources.map.id both say where the event id comes from; keep one")]
    EventIdTwice,
    /// `[sources.ping]` has neither `body` nor `pointer`, so it matches nothing.
    #[error("sources.ping: set body (the whole body of a ping) or pointer (+ equals)")]
    PingMatchesNothing,
    /// `[sources.ping] equals` without the `pointer` it compares.
    #[error("sources.ping.equals: needs sources.ping.pointer")]
    PingEqualsWithoutPointer,
}

impl From<EventError> for MapError {
    fn from(error: EventError) -> Self {
        Self::Invalid {
            at: None,
            error,
            hint: None,
        }
    }
}

/// Where a mapped field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FieldSource {
    /// A JSON Pointer.
    Pointer(String),
    /// Text with `{/pointer}` holes; absent when any hole is.
    Template(Vec<TemplatePart>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Text(String),
    Pointer(String),
}

impl FieldSource {
    fn parse(key: &str, text: &str) -> Result<Self, MappingConfigError> {
        if text.is_empty() || text.starts_with('/') {
            return Ok(Self::Pointer(text.to_owned()));
        }
        if !text.contains("{/") {
            return Err(MappingConfigError::NotPointerOrTemplate {
                key: key.to_owned(),
                text: text.to_owned(),
            });
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{/") {
            if open > 0 {
                parts.push(TemplatePart::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| MappingConfigError::UnclosedTemplate {
                    key: key.to_owned(),
                    text: text.to_owned(),
                })?;
            parts.push(TemplatePart::Pointer(after[..close].to_owned()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Text(rest.to_owned()));
        }
        Ok(Self::Template(parts))
    }

    fn resolve(&self, record: &Value) -> Option<Value> {
        match self {
            Self::Pointer(p) => record.pointer(p).filter(|v| !v.is_null()).cloned(),
            Self::Template(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        TemplatePart::Text(t) => out.push_str(t),
                        TemplatePart::Pointer(p) => out.push_str(&scalar_text(record.pointer(p)?)?),
                    }
                }
                Some(Value::String(out))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Pointer(p) => p.clone(),
            Self::Template(parts) => parts
                .iter()
                .map(|p| match p {
                    TemplatePart::Text(t) => t.clone(),
                    TemplatePart::Pointer(p) => format!("{{{p}}}"),
                })
                .collect(),
        }
    }
}

/// Where the event id comes from (`event_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventIdFrom {
    /// DESIGN.md §4: message id, else payload id, else body hash.
    Default,
    /// A request header.
    Header(String),
    /// A JSON Pointer (relative to the element with `each`).
    Pointer(String),
    /// The body's SHA-256.
    BodySha256,
}

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// Form when Content-Type says `application/x-www-form-urlencoded`, else JSON.
    Auto,
    /// Always JSON.
    Json,
    /// Always a form.
    Form,
}

/// Recognises a sender's set-up ping (`[sources.ping]`), answered 200
/// `{"ping":true}` with nothing stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Ping {
    body: Option<String>,
    pointer: Option<String>,
    equals: Option<Value>,
    /// Whether the ping must be correctly signed. `false` makes the receiver look
    /// for the ping before the signature check, the one place an unverified body is
    /// parsed; it is opt-in per source for senders whose first request cannot be
    /// signed.
    pub signed: bool,
}

impl Ping {
    /// Whether the whole body, trimmed, is the configured `body` (also when sent
    /// as a JSON string). Needs no parse of the payload.
    pub fn matches_body(&self, body: &[u8]) -> bool {
        let Some(expected) = &self.body else {
            return false;
        };
        let trimmed = body.trim_ascii();
        trimmed == expected.as_bytes()
            || serde_json::from_slice::<String>(trimmed).is_ok_and(|s| &s == expected)
    }

    /// Whether the parsed payload has the configured `pointer` (equal to `equals`
    /// when that is set).
    pub fn matches_payload(&self, payload: &Value) -> bool {
        let Some(pointer) = &self.pointer else {
            return false;
        };
        match (payload.pointer(pointer), &self.equals) {
            (Some(found), Some(want)) => found == want,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// One request's inputs to the mapping.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The raw body.
    pub body: &'a [u8],
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// Request headers (for `event_id = "header:…"`).
    pub headers: &'a HeaderMap,
    /// The verified scheme's message id.
    pub message_id: Option<&'a str>,
    /// Hex SHA-256 of the body.
    pub body_sha256: &'a str,
}

/// A source's compiled mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    fields: FieldMap,
    values: BTreeMap<String, BTreeMap<String, Value>>,
    defaults: BTreeMap<String, Value>,
    each: Option<String>,
    event_id: EventIdFrom,
    format: BodyFormat,
    form_field: String,
    ping: Option<Ping>,
}

fn check_field(key: &'static str, field: &str) -> Result<(), MappingConfigError> {
    if CANONICAL_FIELDS.contains(&field) {
        Ok(())
    } else {
        Err(MappingConfigError::UnknownField {
            key,
            field: field.to_owned(),
        })
    }
}

fn check_pointer(key: &'static str, p: &str) -> Result<(), MappingConfigError> {
    if p.is_empty() || p.starts_with('/') {
        Ok(())
    } else {
        Err(MappingConfigError::NotPointer {
            key,
            value: p.to_owned(),
        })
    }
}

/// A `map` table on its own: canonical dotted field ← JSON Pointer or `{/pointer}`
/// template, compiled once. `[sources.map]` and `[scim.map]` are both this, so the
/// two tables accept exactly the same keys and values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMap(Vec<(String, FieldSource)>);

impl FieldMap {
    /// Compiles `table`, the config table `key` (`sources.map`, `scim.map`); errors
    /// name the entry.
    pub fn compile(
        key: &'static str,
        table: &BTreeMap<String, String>,
    ) -> Result<Self, MappingConfigError> {
        let mut fields = Vec::with_capacity(table.len());
        for (field, text) in table {
            check_field(key, field)?;
            fields.push((
                field.clone(),
                FieldSource::parse(&format!("{key}.{field:?}"), text)?,
            ));
        }
        Ok(Self(fields))
    }

    /// Sets every mapped field of `canonical` that `record` has a value for; a
    /// field whose source is absent keeps what `canonical` held.
    pub fn overlay(&self, record: &Value, canonical: &mut Value) {
        for (field, source) in &self.0 {
            if let Some(v) = source.resolve(record) {
                set_path(canonical, field, v);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> std::slice::Iter<'_, (String, FieldSource)> {
        self.0.iter()
    }
}

impl Mapping {
    /// Compiles and checks a source's mapping keys; errors name the key.
    pub fn from_config(source: &SourceConfig) -> Result<Self, MappingConfigError> {
        let fields = FieldMap::compile("sources.map", &source.map)?;
        for (field, table) in &source.values {
            check_field("sources.values", field)?;
            if let Some((k, v)) = table.iter().find(|(_, v)| !is_scalar(v)) {
                return Err(MappingConfigError::NotScalar {
                    key: format!("sources.values.{field:?}.{k:?}"),
                    value: v.clone(),
                });
            }
        }
        for (field, v) in &source.defaults {
            check_field("sources.defaults", field)?;
            if !is_scalar(v) {
                return Err(MappingConfigError::NotScalar {
                    key: format!("sources.defaults.{field:?}"),
                    value: v.clone(),
                });
            }
        }
        if let Some(each) = &source.each {
            check_pointer("sources.each", each)?;
        }
        let event_id = match source.event_id.as_deref() {
            None => EventIdFrom::Default,
            Some("body_sha256") => EventIdFrom::BodySha256,
            Some(p) if p.starts_with('/') => EventIdFrom::Pointer(p.to_owned()),
            Some(h) if h.starts_with("header:") => {
                let name = h["header:".len()..].trim();
                axum::http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    MappingConfigError::BadHeaderName {
                        name: name.to_owned(),
                    }
                })?;
                EventIdFrom::Header(name.to_owned())
            }
            Some(other) => {
                return Err(MappingConfigError::NotUnderstood {
                    key: "sources.event_id",
                    value: other.to_owned(),
                    expected: "\"header:NAME\", a JSON Pointer such as \"/uuid\", or \"body_sha256\"",
                });
            }
        };
        if event_id != EventIdFrom::Default && source.map.contains_key("id") {
            return Err(MappingConfigError::EventIdTwice);
        }
        let format = match source.format.as_str() {
            "auto" => BodyFormat::Auto,
            "json" => BodyFormat::Json,
            "form" => BodyFormat::Form,
            other => {
                return Err(MappingConfigError::NotUnderstood {
                    key: "sources.format",
                    value: other.to_owned(),
                    expected: "auto, json or form",
                });
            }
        };
        let ping = match &source.ping {
            None => None,
            Some(p) => {
                if p.body.is_none() && p.pointer.is_none() {
                    return Err(MappingConfigError::PingMatchesNothing);
                }
                if p.equals.is_some() && p.pointer.is_none() {
                    return Err(MappingConfigError::PingEqualsWithoutPointer);
                }
                if let Some(ptr) = &p.pointer {
                    check_pointer("sources.ping.pointer", ptr)?;
                }
                Some(Ping {
                    body: p.body.clone(),
                    pointer: p.pointer.clone(),
                    equals: p.equals.clone(),
                    signed: p.signed,
                })
            }
        };
        let form_field = source
            .form_field
            .clone()
            .unwrap_or_else(|| "payload".into());
        Ok(Self {
            fields,
            values: source.values.clone(),
            defaults: source.defaults.clone(),
            each: source.each.clone(),
            event_id,
            format,
            form_field,
            ping,
        })
    }

    /// The `[sources.ping]` matcher, if the source has one.
    pub fn ping(&self) -> Option<&Ping> {
        self.ping.as_ref()
    }

    /// Where the event id comes from.
    pub fn event_id(&self) -> &EventIdFrom {
        &self.event_id
    }

    /// Whether `body` is the sender's set-up ping, by its raw bytes or, failing
    /// that, by parsing it. The receiver calls this before the signature check only
    /// for `signed = false` pings (a body that cannot be signed yet, such as Gusto's
    /// verification token); otherwise it uses [`Ping::matches_body`] and
    /// [`Ping::matches_payload`] after verification, so the body is parsed once.
    pub fn is_ping(&self, body: &[u8], content_type: Option<&str>) -> bool {
        let Some(ping) = &self.ping else {
            return false;
        };
        ping.matches_body(body)
            || (ping.pointer.is_some()
                && self
                    .parse(body, content_type)
                    .is_ok_and(|payload| ping.matches_payload(&payload)))
    }

    /// Parses the body by the configured format / Content-Type.
    pub fn parse(&self, body: &[u8], content_type: Option<&str>) -> Result<Value, MapError> {
        let form = match self.format {
            BodyFormat::Json => false,
            BodyFormat::Form => true,
            BodyFormat::Auto => content_type.is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            }),
        };
        if form {
            Ok(form::parse(body, &self.form_field)?)
        } else {
            serde_json::from_slice(body).map_err(|e| MapError::NotJson(e.to_string()))
        }
    }

    /// Maps a request's body onto canonical events (one per event it carries).
    pub fn map(&self, input: &Input<'_>) -> Result<Vec<OffboardingEvent>, MapError> {
        let payload = self.parse(input.body, input.content_type)?;
        self.map_parsed(payload, input)
    }

    /// [`Self::map`] for a body the caller already parsed with [`Self::parse`] (the
    /// receiver parses once, after verification, to check for a ping and to map).
    pub fn map_parsed(
        &self,
        payload: Value,
        input: &Input<'_>,
    ) -> Result<Vec<OffboardingEvent>, MapError> {
        let header_id = match &self.event_id {
            EventIdFrom::Header(h) => Some(
                input
                    .headers
                    .get(h.as_str())
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        MapError::Unmappable(format!(
                            "id: the event id comes from header {h}, which is absent or not visible ASCII"
                        ))
                    })?,
            ),
            _ => None,
        };
        let Some(each) = &self.each else {
            let id = match &self.event_id {
                EventIdFrom::Default => input.message_id.map(str::to_owned),
                EventIdFrom::Header(_) => header_id.map(str::to_owned),
                EventIdFrom::BodySha256 => Some(input.body_sha256.to_owned()),
                EventIdFrom::Pointer(p) => Some(pointer_id(&payload, p, None)?),
            };
            let (mut canonical, absent) = self.map_owned_record(payload);
            set_id(&mut canonical, id);
            return OffboardingEvent::from_json(&canonical, Some(input.body_sha256))
                .map(|e| vec![e])
                .map_err(|error| invalid(None, error, &absent));
        };
        let items = match payload.pointer(each) {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(MapError::Unmappable(format!(
                    "each: {each:?} is {}, not an array",
                    json_kind(other)
                )));
            }
            None => {
                return Err(MapError::Unmappable(format!(
                    "each: {each:?} is absent in the payload"
                )));
            }
        };
        if items.is_empty() {
            return Err(MapError::Unmappable(format!(
                "each: {each:?} is an empty array: no event to take"
            )));
        }
        if items.len() > MAX_EVENTS {
            return Err(MapError::Unmappable(format!(
                "each: {each:?} has {} elements; at most {MAX_EVENTS} per request",
                items.len()
            )));
        }
        let base = input.message_id.unwrap_or(input.body_sha256);
        let mut events = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("{each}/{i}");
            let (mut canonical, absent) = self.map_record(item, true);
            let id = match &self.event_id {
                EventIdFrom::Default => {
                    let mapped = canonical.get("id").is_some_and(|v| !v.is_null());
                    match input.message_id {
                        Some(m) => Some(format!("{m}:{i}")),
                        None if mapped => None,
                        None => Some(format!("{base}:{i}")),
                    }
                }
                EventIdFrom::Header(_) => header_id.map(|h| format!("{h}:{i}")),
                EventIdFrom::BodySha256 => Some(format!("{}:{i}", input.body_sha256)),
                EventIdFrom::Pointer(p) => Some(pointer_id(item, p, Some(&at))?),
            };
            set_id(&mut canonical, id);
            let event = OffboardingEvent::from_json(&canonical, None)
                .map_err(|error| invalid(Some(at), error, &absent))?;
            events.push(event);
        }
        Ok(events)
    }

    /// [`Self::map_record`] for a whole payload the caller no longer needs: without
    /// pointers to read from the original it is mapped in place, not copied (the
    /// common case of a sender that already posts canonical events).
    fn map_owned_record(&self, record: Value) -> (Value, Vec<(String, String)>) {
        if self.fields.is_empty() {
            self.finish_record(record, &Value::Null, false)
        } else {
            self.map_record(&record, false)
        }
    }

    /// Applies pointers, value maps and defaults to one record. Returns the
    /// canonical JSON and the mapped fields whose source was absent.
    fn map_record(&self, record: &Value, element: bool) -> (Value, Vec<(String, String)>) {
        self.finish_record(record.clone(), record, element)
    }

    /// Maps `out`, a copy of `record` (pointers are resolved against `record`).
    fn finish_record(
        &self,
        mut out: Value,
        record: &Value,
        element: bool,
    ) -> (Value, Vec<(String, String)>) {
        // Not an object: left as is, so validation says "expected a JSON object".
        if !out.is_object() {
            return (out, Vec::new());
        }
        // An element's own `id` is usually a record id (BambooHR's employee id), not
        // an event id: only an explicit mapping makes it one.
        if element && let Value::Object(o) = &mut out {
            o.remove("id");
        }
        let mut absent = Vec::new();
        for (field, source) in self.fields.iter() {
            match source.resolve(record) {
                Some(v) => set_path(&mut out, field, v),
                None => {
                    remove_path(&mut out, field);
                    absent.push((field.clone(), source.describe()));
                }
            }
        }
        for (field, table) in &self.values {
            let Some(key) = get_path(&out, field).and_then(scalar_text) else {
                continue;
            };
            let mapped = table
                .get(&key)
                .or_else(|| {
                    table
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&key))
                        .map(|(_, v)| v)
                })
                .or_else(|| table.get("*"));
            if let Some(v) = mapped {
                set_path(&mut out, field, v.clone());
            }
        }
        for (field, v) in &self.defaults {
            if get_path(&out, field).is_none_or(Value::is_null) {
                set_path(&mut out, field, v.clone());
            }
        }
        (out, absent)
    }

    /// One line per mapping rule (body format, `each`, pointers, values, defaults,
    /// ping), as `offboard sources` prints them.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.push(format!(
            "body: {}",
            match self.format {
                BodyFormat::Auto => format!(
                    "JSON, or a form when Content-Type is application/x-www-form-urlencoded (JSON in field {:?}, else the fields)",
                    self.form_field
                ),
                BodyFormat::Json => "JSON".into(),
                BodyFormat::Form => format!(
                    "form (JSON in field {:?}, else the fields)",
                    self.form_field
                ),
            }
        ));
        if let Some(each) = &self.each {
            lines.push(format!(
                "each: one event per element of {each} (pointers relative to the element)"
            ));
        }
        if self.fields.is_empty() {
            lines.push("map: none (the payload is a canonical event)".into());
        }
        for (field, source) in self.fields.iter() {
            let mut line = format!("map: {field} ← {}", source.describe());
            if let Some(table) = self.values.get(field) {
                line.push_str(&format!(" (values: {})", describe_table(table)));
            }
            lines.push(line);
        }
        for (field, table) in &self.values {
            if !self.fields.iter().any(|(f, _)| f == field) {
                lines.push(format!("values: {field}: {}", describe_table(table)));
            }
        }
        for (field, v) in &self.defaults {
            lines.push(format!("default: {field} = {v}"));
        }
        if let Some(ping) = &self.ping {
            let mut what = Vec::new();
            if let Some(b) = &ping.body {
                what.push(format!("body {b:?}"));
            }
            if let Some(p) = &ping.pointer {
                what.push(match &ping.equals {
                    Some(v) => format!("{p} = {v}"),
                    None => format!("{p} present"),
                });
            }
            lines.push(format!(
                "ping: {} → 200 {{\"ping\":true}}, no job{}",
                what.join(" or "),
                if ping.signed {
                    " (must be signed)"
                } else {
                    " (accepted unsigned)"
                }
            ));
        }
        lines
    }

    /// How the event id is chosen, for `offboard sources`.
    pub fn describe_event_id(&self, message_id: Option<(&str, bool)>) -> String {
        let index = if self.each.is_some() { ":<index>" } else { "" };
        match &self.event_id {
            EventIdFrom::Header(h) => format!("header {h}{index} (not signed)"),
            EventIdFrom::Pointer(p) => format!("payload {p}"),
            EventIdFrom::BodySha256 => format!("body SHA-256{index}"),
            EventIdFrom::Default => {
                let mut chain = Vec::new();
                match message_id {
                    Some((h, true)) => chain.push(format!("{h}{index} (signed)")),
                    Some((h, false)) => chain.push(format!(
                        "{h}{index} (NOT signed: a replayed body with a new {h} is not caught; set event_id = \"body_sha256\" to dedupe on content)"
                    )),
                    None => {}
                }
                match self.fields.iter().find(|(f, _)| f == "id") {
                    Some((_, s)) => chain.push(format!("payload {}", s.describe())),
                    None if self.each.is_none() => chain.push("payload id".into()),
                    None => {}
                }
                chain.push(format!("body SHA-256{index}"));
                chain.join(", else ")
            }
        }
    }
}

fn describe_table(table: &BTreeMap<String, Value>) -> String {
    table
        .iter()
        .map(|(k, v)| format!("{k} → {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn invalid(at: Option<String>, mut error: EventError, absent: &[(String, String)]) -> MapError {
    // "employee: missing" when nothing under employee was found: name the mapped
    // field whose pointer came up empty instead.
    let found = absent.iter().find(|(field, _)| {
        *field == error.field
            || (field.starts_with(&error.field) && field[error.field.len()..].starts_with('.'))
    });
    let hint = found.map(|(field, src)| {
        if *field != error.field {
            error = EventError {
                field: field.clone(),
                problem: "missing".into(),
            };
        }
        format!(" (mapped from {src}, which is absent in the payload)")
    });
    MapError::Invalid { at, error, hint }
}

fn pointer_id(record: &Value, pointer: &str, at: Option<&str>) -> Result<String, MapError> {
    record
        .pointer(pointer)
        .and_then(scalar_text)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            let prefix = at.map(|a| format!("{a}: ")).unwrap_or_default();
            MapError::Unmappable(format!(
                "{prefix}id: the event id comes from {pointer}, which is absent or not a string or number"
            ))
        })
}

fn set_id(canonical: &mut Value, id: Option<String>) {
    if let (Some(id), Some(obj)) = (id, canonical.as_object_mut()) {
        obj.insert("id".into(), Value::String(id));
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// A scalar as text (value-map keys, templates, ids).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get_path<'a>(root: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(root, |cur, part| cur.get(part))
}

fn remove_path(root: &mut Value, dotted: &str) {
    let mut cur = root;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let Value::Object(obj) = cur else { return };
        if parts.peek().is_none() {
            obj.remove(part);
            return;
        }
        let Some(next) = obj.get_mut(part) else {
            return;
        };
        cur = next;
    }
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
    use crate::config::Config;

    fn mapping(toml_text: &str) -> Mapping {
        let c = Config::from_toml(&format!(
            "[[sources]]\nname = \"s\"\nscheme = \"github\"\n{toml_text}"
        ))
        .unwrap();
        Mapping::from_config(&c.sources[0]).unwrap()
    }

    fn map(
        m: &Mapping,
        body: &[u8],
        message_id: Option<&str>,
    ) -> Result<Vec<OffboardingEvent>, MapError> {
        let headers = HeaderMap::new();
        m.map(&Input {
            body,
            content_type: None,
            headers: &headers,
            message_id,
            body_sha256: "sha",
        })
    }

    #[test]
    fn message_id_wins_and_pointers_map() {
        let m = mapping("[sources.map]\n\"employee.email\" = \"/who/mail\"");
        let body = br#"{"id":"p1","type":"employee.terminated","who":{"mail":"a@b.co"}}"#;
        let ev = map(&m, body, Some("msg_9")).unwrap();
        assert_eq!(ev[0].id, "msg_9");
        assert_eq!(ev[0].employee.email.as_str(), "a@b.co");
        let ev = map(&m, body, None).unwrap();
        assert_eq!(ev[0].id, "p1");
        let ev = map(
            &m,
            br#"{"type":"employee.terminated","who":{"mail":"a@b.co"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(ev[0].id, "sha");
    }

    #[test]
    fn missing_pointer_is_named() {
        let m = mapping("[sources.map]\n\"employee.email\" = \"/who/mail\"");
        let err = map(
            &m,
            br#"{"id":"1","type":"employee.terminated","who":{}}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_event");
        assert_eq!(
            err.to_string(),
            "employee.email: missing (mapped from /who/mail, which is absent in the payload)"
        );
    }

    #[test]
    fn values_defaults_templates_and_each() {
        let m = mapping(
            r#"each = "/employees"
[sources.map]
"employee.email" = "/fields/workEmail"
"employee.name" = "{/fields/firstName} {/fields/lastName}"
"termination.kind" = "/fields/terminationType"
"termination.rehire_eligible" = "/fields/eligibleForRehire"
[sources.values."termination.kind"]
Voluntary = "voluntary"
"*" = "other"
[sources.values."termination.rehire_eligible"]
Yes = true
No = false
[sources.defaults]
type = "employee.terminated"
"#,
        );
        let body = br#"{"employees":[
            {"id":"1001","fields":{"workEmail":"a@b.co","firstName":"A","lastName":"B","terminationType":"VOLUNTARY","eligibleForRehire":"yes"}},
            {"id":"1002","fields":{"workEmail":"c@d.co","firstName":"C","terminationType":"Fired","eligibleForRehire":"No"}}]}"#;
        let ev = map(&m, body, None).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!((ev[0].id.as_str(), ev[1].id.as_str()), ("sha:0", "sha:1"));
        assert_eq!(ev[0].employee.name.as_deref(), Some("A B"));
        assert_eq!(ev[1].employee.name, None);
        let t0 = ev[0].termination.clone().unwrap();
        let t1 = ev[1].termination.clone().unwrap();
        assert_eq!(
            (t0.kind.unwrap().as_str(), t0.rehire_eligible),
            ("voluntary", Some(true))
        );
        assert_eq!(
            (t1.kind.unwrap().as_str(), t1.rehire_eligible),
            ("other", Some(false))
        );
        let ev = map(&m, body, Some("m")).unwrap();
        assert_eq!(ev[1].id, "m:1");

        let err = map(
            &m,
            br#"{"employees":[{"fields":{"workEmail":"a@b.co"}},{"fields":{}}]}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/employees/1: employee.email: missing (mapped from /fields/workEmail, which is absent in the payload)"
        );
        for (body, code) in [
            (&br#"{"employees":{}}"#[..], "unmappable"),
            (br#"{"employees":[]}"#, "unmappable"),
            (br#"{}"#, "unmappable"),
            (br#"{"#, "invalid_json"),
        ] {
            assert_eq!(map(&m, body, None).unwrap_err().code(), code);
        }
    }

    #[test]
    fn event_id_sources() {
        let m = mapping(
            "event_id = \"/uuid\"\n[sources.defaults]\ntype = \"employee.terminated\"\n\"employee.email\" = \"a@b.co\"",
        );
        assert_eq!(
            map(&m, br#"{"uuid":"u-1"}"#, Some("msg")).unwrap()[0].id,
            "u-1"
        );
        assert_eq!(map(&m, br#"{"uuid":7}"#, None).unwrap()[0].id, "7");
        assert_eq!(map(&m, br#"{}"#, None).unwrap_err().code(), "unmappable");
        let m = mapping(
            "event_id = \"body_sha256\"\n[sources.defaults]\ntype = \"employee.terminated\"\n\"employee.email\" = \"a@b.co\"",
        );
        assert_eq!(map(&m, br#"{"id":"x"}"#, Some("msg")).unwrap()[0].id, "sha");
        let m = mapping(
            "event_id = \"header:X-Request-Id\"\n[sources.defaults]\ntype = \"employee.terminated\"\n\"employee.email\" = \"a@b.co\"",
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "r-1".parse().unwrap());
        let ev = m
            .map(&Input {
                body: b"{}",
                content_type: None,
                headers: &headers,
                message_id: None,
                body_sha256: "sha",
            })
            .unwrap();
        assert_eq!(ev[0].id, "r-1");
        assert_eq!(map(&m, b"{}", None).unwrap_err().code(), "unmappable");
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = |extra: &str| {
            let c = Config::from_toml(&format!(
                "[[sources]]\nname = \"s\"\nscheme = \"github\"\n{extra}"
            ))
            .unwrap();
            Mapping::from_config(&c.sources[0]).unwrap_err().to_string()
        };
        assert!(
            err("[sources.map]\n\"employe.email\" = \"/x\"")
                .contains("unknown canonical field \"employe.email\"")
        );
        assert!(
            err("[sources.map]\n\"employee.email\" = \"x\"")
                .contains("sources.map.\"employee.email\"")
        );
        assert!(err("each = \"employees\"").starts_with("sources.each"));
        assert!(err("event_id = \"uuid\"").starts_with("sources.event_id"));
        assert!(err("format = \"xml\"").starts_with("sources.format"));
        assert!(err("[sources.ping]\nsigned = false").starts_with("sources.ping"));
        assert!(err("[sources.defaults]\ntype = [1]").starts_with("sources.defaults"));
        assert!(err("event_id = \"/a\"\n[sources.map]\nid = \"/b\"").contains("keep one"));
    }

    #[test]
    fn ping_matchers() {
        let m = mapping(
            "[sources.ping]\nbody = \"Ping test\"\npointer = \"/text\"\nequals = \"Ping test\"",
        );
        assert!(m.is_ping(b"Ping test", None));
        assert!(m.is_ping(b" \"Ping test\"\n", None));
        assert!(m.is_ping(br#"{"text":"Ping test"}"#, None));
        assert!(!m.is_ping(br#"{"text":"Ping"}"#, None));
        assert!(!m.is_ping(b"\xff", None));
        let m = mapping("");
        assert!(!m.is_ping(b"Ping test", None));
    }

    #[test]
    fn ping_halves_agree_with_is_ping() {
        // The receiver splits is_ping into a raw check and a check on the one parse.
        let m = mapping(
            "[sources.ping]\nbody = \"Ping test\"\npointer = \"/text\"\nequals = \"Ping test\"",
        );
        let ping = m.ping().unwrap();
        for body in [
            &b"Ping test"[..],
            b" \"Ping test\"\n",
            br#"{"text":"Ping test"}"#,
            br#"{"text":"Ping"}"#,
            b"\xff",
        ] {
            let split = ping.matches_body(body)
                || m.parse(body, None).is_ok_and(|v| ping.matches_payload(&v));
            assert_eq!(split, m.is_ping(body, None), "{body:?}");
        }
        assert!(
            !ping.matches_body(br#"{"text":"Ping test"}"#),
            "no parse in matches_body"
        );
    }

    #[test]
    fn form_bodies_by_content_type() {
        let m = mapping(
            "[sources.map]\n\"employee.email\" = \"/data/email\"\n[sources.defaults]\ntype = \"employee.terminated\"",
        );
        let headers = HeaderMap::new();
        let input = |ct| Input {
            body: b"id=f1&data[email]=a%40b.co",
            content_type: ct,
            headers: &headers,
            message_id: None,
            body_sha256: "sha",
        };
        let ev = m
            .map(&input(Some(
                "application/x-www-form-urlencoded; charset=utf-8",
            )))
            .unwrap();
        assert_eq!(
            (ev[0].id.as_str(), ev[0].employee.email.as_str()),
            ("f1", "a@b.co")
        );
        assert_eq!(m.map(&input(None)).unwrap_err().code(), "invalid_json");
    }
}
