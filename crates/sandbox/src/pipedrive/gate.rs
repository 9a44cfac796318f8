//! Pipedrive's side of the gate (`limits.rs` runs it): the token, then the
//! per-token rate limit in a sliding two-second window, then the shared latency
//! and faults. Every answer past the token check carries
//! `x-ratelimit-limit` (requests per window), `x-ratelimit-remaining` (left in
//! the window after this one) and `x-ratelimit-reset` (whole seconds until the
//! oldest request leaves the window, so a slot frees) when a limit is set.
//! Pipedrive's daily budget (`x-daily-requests-left`, token costs) is not
//! modelled.

use std::time::{Duration, Instant};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::envelope::PdError;
use crate::{
    SandboxState,
    limits::{self, Admission},
    log::Fault,
};

/// Pipedrive's rate-limit window.
const WINDOW: Duration = Duration::from_secs(2);

/// The token: `x-api-token`, else the `api_token` query parameter, else an
/// OAuth `Authorization: Bearer` token. Empty ones count as missing.
fn token(req: &Request) -> Option<String> {
    let header = req
        .headers()
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(t) = header {
        return Some(t.to_owned());
    }
    let query = req
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "api_token"))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|t| !t.is_empty());
    query.or_else(|| limits::bearer(req.headers()).map(str::to_owned))
}

/// The path with an `api_token` query value masked, for the request log.
pub(crate) fn redact_token(path: &str) -> String {
    let Some((path, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            let decoded: Vec<(String, String)> =
                serde_urlencoded::from_str(key).unwrap_or_default();
            match decoded.first() {
                Some((k, _)) if k == "api_token" => format!("{key}=***"),
                _ => pair.to_owned(),
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::Unavailable => PdError::unavailable(),
        Fault::ServerError | Fault::Dropped => PdError::internal(),
    }
    .into_response()
}

fn rate_headers(headers: &mut HeaderMap, a: Admission) {
    // Rounded up: a client that waits `reset` seconds finds the slot free.
    let reset = a.reset.as_millis().div_ceil(1000);
    for (name, value) in [
        ("x-ratelimit-limit", u128::from(a.limit)),
        ("x-ratelimit-remaining", u128::from(a.remaining)),
        ("x-ratelimit-reset", reset),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(name, v);
        }
    }
}

/// Pipedrive's gate; see the module comment.
pub(crate) async fn admit(
    state: &SandboxState,
    req: Request,
    next: Next,
) -> (Response, Option<Fault>) {
    let settings = &state.inner.settings;
    let Some(token) = token(&req) else {
        return (PdError::unauthorized().into_response(), None);
    };
    if let Some(expected) = &settings.token
        && !limits::same_token(&token, expected)
    {
        return (PdError::unauthorized().into_response(), None);
    }
    let admission = settings.rps.map(|rps| {
        state
            .limiter()
            .admit_within(&token, rps.saturating_mul(2), WINDOW, Instant::now())
    });
    let (mut response, fault) = match admission {
        Some(a) if !a.admitted => (PdError::rate_limited().into_response(), None),
        _ => limits::pass(state, req, next, fault_response).await,
    };
    if let Some(a) = admission {
        rate_headers(response.headers_mut(), a);
    }
    (response, fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logged_path_never_shows_the_token() {
        assert_eq!(redact_token("/api/v2/deals"), "/api/v2/deals");
        assert_eq!(
            redact_token("/api/v2/deals?owner_id=1&api_token=s3cret&limit=2"),
            "/api/v2/deals?owner_id=1&api_token=***&limit=2"
        );
        assert_eq!(
            redact_token("/api/v1/users?api%5Ftoken=s3cret"),
            "/api/v1/users?api%5Ftoken=***"
        );
    }

    #[test]
    fn the_token_comes_from_the_header_the_query_or_a_bearer() {
        let req = |uri: &str, header: Option<(&str, &str)>| {
            let mut b = Request::builder().uri(uri);
            if let Some((k, v)) = header {
                b = b.header(k, v);
            }
            b.body(axum::body::Body::empty()).unwrap_or_default()
        };
        assert_eq!(
            token(&req("/x", Some(("x-api-token", "a")))).as_deref(),
            Some("a")
        );
        assert_eq!(token(&req("/x?api_token=b", None)).as_deref(), Some("b"));
        assert_eq!(
            token(&req("/x", Some(("authorization", "Bearer c")))).as_deref(),
            Some("c")
        );
        assert_eq!(
            token(&req("/x?api_token=", Some(("x-api-token", " ")))),
            None
        );
        assert_eq!(token(&req("/x", None)), None);
    }
}
