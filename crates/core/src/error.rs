//! `ApiError`: every HTTP error offboard sends is `{"error":{"code","message"}}`.
//! Client errors say why; server errors are opaque to the client and logged here
//! with their cause.
//!
//! It lives at the crate root, not under [`crate::http`], because both the webhook
//! handlers in [`crate::ingest`] and the router in [`crate::http`] answer with it;
//! under either one the two modules would import each other.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation (for 5xx: generic).
    pub message: String,
}

impl ApiError {
    /// A client error with a reason.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A server-side failure: logged with its cause, opaque to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// 401 for the admin API.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
    }

    /// 404 `not_found`; `what` says what was not there (a job id, a source, a route).
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound(id) => Self::not_found(format!("no job {id}")),
            StoreError::WrongState { .. } => {
                Self::new(StatusCode::CONFLICT, "wrong_state", e.to_string())
            }
            other => Self::internal(other),
        }
    }
}
