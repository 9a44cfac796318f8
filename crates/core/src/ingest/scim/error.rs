//! The one error shape of `/scim/v2`: RFC 7644 §3.12's error object, as
//! `application/scim+json`, with `status` as a string and `scimType` where the RFC
//! defines one. Identity providers show `detail` to their admins, so it says what
//! to fix.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use scim_v2::models::errors::{ScimHttpError, ScimType};

/// The media type of every SCIM body (RFC 7644 §3.1), errors and resources alike.
pub const SCIM_JSON: &str = "application/scim+json";

/// A SCIM error response.
#[derive(Debug, Clone)]
pub struct ScimError {
    /// HTTP status.
    pub status: StatusCode,
    /// RFC 7644 §3.12 `scimType`, for the 400 and 409 cases that have one.
    pub scim_type: Option<ScimType>,
    /// What went wrong, for a person.
    pub detail: String,
    /// `Retry-After` seconds, when the provider should come back.
    pub retry_after_secs: Option<u64>,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
            retry_after_secs: None,
        }
    }

    /// 503 with `Retry-After: 1`: the store did not answer in time or cannot take
    /// writes; nothing was changed, and identity providers retry.
    pub fn unavailable(cause: &crate::store::StoreError) -> Self {
        tracing::warn!(error = %cause, "store unavailable: answering 503");
        metrics::counter!(crate::metrics::STORE_UNAVAILABLE_TOTAL, "surface" => "scim")
            .increment(1);
        Self {
            retry_after_secs: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the store is unavailable; nothing was changed; retry shortly",
            )
        }
    }

    /// 400 `invalidSyntax`: the body is not JSON, or not a SCIM message.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Some(ScimType::InvalidSyntax),
            detail,
        )
    }

    /// 400 `invalidValue`: a required value is missing or has the wrong type.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Some(ScimType::InvalidValue),
            detail,
        )
    }

    /// 400 `invalidFilter`: a filter offboard cannot parse or does not support.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Some(ScimType::InvalidFilter),
            detail,
        )
    }

    /// 400 `invalidPath`: a PATCH path offboard cannot parse or apply.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(ScimType::InvalidPath), detail)
    }

    /// 400 `noTarget`: a PATCH path whose filter matches no value.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(ScimType::NoTarget), detail)
    }

    /// 400 `mutability`: an attempt to change what offboard owns (`id`, `meta`).
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(ScimType::Mutability), detail)
    }

    /// 409 `uniqueness`: another user already has this `userName`.
    pub fn uniqueness(user_name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            Some(ScimType::Uniqueness),
            format!(
                "userName {user_name:?} is already taken (userName is unique without regard to case)"
            ),
        )
    }

    /// 401: no or a wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "missing or wrong bearer token (Authorization: Bearer <the token in [scim] token_env>)",
        )
    }

    /// 404: no such user (or route).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    /// 412: `If-Match` names a version the user is no longer at.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, None, detail)
    }

    /// 405 for a method a SCIM route does not take.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, None, detail)
    }

    /// 413: a body over `server.max_body_bytes`.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            "body is larger than server.max_body_bytes",
        )
    }

    /// 501: a SCIM feature offboard says it does not support (bulk, sort, groups…).
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, None, detail)
    }

    /// 500: the store failed. Logged with its cause; opaque to the client, which
    /// retries (identity providers do).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "scim request failed in the store");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "internal error; nothing was changed; see the server log",
        )
    }

    /// The metrics outcome this error counts as.
    pub fn outcome(&self) -> &'static str {
        match (self.status, &self.scim_type) {
            (StatusCode::UNAUTHORIZED, _) => "unauthorized",
            (StatusCode::NOT_FOUND, _) => "not_found",
            (StatusCode::CONFLICT, _) => "uniqueness",
            (StatusCode::PRECONDITION_FAILED, _) => "precondition_failed",
            (StatusCode::SERVICE_UNAVAILABLE, _) => "store_unavailable",
            (s, _) if s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED => "store_error",
            _ => "invalid",
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let body = ScimHttpError {
            schemas: vec![scim_v2::schema_urns::ERROR.to_owned()],
            scim_type: self.scim_type,
            detail: Some(self.detail),
            status: self.status.as_u16().to_string(),
        };
        let text = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"offboard-scim\""),
            );
        }
        response
    }
}
