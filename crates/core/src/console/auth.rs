//! Signing in and out, and the [`Signed`] extractor every other console handler
//! takes: a request without a valid session never reaches a page's code, it is
//! sent to the sign-in form (htmx's background requests get `HX-Redirect`, so the
//! whole page goes there rather than a fragment being swapped for the form).
//!
//! Sign-in compares the admin token in constant time, after the process-wide rate
//! limit, and answers a wrong one with the form again and no cookie. The cookie is
//! `HttpOnly`, `SameSite=Strict`, `Secure` unless `[console] insecure_cookie`, and
//! scoped to `/console`.

use axum::{
    Form,
    extract::{
        FromRequestParts, Query, State,
        rejection::{FormRejection, QueryRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use chrono::Duration as ChronoDuration;
use maud::{Markup, html};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{
    error::ConsoleError,
    layout::{NoticeKind, Shell, notice, page},
    session::{COOKIE, Session, SessionError, cookie_in},
    state::ConsoleState,
};

/// Where the sign-in form lives.
pub(crate) const SIGN_IN: &str = "/console/sign-in";

/// A request made in a valid session, with the session's CSRF token for the
/// forms its page renders.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    /// The session the cookie proves.
    pub session: Session,
    /// Its CSRF token.
    pub csrf: String,
}

impl Signed {
    /// `Ok` when `presented` is this session's CSRF token; otherwise the 403 that
    /// leaves everything as it was.
    pub fn check_csrf(
        &self,
        state: &ConsoleState,
        presented: Option<&str>,
    ) -> Result<(), ConsoleError> {
        match presented {
            Some(token) if state.keys.csrf_matches(&self.session, token) => Ok(()),
            _ => {
                tracing::warn!("console: a form came without its session's CSRF token; refused");
                Err(ConsoleError::Csrf)
            }
        }
    }

    /// The shell of a page in this session.
    pub fn shell(&self) -> Shell<'_> {
        Shell {
            csrf: Some(&self.csrf),
            refresh_without_js: None,
        }
    }
}

impl FromRequestParts<ConsoleState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        match session_of(&parts.headers, state) {
            Some(Ok(session)) => Ok(Self {
                csrf: state.keys.csrf(&session),
                session,
            }),
            other => {
                let target = match other {
                    Some(Err(SessionError::Expired)) => format!("{SIGN_IN}?expired=1"),
                    _ => SIGN_IN.to_owned(),
                };
                if parts.headers.contains_key("hx-request") {
                    let mut r = StatusCode::UNAUTHORIZED.into_response();
                    if let Ok(v) = HeaderValue::from_str(&target) {
                        r.headers_mut().insert("hx-redirect", v);
                    }
                    Err(r)
                } else {
                    Err(Redirect::to(&target).into_response())
                }
            }
        }
    }
}

/// The session the request's cookie proves: `None` without a cookie.
fn session_of(headers: &HeaderMap, state: &ConsoleState) -> Option<Result<Session, SessionError>> {
    let now = state.clock.now();
    let values: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .filter_map(|h| cookie_in(h, COOKIE))
        .collect();
    // A browser may send a stale cookie beside a fresh one: any valid one counts.
    let mut first_error = None;
    for value in values {
        match state.keys.verify(value, now) {
            Ok(s) => return Some(Ok(s)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map(Err)
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInQuery {
    expired: Option<String>,
    signed_out: Option<String>,
}

/// `GET /console/sign-in`: the form (or the overview, when already signed in).
pub(crate) async fn sign_in_page(
    State(state): State<ConsoleState>,
    query: Result<Query<SignInQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let q = query.ok().map_or(
        SignInQuery {
            expired: None,
            signed_out: None,
        },
        |Query(q)| q,
    );
    if let Some(Ok(_)) = session_of(&headers, &state) {
        return Redirect::to("/console").into_response();
    }
    let message = if q.expired.is_some() {
        Some((NoticeKind::Error, "Your session expired. Sign in again."))
    } else if q.signed_out.is_some() {
        Some((NoticeKind::Done, "You are signed out."))
    } else {
        None
    };
    (StatusCode::OK, sign_in_form(message)).into_response()
}

fn sign_in_form(message: Option<(NoticeKind, &str)>) -> Markup {
    let body = html! {
        @if let Some((kind, text)) = message { (notice(kind, text)) }
        form class="sign-in" method="post" action=(SIGN_IN) {
            label for="token" { "Admin token" }
            input id="token" name="token" type="password" autocomplete="current-password"
                required autofocus;
            button type="submit" { "Sign in" }
        }
        p class="hint" {
            "The token is the one the admin API takes (" code { "[admin] token_env" } "). "
            "The session lasts a few hours and works on every replica."
        }
    };
    page("Sign in", Shell::default(), body)
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInForm {
    token: Option<String>,
}

/// `POST /console/sign-in`: the token → a session cookie and the overview; a
/// wrong one → the form again with an error, and nothing set.
pub(crate) async fn sign_in(
    State(state): State<ConsoleState>,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    // Before the comparison: over the limit, no attempt is judged at all.
    if state.sign_in.check().is_err() {
        tracing::warn!("console: sign-in attempts over the limit; refused");
        let form = sign_in_form(Some((
            NoticeKind::Error,
            "Too many sign-in attempts. Wait a minute, then try again.",
        )));
        return (StatusCode::TOO_MANY_REQUESTS, form).into_response();
    }
    let presented = form.ok().and_then(|Form(f)| f.token).unwrap_or_default();
    let expected = state.token.expose().as_bytes();
    let right = !presented.is_empty() && bool::from(presented.trim().as_bytes().ct_eq(expected));
    if !right {
        tracing::warn!("console: sign-in with a wrong admin token");
        let form = sign_in_form(Some((
            NoticeKind::Error,
            "That is not the admin token. Nothing was signed in.",
        )));
        return (StatusCode::UNAUTHORIZED, form).into_response();
    }
    let lifetime = ChronoDuration::from_std(state.settings.session)
        .unwrap_or_else(|_| ChronoDuration::hours(8));
    let session = state.keys.issue(state.clock.now() + lifetime);
    let cookie = format!(
        "{COOKIE}={}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
        state.keys.cookie_value(&session),
        lifetime.num_seconds(),
        secure(&state),
    );
    tracing::info!("console: signed in");
    with_cookie(Redirect::to("/console").into_response(), &cookie)
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /console/sign-out`: the browser drops the cookie. Sessions are not
/// stored, so a copy of the cookie taken before stays valid until it expires;
/// changing the admin token ends every session at once.
pub(crate) async fn sign_out(
    State(state): State<ConsoleState>,
    signed: Signed,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let csrf = form.ok().and_then(|Form(f)| f.csrf);
    signed.check_csrf(&state, csrf.as_deref())?;
    let cookie = format!(
        "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        secure(&state)
    );
    tracing::info!("console: signed out");
    let to = format!("{SIGN_IN}?signed_out=1");
    Ok(with_cookie(Redirect::to(&to).into_response(), &cookie))
}

fn secure(state: &ConsoleState) -> &'static str {
    if state.settings.insecure_cookie {
        ""
    } else {
        "; Secure"
    }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
