//! `POST /webhooks/{source}`: bound the body, verify, map, dedupe, store, answer.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Sources, mapping, schemes::SignedRequest};
use crate::{
    http::error::ApiError,
    store::{IngestOutcome, NewEvent, SharedStore},
};

/// What the webhook route needs.
#[derive(Clone)]
pub struct IngestState {
    #[allow(missing_docs)]
    pub store: SharedStore,
    #[allow(missing_docs)]
    pub sources: Arc<Sources>,
    /// `[worker] max_attempts` for new jobs.
    pub max_attempts: u32,
    /// Wakes a local worker when a job was stored (none for receiver-only processes).
    pub wake: Option<Arc<tokio::sync::Notify>>,
}

/// Records the request's outcome (for metrics) and passes the response through.
fn outcome(source: &str, outcome: &'static str) {
    metrics::counter!("offboard_webhooks_total", "source" => source.to_owned(), "outcome" => outcome).increment(1);
}

/// The webhook handler. The body arrives as raw bytes (already size-limited by the
/// router's layer) so the signature is checked on exactly what was sent.
pub async fn receive(
    State(state): State<IngestState>,
    Path(source_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(source) = state.sources.get(&source_name) else {
        outcome("unknown", "unknown_source");
        return Err(ApiError::not_found(format!(
            "no source named {source_name:?}"
        )));
    };
    let name = source.config.name.as_str();
    let req = SignedRequest {
        method: "POST",
        headers: &headers,
        body: &body,
        now: chrono::Utc::now().timestamp(),
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
    let body_sha256 = hex::encode(Sha256::digest(&body));
    let events = mapping::map_body(
        &body,
        &source.config.map,
        verified.message_id.as_deref(),
        &body_sha256,
    )
    .map_err(|e| {
        outcome(name, "unmappable");
        ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
    })?;
    let now = chrono::Utc::now();
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
    let results = state.store.ingest(new).await.map_err(|e| {
        outcome(name, "store_error");
        ApiError::internal(e)
    })?;
    if let Some(wake) = &state.wake {
        wake.notify_one();
    }
    respond(name, &results)
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
