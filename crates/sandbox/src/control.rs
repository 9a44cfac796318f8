//! The control routes under `/__sandbox/`: what no CRM API client can do, kept
//! apart from the CRM-shaped routes (no CRM auth, no rate limit, no faults, not
//! in the request log, offboard's own `{"error":{"code","message"}}` errors).
//! They are the same whichever CRM the sandbox speaks.
//!
//! - `GET /__sandbox/state`: everything, in the `--seed FILE` format
//! - `GET /__sandbox/requests`: the request log (no tokens)
//! - `GET /__sandbox/stats`: counts by status, 429s, faults, updates per record
//! - `GET /__sandbox/users/{id}/counts`: open and closed records per kind, in
//!   the served CRM's view
//! - `POST /__sandbox/users/{id}/deactivate|reactivate|delete`: the admin's
//!   actions in the CRM's UI (Sell: Settings › Manage › Users)
//! - `POST /__sandbox/reset`: back to the initial seed

use axum::{
    Json, Router,
    extract::{Path, State, rejection::PathRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;

use super::{SandboxState, db::ControlError, seed::User};

/// A control-route error: the same `{"error":{"code","message"}}` shape as
/// offboard's own API, so rehearsal scripts read both alike.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

/// The routes, to be nested under `/__sandbox`.
pub(super) fn router() -> Router<SandboxState> {
    Router::new()
        .route("/state", get(state_dump))
        .route("/requests", get(requests))
        .route("/stats", get(stats))
        .route("/users/{id}/counts", get(counts))
        .route("/users/{id}/deactivate", post(deactivate))
        .route("/users/{id}/reactivate", post(reactivate))
        .route("/users/{id}/delete", post(delete))
        .route("/reset", post(reset))
        .fallback(|| async {
            ApiError::not_found(
                "no such control route; try GET /__sandbox/state, /requests, /stats, /users/{id}/counts \
                 or POST /__sandbox/users/{id}/deactivate|reactivate|delete, /reset",
            )
        })
}

fn user_id(path: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    path.ok()
        .and_then(|Path(id)| id.parse().ok())
        .ok_or_else(|| ApiError::not_found("user ids are integers"))
}

fn answer(result: Result<User, ControlError>) -> Result<Response, ApiError> {
    match result {
        Ok(user) => Ok(Json(json!({ "user": user })).into_response()),
        Err(e) => {
            let (status, code) = match e {
                ControlError::UnknownUser(_) => (StatusCode::NOT_FOUND, "unknown_user"),
                ControlError::Deleted(_) => (StatusCode::CONFLICT, "user_deleted"),
                ControlError::OpenRecords { .. } => (StatusCode::CONFLICT, "open_records"),
                ControlError::HasReportees { .. } => (StatusCode::CONFLICT, "has_reportees"),
            };
            Err(ApiError::new(status, code, e.to_string()))
        }
    }
}

async fn state_dump(State(state): State<SandboxState>) -> Response {
    Json(state.snapshot().await).into_response()
}

async fn requests(State(state): State<SandboxState>) -> Response {
    Json(json!({ "requests": state.request_log() })).into_response()
}

async fn stats(State(state): State<SandboxState>) -> Response {
    Json(state.stats()).into_response()
}

async fn counts(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = user_id(path)?;
    if state.user(id).await.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_user",
            format!("no user with id {id}"),
        ));
    }
    Ok(Json(json!({ "user_id": id, "counts": state.open_counts(id).await })).into_response())
}

async fn deactivate(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    answer(state.deactivate(user_id(path)?).await)
}

async fn reactivate(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    answer(state.reactivate(user_id(path)?).await)
}

async fn delete(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    answer(state.delete(user_id(path)?).await)
}

async fn reset(State(state): State<SandboxState>) -> StatusCode {
    state.reset().await;
    StatusCode::NO_CONTENT
}
