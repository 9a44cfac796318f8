//! The gate every CRM-shaped request passes. For Sell, in this order:
//! `User-Agent` (400), bearer token (401), the per-token rate limit (429, no
//! `Retry-After`), then the configured latency and injected faults (500, 503 or
//! a dropped connection). Pipedrive's gate (`pipedrive/gate.rs`) differs only in
//! how it reads the token, its two-second window, its headers and its error
//! bodies; it shares the limiter, [`pass`] and the log with Sell's.
//!
//! A faulted request never reaches its handler, so a faulted write is never
//! applied. Every request that reaches the gate is logged, whatever its outcome.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rand::Rng;
use subtle::ConstantTimeEq;

use super::{
    SandboxCrm, SandboxState,
    conn::ConnHandle,
    envelope::SellError,
    hubspot,
    log::{Fault, RequestLogEntry},
    pipedrive, salesforce,
};

const WINDOW: Duration = Duration::from_secs(1);

/// The limiter's answer to one request, with what rate-limit headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Admission {
    pub admitted: bool,
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests still allowed in the current window, this one counted.
    pub remaining: u32,
    /// Until the oldest request in the window leaves it and frees a slot.
    pub reset: Duration,
}

/// Sliding windows of admitted requests, per token.
///
/// The windows run on the wall clock plus `ahead`, an offset only
/// [`advance`](Self::advance) moves: a test that wants a window to slide moves
/// the sandbox's clock instead of sleeping through the second.
#[derive(Debug, Default)]
pub(super) struct Limiter {
    windows: HashMap<String, VecDeque<Instant>>,
    ahead: Duration,
}

impl Limiter {
    /// Admits a request at `now` (wall clock) if fewer than `rps` were admitted
    /// for `token` in the second before; refused requests don't count.
    pub fn admit(&mut self, token: &str, rps: u32, now: Instant) -> bool {
        self.admit_within(token, rps, WINDOW, now).admitted
    }

    /// Admits a request at `now` (wall clock) if fewer than `limit` were
    /// admitted for `token` in the `window` before; refused requests don't count.
    pub fn admit_within(
        &mut self,
        token: &str,
        limit: u32,
        window: Duration,
        now: Instant,
    ) -> Admission {
        let now = now + self.ahead;
        let seen = self.windows.entry(token.to_owned()).or_default();
        while seen
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            seen.pop_front();
        }
        let admitted = seen.len() < limit as usize;
        if admitted {
            seen.push_back(now);
        }
        let remaining = (limit as usize).saturating_sub(seen.len());
        Admission {
            admitted,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: seen
                .front()
                .map_or(window, |t| window.saturating_sub(now.duration_since(*t))),
        }
    }

    /// Moves this limiter's clock forward by `by`.
    pub fn advance(&mut self, by: Duration) {
        self.ahead += by;
    }
}

/// The middleware in front of the CRM's routes.
pub(super) async fn gate(State(state): State<SandboxState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let mut path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.to_string());
    if state.crm() == SandboxCrm::Pipedrive {
        path = pipedrive::redact_token(&path);
    }
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|c| c.0.clone());
    let (response, mut fault) = admit(&state, req, next).await;
    let mut status = Some(response.status().as_u16());
    if fault == Some(Fault::Dropped) {
        match conn {
            Some(conn) => {
                conn.cut();
                status = None;
            }
            // Not served over a socket (e.g. `oneshot` in a test): the 500 goes out.
            None => fault = Some(Fault::ServerError),
        }
    }
    let at_ms = started.duration_since(state.inner.started).as_millis() as u64;
    state.log().record(RequestLogEntry {
        seq: 0,
        at_ms,
        method,
        path,
        status,
        fault,
        duration_ms: started.elapsed().as_millis() as u64,
    });
    response
}

async fn admit(state: &SandboxState, req: Request, next: Next) -> (Response, Option<Fault>) {
    match state.crm() {
        SandboxCrm::Sell => admit_sell(state, req, next).await,
        SandboxCrm::Pipedrive => pipedrive::admit(state, req, next).await,
        SandboxCrm::Hubspot => hubspot::admit(state, req, next).await,
        SandboxCrm::Salesforce => salesforce::admit(state, req, next).await,
    }
}

async fn admit_sell(state: &SandboxState, req: Request, next: Next) -> (Response, Option<Fault>) {
    let settings = &state.inner.settings;
    let refuse = |e: SellError| (e.into_response(), None);
    if !has_user_agent(req.headers()) {
        return refuse(SellError::invalid_user_agent());
    }
    let Some(token) = bearer(req.headers()) else {
        return refuse(SellError::unauthorized());
    };
    if let Some(expected) = &settings.token
        && !same_token(token, expected)
    {
        return refuse(SellError::unauthorized());
    }
    if let Some(rps) = settings.rps
        && !state.limiter().admit(token, rps, Instant::now())
    {
        return refuse(SellError::rate_limited());
    }
    pass(state, req, next, |fault| {
        match fault {
            Fault::Unavailable => SellError::unavailable(),
            Fault::ServerError | Fault::Dropped => SellError::internal(),
        }
        .into_response()
    })
    .await
}

/// The part of the gate after auth and the rate limit, the same for every CRM:
/// the latency, then a fault (answered with `faulted`, the CRM's own 500 or
/// 503) or the handler.
pub(super) async fn pass(
    state: &SandboxState,
    req: Request,
    next: Next,
    faulted: fn(Fault) -> Response,
) -> (Response, Option<Fault>) {
    let latency = state.inner.settings.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = roll_fault(state) {
        return (faulted(fault), Some(fault));
    }
    (next.run(req).await, None)
}

/// Whether `a` and `b` are the same token, in constant time.
pub(super) fn same_token(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn has_user_agent(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty())
}

/// The token of `Authorization: Bearer <token>`, if well-formed and non-empty.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether to fail this request, and how (500, 503 and drops equally likely).
fn roll_fault(state: &SandboxState) -> Option<Fault> {
    let rate = state.inner.settings.fault_rate;
    if rate.is_nan() || rate <= 0.0 {
        return None;
    }
    let mut dice = state.dice();
    if !dice.random_bool(rate.min(1.0)) {
        return None;
    }
    Some(match dice.random_range(0..3) {
        0 => Fault::ServerError,
        1 => Fault::Unavailable,
        _ => Fault::Dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_window_slides() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        assert!(l.admit("a", 2, t0));
        assert!(l.admit("a", 2, t0 + Duration::from_millis(500)));
        assert!(!l.admit("a", 2, t0 + Duration::from_millis(900)));
        assert!(
            l.admit("b", 2, t0 + Duration::from_millis(900)),
            "per token"
        );
        assert!(
            l.admit("a", 2, t0 + Duration::from_millis(1000)),
            "t0 left the window"
        );
        assert!(!l.admit("a", 2, t0 + Duration::from_millis(1400)));
        assert!(l.admit("a", 2, t0 + Duration::from_millis(1500)));
        assert!(!l.admit("z", 0, t0), "0 admits nothing");
    }

    #[test]
    fn advancing_the_clock_slides_the_window_without_waiting() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        assert!(l.admit("a", 1, t0));
        assert!(!l.admit("a", 1, t0));
        l.advance(WINDOW);
        assert!(l.admit("a", 1, t0), "the first request left the window");
        assert!(!l.admit("a", 1, t0), "and the new one is in it");
    }

    #[test]
    fn an_admission_reports_what_is_left_and_when_a_slot_frees() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let two = Duration::from_secs(2);
        let a = l.admit_within("a", 2, two, t0);
        assert_eq!(
            (a.admitted, a.limit, a.remaining, a.reset),
            (true, 2, 1, two)
        );
        let a = l.admit_within("a", 2, two, t0 + Duration::from_millis(500));
        assert_eq!((a.admitted, a.remaining), (true, 0));
        assert_eq!(a.reset, Duration::from_millis(1500));
        let a = l.admit_within("a", 2, two, t0 + Duration::from_millis(1999));
        assert!(!a.admitted);
        assert_eq!(a.reset, Duration::from_millis(1));
        assert!(l.admit_within("a", 2, two, t0 + two).admitted);
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
