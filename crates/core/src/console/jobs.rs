//! `GET /console/jobs`: every job, newest first, filtered by state, employee and
//! creation date, a page at a time (the store's `list_jobs` and its id cursor,
//! like `GET /api/v1/jobs`).

use axum::extract::{Query, State, rejection::QueryRejection};
use chrono::{NaiveDate, TimeZone, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    auth::Signed,
    error::ConsoleError,
    layout::page,
    state::ConsoleState,
    view::{Show, job_href, query_value, state_badge, state_label, time_tag},
};
use crate::{domain::JobState, store::JobFilter};

/// Jobs per page.
const PAGE: u32 = 50;

/// The filter form's fields; empty fields mean "any".
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    state: Option<String>,
    employee: Option<String>,
    /// `YYYY-MM-DD`: jobs created that day or later (UTC).
    since: Option<String>,
    /// The cursor: jobs older than this id.
    before: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ListQuery {
    fn filter(&self) -> Result<JobFilter, ConsoleError> {
        let state = non_empty(&self.state)
            .map(str::parse::<JobState>)
            .transpose()
            .map_err(|e| ConsoleError::BadRequest(format!("state: {e}")))?;
        let since = non_empty(&self.since)
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|e| {
                        ConsoleError::BadRequest(format!(
                            "created on or after: {e} (expected YYYY-MM-DD)"
                        ))
                    })
                    .map(|d| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)))
            })
            .transpose()?;
        Ok(JobFilter {
            state,
            employee: non_empty(&self.employee).map(str::to_lowercase),
            since,
            limit: Some(PAGE),
            before: non_empty(&self.before).map(str::to_owned),
        })
    }

    /// The query string of these filters (without the cursor), for paging links.
    fn filters_query(&self) -> String {
        [
            ("state", non_empty(&self.state)),
            ("employee", non_empty(&self.employee)),
            ("since", non_empty(&self.since)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", query_value(v))))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// `GET /console/jobs`
pub(crate) async fn list(
    State(state): State<ConsoleState>,
    signed: Signed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Markup, ConsoleError> {
    // A repeated or mistyped parameter is a page that says so, not axum's plain text.
    let Query(q) = query.map_err(|e| ConsoleError::BadRequest(e.body_text()))?;
    let filter = q.filter()?;
    let jobs = state.store.list_jobs(&filter).await?;
    let show = Show {
        redact: state.settings.redact_emails,
    };
    let filters = q.filters_query();
    let next = (jobs.len() == PAGE as usize)
        .then(|| jobs.last().map(|j| j.id.clone()))
        .flatten();
    let with = |extra: &str| {
        let parts: Vec<&str> = [filters.as_str(), extra]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            "/console/jobs".to_owned()
        } else {
            format!("/console/jobs?{}", parts.join("&"))
        }
    };
    let chosen = filter.state;
    let body = html! {
        form class="filters" method="get" action="/console/jobs" role="search" aria-label="Filter jobs" {
            label for="f-state" {
                "State"
                select id="f-state" name="state" {
                    option value="" selected[chosen.is_none()] { "any" }
                    @for s in JobState::ALL {
                        option value=(s.as_str()) selected[chosen == Some(s)] { (state_label(s)) }
                    }
                }
            }
            label for="f-employee" {
                "Employee e-mail"
                input id="f-employee" name="employee" type="email" autocomplete="off"
                    value=(non_empty(&q.employee).unwrap_or_default());
            }
            label for="f-since" {
                "Created on or after"
                input id="f-since" name="since" type="date"
                    value=(non_empty(&q.since).unwrap_or_default());
            }
            button type="submit" { "Filter" }
            a href="/console/jobs" { "Clear filters" }
        }
        @if jobs.is_empty() {
            p class="muted" { "No job matches." }
        } @else {
            table {
                caption class="muted" { "Newest first" }
                thead { tr { th { "Employee" } th { "State" } th { "Kind" } th { "Action" } th { "Created" } th { "Updated" } th { "Job" } } }
                tbody {
                    @for job in &jobs {
                        tr {
                            td { a href=(job_href(&job.id)) { (show.email(&job.employee_email)) } }
                            td { (state_badge(job.state)) }
                            td { (job.kind.as_str()) }
                            td { (job.action.as_deref().unwrap_or("-")) }
                            td { (time_tag(job.created_at)) }
                            td { (time_tag(job.updated_at)) }
                            td { code { (job.id) } }
                        }
                    }
                }
            }
        }
        nav class="pages" aria-label="Pages" {
            @if non_empty(&q.before).is_some() {
                a href=(with("")) { "Newest jobs" }
            }
            @if let Some(last) = &next {
                a href=(with(&format!("before={}", query_value(last)))) rel="next" { "Older jobs" }
            }
        }
    };
    Ok(page("Jobs", signed.shell(), body))
}
