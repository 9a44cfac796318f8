//! `GET /console/jobs/{id}`: one job. The event, the decision (rule, guards,
//! assumptions) and plan, the live part (state, progress per resource, the seat
//! step, the buttons), the audit trail as a timeline, and the CRM calls.
//!
//! The live part is also served alone (`GET /console/jobs/{id}/live`): while the
//! job still moves, htmx swaps it in every `[console] refresh_secs`, and without
//! JavaScript a `<noscript>` refresh reloads the page. A settled job's live part
//! carries no polling, so refreshing stops by itself.

use axum::extract::{Path, Query, State, rejection::QueryRejection};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::{
    actions,
    auth::Signed,
    error::ConsoleError,
    layout::{NoticeKind, Shell, notice, page},
    state::ConsoleState,
    view::{Show, age, is_moving, job_href, state_badge, time_tag},
};
use crate::{
    domain::{JobState, Resource},
    policy::Decision,
    store::{AuditEntry, JobDetail},
};

/// CRM calls listed (the latest ones); the page says how many there were in all.
const CALL_ROWS: usize = 200;

/// The audit kind of one CRM HTTP call (`worker/runner.rs` writes it).
const CRM_CALL: &str = "crm.call";

/// The checkpoints the live part reads (keys frozen by `worker/checkpoint.rs`).
const SEAT_REQUESTED: &str = "seat_requested_at";
const ADMIN_TASK: &str = "admin_task_id";
const TARGET: &str = "target";

/// One resource's reassignment progress, as checkpointed under
/// `reassign.<resource>` (only the fields shown; the shape is frozen).
#[derive(Debug, Default, Deserialize)]
struct Progress {
    #[serde(default)]
    moved: u64,
    #[serde(default)]
    skipped: u64,
    #[serde(default)]
    left: u64,
    #[serde(default)]
    done: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct JobQuery {
    /// Set by the redirect after an action: which one went through.
    done: Option<String>,
}

async fn load(state: &ConsoleState, id: &str) -> Result<JobDetail, ConsoleError> {
    state
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no job {id}")))
}

/// `GET /console/jobs/{id}`
pub(crate) async fn page_of(
    State(state): State<ConsoleState>,
    signed: Signed,
    Path(id): Path<String>,
    query: Result<Query<JobQuery>, QueryRejection>,
) -> Result<Markup, ConsoleError> {
    // The query only carries the notice after an action: a bad one just shows none.
    let q = query.ok().map_or(JobQuery { done: None }, |Query(q)| q);
    let detail = load(&state, &id).await?;
    let job = &detail.job;
    let show = Show {
        redact: state.settings.redact_emails,
    };
    let now = state.clock.now();
    let who = show.email(&job.employee_email);
    let decision = job
        .plan
        .as_ref()
        .and_then(|p| serde_json::from_value::<Decision>(p.clone()).ok());
    let (calls, timeline): (Vec<&AuditEntry>, Vec<&AuditEntry>) =
        detail.audit.iter().partition(|a| a.kind == CRM_CALL);
    let event = &job.event;
    let body = html! {
        @if let Some(text) = q.done.as_deref().and_then(actions::done_message) {
            (notice(NoticeKind::Done, text))
        }
        dl class="facts" {
            dt { "Job" } dd { code { (job.id) } }
            dt { "Kind" } dd { (job.kind.as_str()) }
            dt { "Employee" } dd { (who) }
            dt { "Source" } dd { (job.source) " · event " code { (job.event_id) } }
            dt { "Created" } dd { (time_tag(job.created_at)) }
            @if let Some(parent) = &job.parent_id {
                dt { "Follow-up of" } dd { a href=(job_href(parent)) { code { (parent) } } }
            }
            @if job.approved {
                dt { "Approved" } dd { "yes, by an operator" }
            }
        }
        (live(&state, &detail, now))
        section aria-labelledby="event" {
            h2 id="event" { "Event" }
            dl class="facts" {
                dt { "Type" } dd { (event.event_type.as_str()) }
                dt { "Name" } dd { (event.employee.name.as_deref().map(|n| show.text(n)).unwrap_or_else(|| "-".into())) }
                dt { "E-mail" } dd { (who) }
                @if let Some(m) = &event.employee.manager_email {
                    dt { "Manager" } dd { (show.email(m.as_str())) }
                }
                @if let Some(d) = &event.employee.department {
                    dt { "Department" } dd { (show.text(d)) }
                }
                @if let Some(c) = &event.employee.country {
                    dt { "Country" } dd { (show.text(c)) }
                }
                @if let Some(t) = &event.termination {
                    @if let Some(k) = t.kind { dt { "Termination" } dd { (k.as_str()) } }
                    @if let Some(at) = t.effective_at { dt { "Effective" } dd { (time_tag(at)) } }
                    @if let Some(r) = t.rehire_eligible { dt { "Rehire eligible" } dd { (if r { "yes" } else { "no" }) } }
                    @if let Some(r) = &t.reason { dt { "Reason" } dd { (show.text(r)) } }
                }
                dt { "Legal hold" } dd { (if event.legal_hold { "yes" } else { "no" }) }
            }
            details {
                summary { "The event as stored" }
                pre { (show.json_pretty(&serde_json::to_value(event).unwrap_or_default())) }
            }
        }
        section aria-labelledby="decision" {
            h2 id="decision" { "Decision" }
            @match (&decision, &job.plan) {
                (Some(d), _) => (decision_view(d, show)),
                (None, Some(plan)) => {
                    p { "The stored plan is not a decision this version reads; as stored:" }
                    pre { (show.json_pretty(plan)) }
                }
                (None, None) => p class="muted" { "Not decided yet: the first run decides." },
            }
        }
        section aria-labelledby="timeline" {
            h2 id="timeline" { "Audit trail (" (timeline.len()) " entries)" }
            @if timeline.is_empty() {
                p class="muted" { "Nothing recorded yet." }
            } @else {
                ol class="timeline" {
                    @for a in &timeline {
                        li {
                            (time_tag(a.at)) " "
                            span class="kind" { (a.kind) }
                            span class="detail mono" { (show.json(&a.detail)) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="calls" {
            h2 id="calls" { "CRM calls (" (calls.len()) ")" }
            @if calls.is_empty() {
                p class="muted" { "No call to the CRM yet." }
            } @else {
                @if calls.len() > CALL_ROWS {
                    p class="muted" { "The latest " (CALL_ROWS) " of " (calls.len()) "." }
                }
                table {
                    thead { tr { th { "At" } th { "Method" } th { "Path" } th class="num" { "Status" } th class="num" { "ms" } th { "Error" } } }
                    tbody {
                        @for a in calls.iter().skip(calls.len().saturating_sub(CALL_ROWS)) {
                            @let d = &a.detail;
                            tr {
                                td { (time_tag(a.at)) }
                                td { (text_of(d, "method")) }
                                td class="mono" { (show.text(&text_of(d, "path"))) }
                                td class="num" { (text_of(d, "status")) }
                                td class="num" { (text_of(d, "duration_ms")) }
                                td { (show.text(&text_of(d, "error"))) }
                            }
                        }
                    }
                }
            }
        }
        p { a href="/console/jobs" { "All jobs" } }
    };
    let shell = Shell {
        refresh_without_js: is_moving(job.state).then_some(state.settings.refresh_secs),
        ..signed.shell()
    };
    Ok(page(&format!("Job of {who}"), shell, body))
}

/// `GET /console/jobs/{id}/live`: the live part alone, for htmx.
pub(crate) async fn live_part(
    State(state): State<ConsoleState>,
    _signed: Signed,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let detail = load(&state, &id).await?;
    Ok(live(&state, &detail, state.clock.now()))
}

/// State, progress per resource, the seat step and the buttons: what changes
/// while a job runs.
fn live(state: &ConsoleState, detail: &JobDetail, now: DateTime<Utc>) -> Markup {
    let job = &detail.job;
    let show = Show {
        redact: state.settings.redact_emails,
    };
    let cp = &detail.checkpoints;
    let progress: Vec<(Resource, Progress)> = Resource::ALL
        .into_iter()
        .filter_map(|r| {
            let v = cp.get(&format!("reassign.{r}"))?;
            Some((r, serde_json::from_value(v.clone()).unwrap_or_default()))
        })
        .collect();
    let requested = cp
        .get(SEAT_REQUESTED)
        .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok());
    let verified = detail.audit.iter().any(|a| a.kind == "seat.verified");
    let moving = is_moving(job.state);
    let poll = moving.then(|| {
        (
            format!("{}/live", job_href(&job.id)),
            format!("every {}s", state.settings.refresh_secs),
        )
    });
    let who = show.email(&job.employee_email);
    html! {
        section id="live" aria-labelledby="now" aria-live="polite"
            hx-get=[poll.as_ref().map(|p| &p.0)] hx-trigger=[poll.as_ref().map(|p| &p.1)]
            hx-swap=[poll.as_ref().map(|_| "outerHTML")] {
            h2 id="now" { "Now" }
            dl class="facts" {
                dt { "State" } dd { (state_badge(job.state)) @if moving { " " span class="muted" { "(refreshes by itself)" } } }
                dt { "Attempt" } dd { (job.attempt) " · failures " (job.failures) " of " (job.max_attempts) }
                @if moving {
                    dt { "Next run" } dd { (time_tag(job.run_at)) }
                }
                dt { "Action" } dd { (job.action.as_deref().unwrap_or("not decided yet")) }
                @if let (Some(e), Some(what)) = (&job.last_error, error_label(job.state)) {
                    dt { (what) } dd { (show.text(e)) }
                }
                @if let Some(t) = cp.get(TARGET) {
                    dt { "Records go to" } dd { (t.get("email").and_then(Value::as_str).map(|e| show.email(e)).unwrap_or_else(|| show.json(t))) }
                }
                dt { "Seat" } dd {
                    @match (requested, verified) {
                        (_, true) => "the CRM shows the change (verified)",
                        (Some(at), false) => {
                            "asked of the CRM admin at " (time_tag(at)) ", waiting for " (age(now, at))
                            @if let Some(task) = cp.get(ADMIN_TASK) { " (task " code { (show.json(task)) } ")" }
                        }
                        (None, false) if moving => "not requested yet",
                        (None, false) => "no seat change was requested",
                    }
                }
                dt { "Updated" } dd { (time_tag(job.updated_at)) }
            }
            @if !progress.is_empty() {
                table {
                    caption class="muted" { "Records per resource, this job" }
                    thead { tr { th { "Resource" } th class="num" { "Moved" } th class="num" { "Skipped (gone)" } th class="num" { "Left (closed)" } th { "Done" } } }
                    tbody {
                        @for (r, p) in &progress {
                            tr {
                                td { (r.as_str()) }
                                td class="num" { (p.moved) }
                                td class="num" { (p.skipped) }
                                td class="num" { (p.left) }
                                td { (if p.done { "yes" } else { "in progress" }) }
                            }
                        }
                    }
                }
            }
            (actions::buttons(&job.id, job.state, &who))
        }
    }
}

/// What `last_error` means in `state`; `None` once the job succeeded (an
/// approval or a retry keeps the old text, which no longer says anything).
fn error_label(state: JobState) -> Option<&'static str> {
    match state {
        JobState::NeedsReview => Some("Why it waits"),
        JobState::Failed => Some("Error"),
        JobState::Cancelled => Some("Why it stopped"),
        JobState::Queued | JobState::Running | JobState::Scheduled => Some("Last problem"),
        JobState::Succeeded => None,
    }
}

fn decision_view(d: &Decision, show: Show) -> Markup {
    html! {
        dl class="facts" {
            dt { "Rule" } dd { (d.rule) }
            dt { "Action" } dd {
                (d.action.as_str())
                @if d.action != d.rule_action { " (the rule said " (d.rule_action.as_str()) "; a guard changed it)" }
            }
            dt { "When" } dd {
                @match d.run_at {
                    Some(at) => { (time_tag(at)) }
                    None => { "now" }
                }
            }
            @if let Some(at) = d.delete_at {
                dt { "Delete after" } dd { (time_tag(at)) }
            }
            dt { "Records to" } dd { (show.text(&d.reassign_to.to_string())) }
            dt { "Resources" } dd {
                (d.reassign.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))
                @if d.open_only { " (open records only)" }
            }
            @if let Some(r) = &d.review_reason {
                dt { "Review because" } dd { (show.text(r)) }
            }
            @if !d.notify.is_empty() {
                dt { "Notify" } dd { (d.notify.iter().map(|e| show.email(e)).collect::<Vec<_>>().join(", ")) }
            }
            dt { "Policy version" } dd { code { (d.policy_version) } }
        }
        h3 { "Guards" }
        table {
            thead { tr { th { "Guard" } th { "Changed the decision" } th { "Why" } } }
            tbody {
                @for g in &d.guards {
                    tr {
                        td { code { (g.guard) } }
                        td { (if g.changed { "yes" } else { "no" }) }
                        td { (show.text(&g.detail)) }
                    }
                }
            }
        }
        @if !d.assumptions.is_empty() {
            h3 { "Assumed (facts the CRM did not give)" }
            ul { @for a in &d.assumptions { li { (show.text(a)) } } }
        }
    }
}

/// A field of an audit detail as text ("" when absent).
fn text_of(detail: &Value, key: &str) -> String {
    match detail.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
