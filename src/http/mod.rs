//! The HTTP surface: webhooks (from [`crate::ingest`]), the admin API, health,
//! readiness and metrics, under one set of tower layers (request id, tracing,
//! timeout, panic → 500 JSON, body limit).

pub mod admin;
pub mod error;
pub mod openapi;

use std::{sync::OnceLock, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::{HeaderName, Request, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{ingest::routes::IngestState, store::SharedStore};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The process-wide Prometheus recorder (installed once, even with many apps in
/// one test process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); then ours only renders.
            let _ = metrics::set_global_recorder(recorder);
            metrics::gauge!("offboard_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// Health and metrics state.
#[derive(Clone)]
pub struct HealthState {
    #[allow(missing_docs)]
    pub store: SharedStore,
    #[allow(missing_docs)]
    pub metrics: PrometheusHandle,
}

/// Routes every role serves: `/healthz`, `/readyz`, `/metrics`.
pub fn health_router(state: HealthState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

async fn readyz(State(state): State<HealthState>) -> Response {
    match state.store.ready().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(e) => error::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string())
            .into_response(),
    }
}

async fn render_metrics(State(state): State<HealthState>) -> Response {
    if let Ok(counts) = state.store.count_by_state().await {
        for (s, n) in counts {
            metrics::gauge!("offboard_jobs", "state" => s.as_str()).set(n as f64);
        }
    }
    if let Ok(lag) = state.store.oldest_runnable_age().await {
        metrics::gauge!("offboard_queue_lag_seconds")
            .set(lag.map(|d| d.as_secs_f64()).unwrap_or(0.0));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The webhook route, with its own body limit (over it: 413 `too_large`, recorded
/// by the handler); `GET` on it answers Okta's verification challenge.
pub fn ingest_router(state: IngestState, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/webhooks/{source}",
            post(crate::ingest::routes::receive)
                .get(crate::ingest::routes::challenge)
                .fallback(crate::ingest::routes::method_not_allowed),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Wraps a router in the shared layers.
pub fn with_layers(router: Router, timeout: Duration) -> Router {
    router
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
                    tracing::error!("a request handler panicked");
                    error::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
                        .into_response()
                }))
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout)),
        )
}
