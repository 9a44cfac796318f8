//! Sell's JSON envelopes, byte-compatible with `samples/sell/`: a single object
//! `{"data":…,"meta":{"type":…}}`, a collection
//! `{"items":[…],"meta":{"type":"collection","count":N,"links":{…}}}` and the
//! error envelope `{"errors":[{"error":{…},"meta":{…}}],"meta":{"type":"errors",…}}`.
//!
//! [`SellError`] is how every Sell-shaped route fails: each constructor is one
//! error Sell documents, so a bad request always gets an envelope, never a panic
//! or a bare status.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Value, json};

const ERRORS_DOC: &str = "https://developer.zendesk.com/api-reference/sales-crm/errors/";
const RATE_LIMITS_DOC: &str = "https://developer.zendesk.com/api-reference/sales-crm/rate-limits/";

/// The `meta` of one object: its type and, for records, its version.
pub(super) fn item_meta(kind: &str, version: Option<u32>) -> Value {
    match version {
        Some(v) => json!({ "type": kind, "version": v }),
        None => json!({ "type": kind }),
    }
}

/// `{"data":…,"meta":…}` with status 200.
pub(super) fn single(data: impl Serialize, meta: Value) -> Response {
    let body = json!({ "data": data, "meta": meta });
    with_json_type(Json(body).into_response())
}

/// Links of one page of a collection.
#[derive(Debug, Serialize)]
pub(super) struct Links {
    #[serde(rename = "self")]
    pub this: String,
    pub first_page: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_page: Option<String>,
    /// Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

/// `{"items":[{"data":…,"meta":…}],"meta":{"type":"collection","count":N,"links":…}}`;
/// `count` is the number of items on this page.
pub(super) fn collection(items: Vec<(Value, Value)>, links: Links) -> Response {
    let count = items.len();
    let items: Vec<Value> = items
        .into_iter()
        .map(|(data, meta)| json!({ "data": data, "meta": meta }))
        .collect();
    let body = json!({
        "items": items,
        "meta": { "type": "collection", "count": count, "links": links },
    });
    with_json_type(Json(body).into_response())
}

fn with_json_type(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// A Sell API error, rendered as Sell's error envelope.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SellError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: String,
    /// For validation errors: the resource type and field at fault.
    pub resource: Option<&'static str>,
    pub field: Option<String>,
}

impl SellError {
    fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        SellError {
            status,
            code,
            message: message.into(),
            details: details.into(),
            resource: None,
            field: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "request is unauthorized",
            "Required access token is missing, malformed, expired, or invalid.",
        )
    }

    pub fn invalid_user_agent() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_user_agent",
            "User-Agent header is missing or invalid",
            "Every request must send a User-Agent header that identifies the integration.",
        )
    }

    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "Rate limit exceeded",
            "You have exceeded the number of requests allowed for this access token.",
        )
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Resource not found",
            "The requested resource does not exist or you do not have access to it.",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "This resource does not support the requested HTTP method.",
        )
    }

    /// A query parameter Sell can't parse.
    pub fn bad_param(name: &str, details: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_param",
            format!("{name} is invalid"),
            details,
        );
        e.field = Some(name.to_owned());
        e
    }

    /// A body that isn't JSON.
    pub fn bad_json(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "Request body is not valid JSON",
            details,
        )
    }

    /// 422: the envelope or a field's value is unacceptable.
    pub fn invalid(
        resource: &'static str,
        field: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        let field = field.into();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("{field} is invalid"),
            details,
        );
        e.resource = Some(resource);
        e.field = Some(field);
        e
    }

    /// 422: a body without the `data` envelope.
    pub fn missing_data(resource: &'static str) -> Self {
        let mut e = Self::invalid(
            resource,
            "data",
            "The request body must be an object of the form {\"data\": {...}}.",
        );
        e.code = "missing_field";
        e.message = "data is missing".to_owned();
        e
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Internal server error",
            "Something went wrong on our side. Try again later.",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Service unavailable",
            "The service is temporarily unavailable. Try again later.",
        )
    }
}

/// A fresh `logref` in Sell's style (`4d8b-2e61-9f3a`).
fn logref() -> String {
    let hex = uuid::Uuid::now_v7().simple().to_string();
    let tail = &hex[hex.len() - 12..];
    format!("{}-{}-{}", &tail[0..4], &tail[4..8], &tail[8..12])
}

impl IntoResponse for SellError {
    fn into_response(self) -> Response {
        let mut error =
            json!({ "code": self.code, "message": self.message, "details": self.details });
        if let Some(obj) = error.as_object_mut() {
            if let Some(r) = self.resource {
                obj.insert("resource".into(), r.into());
            }
            if let Some(f) = self.field {
                obj.insert("field".into(), f.into());
            }
        }
        let more_info = if self.status == StatusCode::TOO_MANY_REQUESTS {
            RATE_LIMITS_DOC
        } else {
            ERRORS_DOC
        };
        let http_status = format!(
            "{} {}",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("")
        );
        let logref = logref();
        let body = json!({
            "errors": [{ "error": error, "meta": { "type": "error", "links": { "more_info": more_info } } }],
            "meta": { "type": "errors", "http_status": http_status.trim_end(), "logref": logref },
        });
        let mut r = with_json_type((self.status, Json(body)).into_response());
        let headers = r.headers_mut();
        headers.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static("en"));
        if let Ok(v) = HeaderValue::from_str(&logref) {
            headers.insert("x-request-id", v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_429_envelope_matches_the_sample() {
        let r = SellError::rate_limited().into_response();
        assert_eq!(r.status(), 429);
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let mut got: Value = serde_json::from_slice(&bytes).unwrap();
        let mut want: Value =
            serde_json::from_str(include_str!("testdata/error-429.json")).unwrap();
        assert_eq!(got["meta"]["logref"].as_str().map(str::len), Some(14));
        got["meta"]["logref"] = Value::Null;
        want["meta"]["logref"] = Value::Null;
        assert_eq!(got, want);
    }
}
