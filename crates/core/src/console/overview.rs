//! `GET /console`: what needs a person now. Jobs per state, the `needs_review`
//! queue with each job's reason, the seats waiting for a CRM admin and for how
//! long, and the latest failures with their error.

use axum::extract::State;
use maud::{Markup, html};

use super::{
    actions,
    auth::Signed,
    error::ConsoleError,
    layout::page,
    state::ConsoleState,
    view::{Show, age, job_href, state_badge, state_label, time_tag},
};
use crate::{domain::JobState, store::JobFilter};

/// Rows of the review queue shown (the job list pages through the rest).
const REVIEW_ROWS: u32 = 50;
/// Latest failures shown.
const FAILURE_ROWS: u32 = 10;
/// Waiting seats shown.
const SEAT_ROWS: u32 = 100;

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
    let mut seats = store.seat_waits(SEAT_ROWS).await?;
    seats.sort_by_key(|w| w.requested_at);

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
                                td { (time_tag(w.requested_at)) }
                                td { (age(now, w.requested_at)) }
                                td { @if let Some(t) = &w.admin_task { code { (show.json(t)) } } @else { "-" } }
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
