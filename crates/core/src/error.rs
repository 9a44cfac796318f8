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
    /// `Retry-After` in seconds, for an answer that asks the client to come back.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// A client error with a reason.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 503 `store_unavailable` with `Retry-After: 1`: the store did not answer in
    /// time or cannot take writes; nothing was acknowledged, so the client retries.
    /// Counted in `offboard_store_unavailable_total{surface}`.
    pub fn store_unavailable(surface: &'static str, cause: &crate::store::StoreError) -> Self {
        tracing::warn!(surface, error = %cause, "store unavailable: answering 503");
        metrics::counter!(crate::metrics::STORE_UNAVAILABLE_TOTAL, "surface" => surface)
            .increment(1);
        Self {
            retry_after_secs: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store is unavailable; nothing was stored; retry shortly",
            )
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
        let mut response = (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
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
            other if other.is_unavailable() => Self::store_unavailable("admin", &other),
            other => Self::internal(other),
        }
    }
}
