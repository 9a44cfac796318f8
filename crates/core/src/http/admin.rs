//! The admin API under `/api/v1`: list and show jobs, retry, cancel, approve.
//! Every route needs `Authorization: Bearer <admin token>`.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Request, State},
    http::header::AUTHORIZATION,
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::{
    config::Secret,
    domain::JobState,
    store::{Job, JobFilter, SharedStore, Via},
};

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    /// Where jobs are read and operated (retry, cancel, approve).
    pub store: SharedStore,
    /// The admin bearer token (`[admin] token_env`), compared in constant time.
    pub token: Arc<Secret>,
    /// Hash e-mails in output.
    pub redact_emails: bool,
}

/// The `/api/v1` routes (jobs list, show, retry, cancel, approve, and the OpenAPI
/// document), every one behind the admin bearer token.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(super::openapi::document()) }),
        )
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}", get(show_job))
        .route("/api/v1/jobs/{id}/retry", post(retry_job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/jobs/{id}/approve", post(approve_job))
        .method_not_allowed_fallback(crate::extract::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

async fn require_token(
    State(state): State<AdminState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = state.token.expose().as_bytes();
    if presented.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected)) {
        return Err(ApiError::unauthorized());
    }
    Ok(next.run(req).await)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    employee: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_jobs(
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let bad = |code, msg: String| ApiError::new(axum::http::StatusCode::BAD_REQUEST, code, msg);
    if q.limit.is_some_and(|l| l > JobFilter::MAX_LIMIT) {
        return Err(bad(
            "invalid_query",
            format!("limit: at most {} jobs per page", JobFilter::MAX_LIMIT),
        ));
    }
    let filter = JobFilter {
        state: q
            .state
            .as_deref()
            .map(str::parse::<JobState>)
            .transpose()
            .map_err(|e| bad("invalid_state", e.to_string()))?,
        employee: q.employee.map(|e| e.trim().to_lowercase()),
        since: q
            .since
            .as_deref()
            .map(chrono::DateTime::parse_from_rfc3339)
            .transpose()
            .map_err(|e| bad("invalid_since", format!("since: {e} (expected RFC 3339)")))?
            .map(|t| t.with_timezone(&chrono::Utc)),
        limit: q.limit,
        before: q.cursor,
    };
    let limit = filter.page_size() as usize;
    let jobs = state.store.list_jobs(&filter).await?;
    let next_cursor = (jobs.len() == limit)
        .then(|| jobs.last().map(|j| j.id.clone()))
        .flatten();
    let jobs: Vec<Value> = jobs
        .iter()
        .map(|j| summary(j, state.redact_emails))
        .collect();
    Ok(Json(json!({ "jobs": jobs, "next_cursor": next_cursor })))
}

/// The list entry shape of DESIGN.md §4.
pub fn summary(job: &Job, redact: bool) -> Value {
    json!({
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "employee_email": crate::telemetry::show_email(&job.employee_email, redact),
        "action": job.action,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    })
}

async fn show_job(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let detail = state
        .store
        .get_job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(Json(detail_json(&detail, state.redact_emails)))
}

/// The one-job shape of DESIGN.md §4.
pub fn detail_json(detail: &crate::store::JobDetail, redact: bool) -> Value {
    let job = &detail.job;
    let mut v = json!({
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "attempt": job.attempt,
        "failures": job.failures,
        "max_attempts": job.max_attempts,
        "run_at": job.run_at,
        "source": job.source,
        "event": job.event,
        "action": job.action,
        "plan": job.plan,
        "last_error": job.last_error,
        "approved": job.approved,
        "parent_id": job.parent_id,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "checkpoints": detail.checkpoints,
        "audit": detail.audit,
        "notifications": detail.notifications,
    });
    if redact {
        crate::telemetry::redact_emails_in(&mut v);
    }
    v
}

async fn retry_job(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let job = state.store.retry(&id, Via::Api).await?;
    Ok(Json(summary(&job, state.redact_emails)))
}

async fn cancel_job(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let job = state
        .store
        .cancel(&id, "cancelled by operator (API)", Via::Api)
        .await?;
    Ok(Json(summary(&job, state.redact_emails)))
}

async fn approve_job(
    State(state): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let job = state.store.approve(&id, Via::Api).await?;
    Ok(Json(summary(&job, state.redact_emails)))
}
