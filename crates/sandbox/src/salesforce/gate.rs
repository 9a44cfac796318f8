//! Salesforce's side of the gate (`limits.rs` runs it): the Bearer token, then
//! the org's 24-hour API allocation, then the sandbox's per-second rate as a
//! queue, then the shared latency and faults.
//!
//! - Allocation: every `/services/data/…` request past the token counts
//!   against [`DEFAULT_DAILY_LIMIT`] (or what
//!   [`SandboxState::set_salesforce_api_limit`] set); every such answer carries
//!   `Sforce-Limit-Info: api-usage=<used>/<max>`, this request counted. Once
//!   it is spent, 403 `REQUEST_LIMIT_EXCEEDED` (not counted). The window never
//!   rolls over by itself (a sandbox rarely lives 24 hours); `reset` empties it.
//!   `/services/data` (the versions list) and `/services/oauth2/userinfo` are
//!   not API calls and don't count, as in Salesforce.
//! - Rate: Salesforce has no per-second request limit (only the daily
//!   allocation and concurrency caps), and never answers 429. So the sandbox's
//!   `rps` is served as a slow server, not a refusing one: a request over the
//!   rate waits until the shared per-token window has a free slot, then goes
//!   on. A client pacing itself sees no difference; one that floods sees
//!   latency grow, which is what a real org under load does. Refusing with 403
//!   `REQUEST_LIMIT_EXCEEDED` instead would make a fake stricter in the wrong
//!   way: a client would learn to back off from an error it can only get when
//!   the day's allocation is gone.

use std::time::{Duration, Instant};

use axum::{
    extract::Request,
    http::HeaderValue,
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::SfError;
use crate::{SandboxState, limits, log::Fault};

/// The allocation when none is set: the 100,000 of the example in Salesforce's
/// Limit Info header documentation (an Enterprise org's base; real orgs add
/// per-licence calls).
pub const DEFAULT_DAILY_LIMIT: u64 = 100_000;

/// The per-second window the sandbox's `rps` is measured on.
const WINDOW: Duration = Duration::from_secs(1);

/// The org's API usage in the current 24-hour window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl Default for ApiUsage {
    fn default() -> Self {
        ApiUsage {
            used: 0,
            max: DEFAULT_DAILY_LIMIT,
        }
    }
}

fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::Unavailable => SfError::unavailable(),
        Fault::ServerError | Fault::Dropped => SfError::internal(),
    }
    .into_response()
}

fn limit_header(response: &mut Response, usage: ApiUsage) {
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={}/{}", usage.used, usage.max)) {
        response.headers_mut().insert("sforce-limit-info", v);
    }
}

/// Whether a path is an API call that counts against the allocation.
fn counts(path: &str) -> bool {
    path.strip_prefix("/services/data/")
        .is_some_and(|rest| !rest.trim_matches('/').is_empty())
}

/// Salesforce's gate; see the module comment.
pub(crate) async fn admit(
    state: &SandboxState,
    req: Request,
    next: Next,
) -> (Response, Option<Fault>) {
    let settings = &state.inner.settings;
    let Some(token) = limits::bearer(req.headers()).map(str::to_owned) else {
        return (SfError::invalid_session().into_response(), None);
    };
    if let Some(expected) = &settings.token
        && !limits::same_token(&token, expected)
    {
        return (SfError::invalid_session().into_response(), None);
    }
    let usage = if counts(req.uri().path()) {
        let mut sf = state.sf();
        if sf.usage.used >= sf.usage.max {
            let snapshot = sf.usage;
            drop(sf);
            let mut response = SfError::request_limit().into_response();
            limit_header(&mut response, snapshot);
            return (response, None);
        }
        sf.usage.used += 1;
        Some(sf.usage)
    } else {
        None
    };
    if let Some(rps) = settings.rps {
        loop {
            let a = state
                .limiter()
                .admit_within(&token, rps, WINDOW, Instant::now());
            if a.admitted {
                break;
            }
            if rps == 0 {
                // Nothing is ever admitted; don't spin. Served as an outage.
                return (SfError::unavailable().into_response(), None);
            }
            tokio::time::sleep(a.reset.max(Duration::from_millis(1))).await;
        }
    }
    let (mut response, fault) = limits::pass(state, req, next, fault_response).await;
    if let Some(usage) = usage {
        limit_header(&mut response, usage);
    }
    (response, fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_api_calls_count() {
        assert!(counts("/services/data/v62.0/query"));
        assert!(counts("/services/data/v62.0"));
        assert!(!counts("/services/data/"));
        assert!(!counts("/services/data"));
        assert!(!counts("/services/oauth2/userinfo"));
    }
}
