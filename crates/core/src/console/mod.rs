//! The ops console (DESIGN.md §11): server-rendered pages under `/console` on the
//! receiver's port, for the people who run offboard. They see what waits for
//! them, follow a job, and approve, retry or cancel it.
//!
//! Each file has one job: [`session`] signs and checks session cookies and CSRF
//! tokens (no IO), [`auth`] signs in and out and is the extractor every page
//! takes, [`headers`] puts the security headers on every response, [`overview`],
//! [`jobs`] and [`job`] are the pages, [`actions`] the buttons, confirmations and
//! POSTs, [`layout`] the page shell, [`view`] how values are shown (and redacted),
//! [`assets`] the stylesheet and vendored htmx, [`error`] the error pages and
//! [`missing`] the 404 for unknown paths, [`state`] what they share. This file
//! only declares them and composes the router.
//!
//! Architecture invariants:
//! - no page or action without a session: every handler but the sign-in form and
//!   the static assets takes [`auth::Signed`];
//! - no POST changes anything without the session's CSRF token, checked before
//!   the store is called;
//! - the console has no rules of its own: which actions a state allows, and what
//!   they do, is the store's (`OperatorAction`, `JobStore::approve` …);
//! - it reads the store and nothing else: no CRM, no worker, no ingest (checked by
//!   `tests/layers.rs`);
//! - every value shown is escaped (maud) and e-mails follow `[privacy]`.

mod actions;
mod assets;
mod auth;
mod error;
mod headers;
mod job;
mod jobs;
mod layout;
mod missing;
mod overview;
mod session;
mod state;
mod view;

pub use state::{ConsoleSettings, ConsoleState};

use axum::{
    Router, middleware,
    routing::{get, post},
};

/// The `/console` routes, each answered with the security headers.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(overview::overview))
        .route(auth::SIGN_IN, get(auth::sign_in_page).post(auth::sign_in))
        .route("/console/sign-out", post(auth::sign_out))
        .route("/console/jobs", get(jobs::list))
        .route("/console/jobs/{id}", get(job::page_of))
        .route("/console/jobs/{id}/live", get(job::live_part))
        .route(
            "/console/jobs/{id}/{action}",
            get(actions::confirm).post(actions::perform),
        )
        .route("/console/assets/console.css", get(assets::css))
        .route("/console/assets/htmx.min.js", get(assets::htmx))
        .route("/console/{*rest}", get(missing::no_such_page))
        .layer(middleware::map_response(headers::secure))
        .with_state(state)
}
