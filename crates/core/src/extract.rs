//! Extractors whose rejections are [`ApiError`]s. axum's own `Path` and `Query`
//! reject with a `text/plain` body; offboard promises the JSON envelope for every
//! error, so the JSON routes take these instead (the SCIM door has its own error
//! object and the console its own pages, and neither uses them).
//!
//! A leaf at the crate root, beside `error.rs`, for the same reason: the webhook
//! handlers in `ingest` and the admin API in `http` both take them.

use axum::{
    extract::{
        FromRequestParts,
        rejection::{PathRejection, QueryRejection},
    },
    http::StatusCode,
};

use crate::error::ApiError;

/// `axum::extract::Path`, rejecting with `400 invalid_path` in the envelope (a
/// segment that is not valid percent-encoded UTF-8, say).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query`, rejecting with `400 invalid_query` in the envelope (a
/// repeated parameter, a number that is not one).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            rejection.body_text(),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text(),
        )
    }
}

/// `405 method_not_allowed` in the envelope, for routers whose routes have no
/// fallback of their own; axum still adds the `Allow` header.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method (see the Allow header)",
    )
}
