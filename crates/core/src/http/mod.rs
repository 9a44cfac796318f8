//! The HTTP surface: webhooks (from [`crate::ingest`]), the admin API, health,
//! readiness and metrics, under one set of tower layers (request id, a tracing span
//! carrying it, an access line and latency histogram, panic → 500 JSON, timeout →
//! 408 JSON; the webhook route adds its body limit). Every error a client sees has
//! the `{"error":{"code","message"}}` shape, whichever layer produced it.

pub mod admin;
pub mod openapi;

use std::time::{Duration, Instant};

use axum::{
    BoxError, Json, Router,
    error_handling::HandleErrorLayer,
    extract::{DefaultBodyLimit, MatchedPath, State},
    http::{HeaderName, Request, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{error::ApiError, ingest::routes::IngestState, store::SharedStore};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The process-wide Prometheus recorder (see [`crate::metrics`]).
pub fn metrics_handle() -> PrometheusHandle {
    crate::metrics::handle()
}

/// Health and metrics state.
#[derive(Clone)]
pub struct HealthState {
    /// `/readyz` asks it whether it is reachable and migrated.
    pub store: SharedStore,
    /// Renders `/metrics` from the process-wide recorder.
    pub metrics: PrometheusHandle,
    /// `[store] unavailable_after_ms`: `/readyz` answers 503 once it passes.
    pub store_deadline: Duration,
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
        .method_not_allowed_fallback(crate::extract::method_not_allowed)
        .with_state(state)
}

/// Ready when the store answers, migrated, within the deadline a request has: a
/// load balancer then stops sending what could not be stored, and sends again
/// as soon as the store is back.
async fn readyz(State(state): State<HealthState>) -> Response {
    match crate::store::within(state.store_deadline, state.store.ready()).await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(e) if e.is_unavailable() => ApiError::store_unavailable("readyz", &e).into_response(),
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string())
            .into_response(),
    }
}

async fn render_metrics(State(state): State<HealthState>) -> Response {
    if let Ok(counts) = state.store.count_by_state().await {
        for (s, n) in counts {
            metrics::gauge!(crate::metrics::JOBS, "state" => s.as_str()).set(n as f64);
        }
    }
    if let Ok(lag) = state.store.oldest_runnable_age().await {
        metrics::gauge!(crate::metrics::QUEUE_LAG_SECONDS)
            .set(lag.map(|d| d.as_secs_f64()).unwrap_or(0.0));
    }
    if let Ok(pending) = state.store.seats_pending().await {
        for action in ["deactivate", "delete"] {
            let n = pending.get(action).copied().unwrap_or(0);
            metrics::gauge!(crate::metrics::SEATS_PENDING_ADMIN_ACTION, "action" => action)
                .set(n as f64);
        }
    }
    if let Ok(pending) = state.store.notifications_pending().await {
        for (channel, n) in pending {
            metrics::gauge!(crate::metrics::NOTIFICATIONS_PENDING, "channel" => channel.as_str())
                .set(n as f64);
        }
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
            WEBHOOK_ROUTE,
            post(crate::ingest::routes::receive)
                .get(crate::ingest::routes::challenge)
                .fallback(crate::ingest::routes::method_not_allowed),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Wraps a router in the shared layers, outermost first: request id (`x-request-id`,
/// kept when the client sent one, echoed in the response), a tracing span per
/// request carrying that id (so every line logged while serving it has it), an
/// access line and `offboard_http_request_duration_seconds`, panic → 500 JSON (the
/// process and the connection survive), and the request timeout → 408 JSON.
pub fn with_layers(router: Router, timeout: Duration) -> Router {
    router
        .fallback(|| async { ApiError::not_found("no such route") })
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
                .layer(middleware::from_fn(access_log))
                .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
                    tracing::error!("a request handler panicked");
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
                        .into_response()
                }))
                .layer(HandleErrorLayer::new(|e: BoxError| async move {
                    if e.is::<tower::timeout::error::Elapsed>() {
                        ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request took longer than server.request_timeout_secs")
                    } else {
                        ApiError::internal(e)
                    }
                }))
                .layer(tower::timeout::TimeoutLayer::new(timeout)),
        )
}

/// Paths probed every few seconds by orchestrators and Prometheus: their access
/// lines are logged at debug so they don't drown the rest.
const QUIET_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The webhook route, as axum's `MatchedPath` names it.
const WEBHOOK_ROUTE: &str = "/webhooks/{source}";

/// One access line per request (inside the request's span, so it carries the
/// request id) and one observation of `offboard_http_request_duration_seconds`.
/// Labels are the route template and known methods only: nothing a client sends
/// becomes a label value.
async fn access_log(req: axum::extract::Request, next: middleware::Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = method_label(req.method());
    let quiet = QUIET_PATHS.contains(&req.uri().path());
    let started = Instant::now();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics::histogram!(
        crate::metrics::HTTP_REQUEST_DURATION_SECONDS,
        "route" => route.clone(),
        "method" => method,
        "status" => status.to_string(),
    )
    .record(elapsed.as_secs_f64());
    let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    // A webhook's handler logs its own outcome ("webhook stored", "webhook
    // refused"); a second line per accepted delivery would only double the log.
    let told = route == WEBHOOK_ROUTE && response.status().is_success();
    if quiet || told {
        tracing::debug!(%route, status, latency_ms, "request finished");
    } else {
        tracing::info!(%route, status, latency_ms, "request finished");
    }
    response
}

fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
