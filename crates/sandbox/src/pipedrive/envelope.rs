//! Pipedrive's response bodies: `{"success":true,"data":…}` (lists add
//! `additional_data`) and the failure body `{"success":false,"error":…,
//! "error_info":…,"data":null,"additional_data":null}`; the 401 and 429 bodies
//! carry `errorCode` instead of the nulls, as Pipedrive's `Unauthorized` schema
//! does.
//!
//! [`PdError`] is how every Pipedrive route fails, so a bad request always gets
//! a Pipedrive body, never a panic or a bare status.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::envelope::SellError;

/// What Pipedrive's failures point at for help.
const HELP: &str =
    "Please check developers.pipedrive.com for more information about Pipedrive API.";

/// `{"success":true,"data":…}` with status 200.
pub(super) fn ok(data: Value) -> Response {
    json_response(StatusCode::OK, json!({ "success": true, "data": data }))
}

/// `{"success":true,"data":[…],"additional_data":…}` with status 200.
pub(super) fn list(data: Vec<Value>, additional_data: Value) -> Response {
    json_response(
        StatusCode::OK,
        json!({ "success": true, "data": data, "additional_data": additional_data }),
    )
}

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// A Pipedrive API failure.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PdError {
    pub status: StatusCode,
    /// What went wrong (`error`).
    pub error: String,
    /// How to solve it (`error_info`).
    pub info: String,
}

impl PdError {
    fn new(status: StatusCode, error: impl Into<String>, info: impl Into<String>) -> Self {
        PdError {
            status,
            error: error.into(),
            info: info.into(),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized access", HELP)
    }

    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Request over limit",
            "The rate limit of this token's 2-second window is used up; wait x-ratelimit-reset seconds.",
        )
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, HELP)
    }

    pub fn forbidden(error: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, error, HELP)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"), HELP)
    }

    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Unknown endpoint", HELP)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "This resource does not support the requested HTTP method.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error",
            HELP,
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            "Scheduled maintenance; try again later.",
        )
    }
}

/// The query parsing shared with Sell reports in Sell's terms; the words carry over.
impl From<SellError> for PdError {
    fn from(e: SellError) -> Self {
        Self::new(e.status, e.details, HELP)
    }
}

impl IntoResponse for PdError {
    fn into_response(self) -> Response {
        let mut body = json!({ "success": false, "error": self.error, "error_info": self.info });
        if let Some(obj) = body.as_object_mut() {
            if matches!(
                self.status,
                StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
            ) {
                obj.insert("errorCode".into(), self.status.as_u16().into());
            } else {
                obj.insert("data".into(), Value::Null);
                obj.insert("additional_data".into(), Value::Null);
            }
        }
        json_response(self.status, body)
    }
}
