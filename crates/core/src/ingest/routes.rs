//! `POST /webhooks/{source}`: bound the body, verify, map, dedupe, store, answer;
//! `GET /webhooks/{source}`: Okta's one-time verification challenge (static_token
//! sources only).
//!
//! Every request ends in exactly one `offboard_webhooks_total{source,outcome}`
//! increment. Outcomes: `accepted`, `duplicate`, `ping`, `challenge`,
//! `bad_signature`, `stale`, `too_large`, `unreadable`, `unmappable`, `conflict`,
//! `unknown_source`, `store_unavailable`, `store_error`. The `source` label is a configured name (or
//! `unknown`), never anything a sender chose.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    mapping::{Input, MapError},
    schemes::{CHALLENGE_HEADER, SignedRequest, VerifyError},
    source::{Source, Sources},
};
use crate::{
    domain::SharedClock,
    error::ApiError,
    extract::ApiPath,
    store::{IngestOutcome, NewEvent, SharedStore, within},
};

/// What the webhook route needs.
#[derive(Clone)]
pub struct IngestState {
    /// Where accepted events and their jobs are committed before the 2xx.
    pub store: SharedStore,
    /// The configured sources, by route name; built once at start-up.
    pub sources: Arc<Sources>,
    /// `[store] unavailable_after_ms`: past it, 503 `store_unavailable`.
    pub store_deadline: std::time::Duration,
    /// `[worker] max_attempts` for new jobs.
    pub max_attempts: u32,
    /// Wakes a local worker when a job was stored (none for receiver-only processes).
    pub wake: Option<Arc<tokio::sync::Notify>>,
    /// "Now" for signature timestamps and a new job's `run_at`: the store's and the
    /// worker's clock, so an accepted job is due exactly when the worker thinks it is.
    pub clock: SharedClock,
}

/// Records the request's outcome (for metrics).
fn outcome(source: &str, outcome: &'static str) {
    metrics::counter!(crate::metrics::WEBHOOKS_TOTAL, "source" => source.to_owned(), "outcome" => outcome).increment(1);
    if !matches!(outcome, "accepted" | "duplicate" | "ping" | "challenge") {
        tracing::warn!(source, outcome, "webhook refused");
    }
}

fn find(state: &IngestState, name: &str) -> Result<Arc<Source>, ApiError> {
    state.sources.get(name).ok_or_else(|| {
        outcome("unknown", "unknown_source");
        ApiError::not_found("no source is configured under this name")
    })
}

fn ping_response(source: &str) -> Response {
    outcome(source, "ping");
    (StatusCode::OK, Json(json!({ "ping": true }))).into_response()
}

/// The webhook handler. The body arrives as raw bytes, bounded by the router's
/// `DefaultBodyLimit`, so the signature is checked on exactly what was sent.
pub async fn receive(
    State(state): State<IngestState>,
    ApiPath(source_name): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let source = find(&state, &source_name)?;
    let name = source.config.name.as_str();
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            outcome(name, "too_large");
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "body is larger than server.max_body_bytes",
            )
        } else {
            outcome(name, "unreadable");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("could not read the body: {}", rejection.body_text()),
            )
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let ping = source.mapping.ping();
    // The only look at an unverified body, and only for a source that opted in with
    // `[sources.ping] signed = false`: its set-up request cannot carry a signature
    // yet. It stores nothing, so a forged ping gains nothing but a 200.
    if ping.is_some_and(|p| !p.signed) && source.mapping.is_ping(&body, content_type) {
        return Ok(ping_response(name));
    }
    let req = SignedRequest {
        method: "POST",
        headers: &headers,
        body: &body,
        now: state.clock.now().timestamp(),
    };
    let verified = source.scheme.verify(&req).map_err(|e| {
        outcome(
            name,
            if e.code() == "stale_timestamp" {
                "stale"
            } else {
                "bad_signature"
            },
        );
        ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string())
    })?;
    // Verified from here on. The body is parsed once, for the ping check and the
    // mapping alike; a ping named by its whole body needs no parse at all.
    if ping.is_some_and(|p| p.matches_body(&body)) {
        return Ok(ping_response(name));
    }
    let unmappable = |e: MapError| {
        outcome(name, "unmappable");
        ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
    };
    let payload = source
        .mapping
        .parse(&body, content_type)
        .map_err(unmappable)?;
    if ping.is_some_and(|p| p.matches_payload(&payload)) {
        return Ok(ping_response(name));
    }
    let body_sha256 = hex::encode(Sha256::digest(&body));
    let events = source
        .mapping
        .map_parsed(
            payload,
            &Input {
                body: &body,
                content_type,
                headers: &headers,
                message_id: verified.message_id.as_deref(),
                body_sha256: &body_sha256,
            },
        )
        .map_err(unmappable)?;
    let now = state.clock.now();
    let new: Vec<NewEvent> = events
        .into_iter()
        .map(|event| NewEvent {
            source: name.to_owned(),
            event,
            body_sha256: body_sha256.clone(),
            run_at: now,
            max_attempts: state.max_attempts,
        })
        .collect();
    let employees: Vec<String> = new
        .iter()
        .map(|e| e.event.employee.email.to_string())
        .collect();
    let results = within(state.store_deadline, state.store.ingest(new))
        .await
        .map_err(|e| {
            if e.is_unavailable() {
                outcome(name, "store_unavailable");
                ApiError::store_unavailable("webhooks", &e)
            } else {
                outcome(name, "store_error");
                ApiError::internal(e)
            }
        })?;
    for (r, employee) in results.iter().zip(&employees) {
        match r {
            IngestOutcome::Accepted { event_id, job_id } => {
                tracing::info!(source = name, %event_id, %job_id, %employee, "webhook stored: new job");
            }
            IngestOutcome::Duplicate { event_id, job_id } => {
                tracing::info!(source = name, %event_id, %job_id, %employee, "webhook was a duplicate: nothing stored");
            }
            // Counted and logged as refused by `respond`.
            IngestOutcome::Conflict { .. } => {}
        }
    }
    if let Some(wake) = &state.wake {
        wake.notify_one();
    }
    respond(name, &results)
}

/// `GET /webhooks/{source}`: answers Okta's one-time verification request with
/// `{"verification": "<x-okta-verification-challenge>"}`; 405 for other schemes.
pub async fn challenge(
    State(state): State<IngestState>,
    ApiPath(source_name): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let source = find(&state, &source_name)?;
    let name = source.config.name.as_str();
    match source.scheme.verification_challenge(&headers) {
        None => Ok(no_verification_request()),
        Some(Err(VerifyError::MissingHeader(h))) if h == CHALLENGE_HEADER => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_challenge",
            format!(
                "a GET here is Okta's verification request and needs the {CHALLENGE_HEADER} header"
            ),
        )),
        Some(Err(e)) => {
            outcome(name, "bad_signature");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                e.code(),
                e.to_string(),
            ))
        }
        Some(Ok(value)) => {
            outcome(name, "challenge");
            Ok(Json(json!({ "verification": value })).into_response())
        }
    }
}

/// Any other method on a webhook route: JSON 405; axum adds the route's `Allow`
/// (GET, HEAD, POST).
pub async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "webhooks are POSTed here (GET only answers Okta's verification challenge on static_token sources)",
    )
    .into_response()
}

/// A GET on a source whose scheme has no verification request: 405, and for
/// this source only POST is allowed.
fn no_verification_request() -> Response {
    let mut r = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "webhooks are POSTed here; this source's scheme has no verification request to answer on GET",
    )
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    r
}

/// One result → the DESIGN.md §4 body; several (array payloads) → `{"events":[…]}`.
fn respond(source: &str, results: &[IngestOutcome]) -> Result<Response, ApiError> {
    let mut items = Vec::with_capacity(results.len());
    let mut any_new = false;
    for r in results {
        match r {
            IngestOutcome::Accepted { event_id, job_id } => {
                any_new = true;
                items.push(json!({ "event_id": event_id, "job_id": job_id, "duplicate": false }));
            }
            IngestOutcome::Duplicate { event_id, job_id } => {
                items.push(json!({ "event_id": event_id, "job_id": job_id, "duplicate": true }));
            }
            IngestOutcome::Conflict { event_id } => {
                outcome(source, "conflict");
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "event_id_conflict",
                    format!("event id {event_id:?} was already received with a different body"),
                ));
            }
        }
    }
    outcome(source, if any_new { "accepted" } else { "duplicate" });

    let status = if any_new {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let body = match items.len() {
        1 => items.remove(0),
        _ => json!({ "events": items }),
    };
    Ok((status, Json(body)).into_response())
}
