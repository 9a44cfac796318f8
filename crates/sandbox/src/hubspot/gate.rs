//! HubSpot's side of the gate (`limits.rs` runs it): the Bearer token, then the
//! per-token rate limit in a rolling 10-second window of `10 × rps` requests
//! (HubSpot limits per app per 10 seconds), then the shared latency and
//! faults. Every answer past the token check carries
//! `X-HubSpot-RateLimit-Interval-Milliseconds`, `-Max` and `-Remaining` when a
//! limit is set. The daily allowance is not modelled.

use std::time::{Duration, Instant};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::HsError;
use crate::{
    SandboxState,
    limits::{self, Admission},
    log::Fault,
};

/// HubSpot's rolling window.
const WINDOW: Duration = Duration::from_secs(10);

fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::Unavailable => HsError::unavailable(),
        Fault::ServerError | Fault::Dropped => HsError::internal(),
    }
    .into_response()
}

/// HubSpot's 429 body: `errorType` and `policyName` say which limit was hit.
fn rate_limited() -> Response {
    let body = json!({
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": uuid::Uuid::from_u128(rand::random()).to_string(),
        "policyName": "TEN_SECONDLY_ROLLING",
    });
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}

fn rate_headers(headers: &mut HeaderMap, a: Admission) {
    for (name, value) in [
        (
            "x-hubspot-ratelimit-interval-milliseconds",
            WINDOW.as_millis(),
        ),
        ("x-hubspot-ratelimit-max", u128::from(a.limit)),
        ("x-hubspot-ratelimit-remaining", u128::from(a.remaining)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(name, v);
        }
    }
}

/// HubSpot's gate; see the module comment.
pub(crate) async fn admit(
    state: &SandboxState,
    req: Request,
    next: Next,
) -> (Response, Option<Fault>) {
    let settings = &state.inner.settings;
    let Some(token) = limits::bearer(req.headers()).map(str::to_owned) else {
        return (HsError::unauthorized().into_response(), None);
    };
    if let Some(expected) = &settings.token
        && !limits::same_token(&token, expected)
    {
        return (HsError::unauthorized().into_response(), None);
    }
    let admission = settings.rps.map(|rps| {
        state
            .limiter()
            .admit_within(&token, rps.saturating_mul(10), WINDOW, Instant::now())
    });
    let (mut response, fault) = match admission {
        Some(a) if !a.admitted => (rate_limited(), None),
        _ => limits::pass(state, req, next, fault_response).await,
    };
    if let Some(a) = admission {
        rate_headers(response.headers_mut(), a);
    }
    (response, fault)
}
