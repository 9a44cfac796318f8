//! "Approve", "Retry" and "Cancel": the buttons, the confirmation page each one
//! leads to, and the POST that does it. Which buttons a job gets is asked of the
//! store's own table ([`OperatorAction::allowed_in`]), and the POST goes through
//! the same store call as the admin API and the CLI (`JobStore::approve` …, with
//! [`Via::Console`] in its audit entry): the console has no rules of its own.
//!
//! A button is a GET form to the confirmation page, so nothing changes on one
//! click and no script is needed; the page's POST form carries the session's CSRF
//! token, and a POST without it (or with another session's) is a 403 that changes
//! nothing.

use axum::{
    Form,
    extract::{Path, State, rejection::FormRejection},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    auth::Signed,
    error::ConsoleError,
    layout::page,
    state::ConsoleState,
    view::{Show, job_href, path_segment, state_badge},
};
use crate::{
    domain::JobState,
    store::{Job, OperatorAction, Via},
};

/// The longest cancellation reason kept (the rest is cut).
const MAX_REASON: usize = 500;

/// The button's label, as DESIGN.md §11 names them.
pub(crate) fn label(action: OperatorAction) -> &'static str {
    match action {
        OperatorAction::Approve => "Approve",
        OperatorAction::Retry => "Retry",
        OperatorAction::Cancel => "Cancel",
    }
}

/// The buttons the job's state allows, each leading to its confirmation;
/// `whose` says in the accessible name which job a row's button is for.
pub(crate) fn buttons(id: &str, state: JobState, whose: &str) -> Markup {
    html! {
        div class="actions" {
            @for action in OperatorAction::ALL.into_iter().filter(|a| a.allowed_in(state)) {
                form method="get" action=(confirm_href(id, action)) {
                    button type="submit" class=(button_class(action))
                        aria-label={ (label(action)) " the job of " (whose) } {
                        (label(action))
                    }
                }
            }
        }
    }
}

fn button_class(action: OperatorAction) -> &'static str {
    match action {
        OperatorAction::Approve => "primary",
        OperatorAction::Retry => "",
        OperatorAction::Cancel => "danger",
    }
}

fn confirm_href(id: &str, action: OperatorAction) -> String {
    format!("/console/jobs/{}/{}", path_segment(id), action.as_str())
}

/// What each action does, said before it is done.
fn consequence(action: OperatorAction, job: &Job) -> String {
    let seat = job.action.as_deref().unwrap_or("the planned action");
    match action {
        OperatorAction::Approve => format!(
            "The job goes back to the queue with your approval: it passes the guard or hourly cap that stopped it and carries out its {seat}. A deletion cannot be undone."
        ),
        OperatorAction::Retry => "The job goes back to the queue now, with its failure count reset, and resumes from its checkpoints.".to_owned(),
        OperatorAction::Cancel => "The job stops for good: nothing more is done in the CRM. What it already did stays done.".to_owned(),
    }
}

fn parse_action(raw: &str) -> Result<OperatorAction, ConsoleError> {
    raw.parse()
        .map_err(|_| ConsoleError::NotFound(format!("no such action {raw:?}")))
}

/// `GET /console/jobs/{id}/{action}`: what the action will do, and the POST form
/// that does it (or why it no longer can).
pub(crate) async fn confirm(
    State(state): State<ConsoleState>,
    signed: Signed,
    Path((id, action)): Path<(String, String)>,
) -> Result<Markup, ConsoleError> {
    let action = parse_action(&action)?;
    let detail = state
        .store
        .get_job(&id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no job {id}")))?;
    let job = &detail.job;
    let show = Show {
        redact: state.settings.redact_emails,
    };
    let who = show.email(&job.employee_email);
    let allowed = action.allowed_in(job.state);
    let title = format!("{} this job?", label(action));
    let body = html! {
        section class="confirm" aria-labelledby="confirm-what" {
            h2 id="confirm-what" { (label(action)) " the " (job.kind.as_str()) " job of " (who) }
            dl class="facts" {
                dt { "Job" } dd { a href=(job_href(&job.id)) { code { (job.id) } } }
                dt { "State" } dd { (state_badge(job.state)) }
                dt { "Action" } dd { (job.action.as_deref().unwrap_or("not decided yet")) }
                @if let Some(reason) = &job.last_error {
                    dt { "Reason" } dd { (show.text(reason)) }
                }
            }
            @if allowed {
                p { (consequence(action, job)) }
                form method="post" action=(confirm_href(&job.id, action)) {
                    input type="hidden" name="csrf" value=(signed.csrf);
                    @if action == OperatorAction::Cancel {
                        p {
                            label for="reason" { "Reason (kept in the audit trail, optional)" }
                            textarea id="reason" name="reason" rows="2" maxlength=(MAX_REASON) {}
                        }
                    }
                    div class="actions" {
                        button type="submit" class=(button_class(action)) {
                            "Yes, " (label(action).to_lowercase())
                        }
                        a class="button" href=(job_href(&job.id)) { "No, back to the job" }
                    }
                }
            } @else {
                p class="notice notice-error" role="alert" {
                    "A " (job.state.as_str()) " job cannot be " (past(action)) "."
                }
                p { a href=(job_href(&job.id)) { "Back to the job" } }
            }
        }
    };
    Ok(page(&title, signed.shell(), body))
}

fn past(action: OperatorAction) -> &'static str {
    match action {
        OperatorAction::Approve => "approved",
        OperatorAction::Retry => "retried",
        OperatorAction::Cancel => "cancelled",
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActionForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// `POST /console/jobs/{id}/{action}`: checks the CSRF token before anything
/// else, does the action through the store (audited `via: console`), and sends
/// the browser back to the job page with what happened.
pub(crate) async fn perform(
    State(state): State<ConsoleState>,
    signed: Signed,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let form = form.ok().map(|Form(f)| f);
    signed.check_csrf(&state, form.as_ref().and_then(|f| f.csrf.as_deref()))?;
    let action = parse_action(&action)?;
    let store = &state.store;
    let job = match action {
        OperatorAction::Approve => store.approve(&id, Via::Console).await?,
        OperatorAction::Retry => store.retry(&id, Via::Console).await?,
        OperatorAction::Cancel => {
            let said = form
                .as_ref()
                .and_then(|f| f.reason.as_deref())
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| r.chars().take(MAX_REASON).collect::<String>());
            let reason = match said {
                Some(r) => format!("cancelled by operator (console): {r}"),
                None => "cancelled by operator (console)".to_owned(),
            };
            store.cancel(&id, &reason, Via::Console).await?
        }
    };
    tracing::info!(job_id = %job.id, action = action.as_str(), state = job.state.as_str(), "console: operator action");
    let to = format!("{}?done={}", job_href(&job.id), action.as_str());
    Ok(Redirect::to(&to).into_response())
}

/// The line the job page shows after an action went through.
pub(crate) fn done_message(done: &str) -> Option<&'static str> {
    match done.parse::<OperatorAction>().ok()? {
        OperatorAction::Approve => {
            Some("You approved this job: it went back to the queue to proceed.")
        }
        OperatorAction::Retry => Some(
            "You retried this job: it went back to the queue and resumes from its checkpoints.",
        ),
        OperatorAction::Cancel => Some("You cancelled this job: nothing more will be done for it."),
    }
}
