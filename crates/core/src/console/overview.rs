//! `GET /console`: what needs a person now. Jobs per state, the `needs_review`
//! queue with each job's reason, the seats waiting for a CRM admin and for how
//! long, and the latest failures with their error.

use axum::extract::State;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    actions,
    auth::Signed,
    error::ConsoleError,
    layout::page,
    state::ConsoleState,
    view::{Show, age, job_href, state_badge, state_label, time_tag},
};
use crate::{
    domain::JobState,
    store::{Job, JobFilter},
};

/// Rows of the review queue shown (the job list pages through the rest).
const REVIEW_ROWS: u32 = 50;
/// Latest failures shown.
const FAILURE_ROWS: u32 = 10;
/// Jobs looked at for a requested, unverified seat change: verification polls
/// run as `scheduled` (or briefly `queued`/`running`) jobs.
const SEAT_CANDIDATES: u32 = 50;

/// The checkpoint the seat step writes when it asks the CRM's admin (the key is
/// frozen: `worker/checkpoint.rs` `SEAT_REQUESTED`; the store's seat metric reads
/// it by the same name).
const SEAT_REQUESTED: &str = "seat_requested_at";
/// The admin task's id in the CRM, checkpointed once the task exists.
const ADMIN_TASK: &str = "admin_task_id";

/// A seat change the CRM's admin was asked for and the CRM does not show yet.
struct SeatWait {
    job: Job,
    since: DateTime<Utc>,
    task: Option<Value>,
}

/// `GET /console`
pub(crate) async fn overview(
    State(state): State<ConsoleState>,
    signed: Signed,
) -> Result<Markup, ConsoleError> {
    let store = &state.store;
    let now = state.clock.now();
    let show = Show {
        redact: state.settings.redact_emails,
    };
    let counts = store.count_by_state().await?;
    let review = store
        .list_jobs(&in_state(JobState::NeedsReview, REVIEW_ROWS))
        .await?;
    let failed = store
        .list_jobs(&in_state(JobState::Failed, FAILURE_ROWS))
        .await?;
    let seats = seat_waits(&state).await?;

    let body = html! {
        section aria-labelledby="counts" {
            h2 id="counts" { "Jobs per state" }
            ul class="counts" {
                @for s in JobState::ALL {
                    li {
                        a href={ "/console/jobs?state=" (s.as_str()) } {
                            span class="n" { (counts.get(&s).copied().unwrap_or(0)) }
                            (state_label(s))
                        }
                    }
                }
            }
        }
        section aria-labelledby="review" {
            h2 id="review" { "Waiting for review (" (review.len()) ")" }
            @if review.is_empty() {
                p class="muted" { "Nothing waits for a person." }
            } @else {
                table {
                    caption class="muted" { "Jobs a person must approve, retry or cancel, newest first" }
                    thead { tr { th { "Employee" } th { "Action" } th { "Why it waits" } th { "Since" } th { "Decide" } } }
                    tbody {
                        @for job in &review {
                            @let who = show.email(&job.employee_email);
                            tr {
                                td { a href=(job_href(&job.id)) { (who) } }
                                td { (job.action.as_deref().unwrap_or("-")) }
                                td { (job.last_error.as_deref().map(|e| show.text(e)).unwrap_or_default()) }
                                td { (time_tag(job.updated_at)) }
                                td { (actions::buttons(&job.id, job.state, &who)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="seats" {
            h2 id="seats" { "Seats waiting for the CRM admin (" (seats.len()) ")" }
            @if seats.is_empty() {
                p class="muted" { "No seat change is waiting for the CRM's admin." }
            } @else {
                table {
                    caption class="muted" { "Asked of the admin by a CRM task; offboard checks until the CRM shows the change. Longest wait first." }
                    thead { tr { th { "Employee" } th { "Change" } th { "Asked at" } th { "Waiting for" } th { "Admin task" } th { "State" } } }
                    tbody {
                        @for w in &seats {
                            tr {
                                td { a href=(job_href(&w.job.id)) { (show.email(&w.job.employee_email)) } }
                                td { (w.job.action.as_deref().unwrap_or("-")) }
                                td { (time_tag(w.since)) }
                                td { (age(now, w.since)) }
                                td { @if let Some(t) = &w.task { code { (show.json(t)) } } @else { "-" } }
                                td { (state_badge(w.job.state)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="failures" {
            h2 id="failures" { "Recent failures" }
            @if failed.is_empty() {
                p class="muted" { "No job has failed." }
            } @else {
                table {
                    thead { tr { th { "Employee" } th { "Error" } th { "Failed at" } th { "Decide" } } }
                    tbody {
                        @for job in &failed {
                            @let who = show.email(&job.employee_email);
                            tr {
                                td { a href=(job_href(&job.id)) { (who) } }
                                td { (job.last_error.as_deref().map(|e| show.text(e)).unwrap_or_default()) }
                                td { (time_tag(job.updated_at)) }
                                td { (actions::buttons(&job.id, job.state, &who)) }
                            }
                        }
                    }
                }
                p { a href="/console/jobs?state=failed" { "All failed jobs" } }
            }
        }
    };
    Ok(page("Overview", signed.shell(), body))
}

fn in_state(state: JobState, limit: u32) -> JobFilter {
    JobFilter {
        state: Some(state),
        limit: Some(limit),
        ..JobFilter::default()
    }
}

/// Active jobs with a requested seat change, longest waiting first. Read from
/// each candidate's checkpoints: the store counts these (`seats_pending`, for the
/// metric) but lists them only as jobs.
async fn seat_waits(state: &ConsoleState) -> Result<Vec<SeatWait>, ConsoleError> {
    let mut candidates = Vec::new();
    for s in [JobState::Scheduled, JobState::Queued, JobState::Running] {
        candidates.extend(state.store.list_jobs(&in_state(s, SEAT_CANDIDATES)).await?);
    }
    let mut waits = Vec::new();
    for job in candidates {
        let Some(detail) = state.store.get_job(&job.id).await? else {
            continue;
        };
        let since = detail
            .checkpoints
            .get(SEAT_REQUESTED)
            .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok());
        if let Some(since) = since {
            waits.push(SeatWait {
                task: detail.checkpoints.get(ADMIN_TASK).cloned(),
                job: detail.job,
                since,
            });
        }
    }
    waits.sort_by_key(|w| w.since);
    Ok(waits)
}
