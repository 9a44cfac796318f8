//! The catalogue of every Prometheus metric offboard exports, and the one
//! process-wide recorder that renders them at `GET /metrics`.
//!
//! Metrics are emitted where things happen (`ingest/`, `store/`, `worker/`, `crm/`,
//! `http/`) with the `metrics` macros; this module only names them. [`FAMILIES`] lists each
//! family with its kind, labels and meaning: it gives the `# HELP` lines, the
//! histogram buckets, and it is what the README's metric table and
//! `tests/metrics.rs` are checked against, so a family can't appear or change
//! without being described.
//!
//! Rules every family keeps: the name starts with `offboard_` and carries its unit
//! (`_seconds`, `_total` for counters); label values come from small fixed sets
//! (states, outcomes, route and endpoint templates, configured source names) and
//! never from what a sender or the CRM chose: no e-mail, no id.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// What kind of series a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// A current value.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

impl Kind {
    /// The Prometheus `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Full name, `offboard_…`.
    pub name: &'static str,
    /// Counter, gauge or histogram: the `# TYPE` line, and which `metrics` macro
    /// the call sites must use.
    pub kind: Kind,
    /// Label names, in the order they are usually read.
    pub labels: &'static [&'static str],
    /// What it means (the `# HELP` text).
    pub help: &'static str,
}

/// `offboard_build_info` (see [`FAMILIES`] for its labels and meaning).
pub const BUILD_INFO: &str = "offboard_build_info";
/// `offboard_webhooks_total` (see [`FAMILIES`] for its labels and meaning).
pub const WEBHOOKS_TOTAL: &str = "offboard_webhooks_total";
/// `offboard_store_unavailable_total` (see [`FAMILIES`] for its labels and meaning).
pub const STORE_UNAVAILABLE_TOTAL: &str = "offboard_store_unavailable_total";
/// `offboard_scim_requests_total` (see [`FAMILIES`] for its labels and meaning).
pub const SCIM_REQUESTS_TOTAL: &str = "offboard_scim_requests_total";
/// `offboard_store_group_commits_total` (see [`FAMILIES`] for its labels and meaning).
pub const STORE_GROUP_COMMITS_TOTAL: &str = "offboard_store_group_commits_total";
/// `offboard_store_group_commit_requests_total` (see [`FAMILIES`] for its labels and meaning).
pub const STORE_GROUP_COMMIT_REQUESTS_TOTAL: &str = "offboard_store_group_commit_requests_total";
/// `offboard_store_pruned_jobs_total` (see [`FAMILIES`]).
pub const STORE_PRUNED_JOBS_TOTAL: &str = "offboard_store_pruned_jobs_total";
/// `offboard_http_request_duration_seconds` (see [`FAMILIES`] for its labels and meaning).
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "offboard_http_request_duration_seconds";
/// `offboard_jobs` (see [`FAMILIES`] for its labels and meaning).
pub const JOBS: &str = "offboard_jobs";
/// `offboard_job_transitions_total` (see [`FAMILIES`] for its labels and meaning).
pub const JOB_TRANSITIONS_TOTAL: &str = "offboard_job_transitions_total";
/// `offboard_queue_lag_seconds` (see [`FAMILIES`] for its labels and meaning).
pub const QUEUE_LAG_SECONDS: &str = "offboard_queue_lag_seconds";
/// `offboard_crm_request_duration_seconds` (see [`FAMILIES`] for its labels and meaning).
pub const CRM_REQUEST_DURATION_SECONDS: &str = "offboard_crm_request_duration_seconds";
/// `offboard_crm_rate_limit_waits_total` (see [`FAMILIES`] for its labels and meaning).
pub const CRM_RATE_LIMIT_WAITS_TOTAL: &str = "offboard_crm_rate_limit_waits_total";
/// `offboard_crm_pacing_wait_seconds` (see [`FAMILIES`] for its labels and meaning).
pub const CRM_PACING_WAIT_SECONDS: &str = "offboard_crm_pacing_wait_seconds";
/// `offboard_crm_allowed_requests_per_second` (see [`FAMILIES`] for its labels and meaning).
pub const CRM_ALLOWED_REQUESTS_PER_SECOND: &str = "offboard_crm_allowed_requests_per_second";
/// `offboard_crm_budget_slots_dropped_total` (see [`FAMILIES`] for its labels and meaning).
pub const CRM_BUDGET_SLOTS_DROPPED_TOTAL: &str = "offboard_crm_budget_slots_dropped_total";
/// `offboard_crm_budget_errors_total` (see [`FAMILIES`] for its labels and meaning).
pub const CRM_BUDGET_ERRORS_TOTAL: &str = "offboard_crm_budget_errors_total";
/// `offboard_crm_api_usage` (see [`FAMILIES`] for its labels and meaning).
pub const CRM_API_USAGE: &str = "offboard_crm_api_usage";
/// `offboard_crm_api_limit` (see [`FAMILIES`] for its labels and meaning).
pub const CRM_API_LIMIT: &str = "offboard_crm_api_limit";
/// Families that appear only once the CRM has reported them (Salesforce's
/// `Sforce-Limit-Info`). Every other family is exported from startup; these are
/// not, because a zero would claim a usage figure the CRM never gave.
pub const REPORTED_BY_CRM_ONLY: &[&str] = &[CRM_API_USAGE, CRM_API_LIMIT];
/// `offboard_records_reassigned_total` (see [`FAMILIES`] for its labels and meaning).
pub const RECORDS_REASSIGNED_TOTAL: &str = "offboard_records_reassigned_total";
/// `offboard_seats_total` (see [`FAMILIES`] for its labels and meaning).
pub const SEATS_TOTAL: &str = "offboard_seats_total";
/// `offboard_seats_pending_admin_action` (see [`FAMILIES`] for its labels and meaning).
pub const SEATS_PENDING_ADMIN_ACTION: &str = "offboard_seats_pending_admin_action";

/// `offboard_notifications_total` (see [`FAMILIES`] for its labels and meaning).
pub const NOTIFICATIONS_TOTAL: &str = "offboard_notifications_total";
/// `offboard_notifications_pending` (see [`FAMILIES`] for its labels and meaning).
pub const NOTIFICATIONS_PENDING: &str = "offboard_notifications_pending";

/// Buckets for request latencies (HTTP served and CRM calls), in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets for the time a CRM call waited for the shared rate budget, in seconds.
pub const PACING_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

/// Every family offboard exports.
pub const FAMILIES: &[Family] = &[
    Family {
        name: BUILD_INFO,
        kind: Kind::Gauge,
        labels: &["version"],
        help: "Always 1; the version label is the running build.",
    },
    Family {
        name: WEBHOOKS_TOTAL,
        kind: Kind::Counter,
        labels: &["source", "outcome"],
        help: "Webhook requests by configured source (or unknown) and outcome: accepted, duplicate, ping, challenge, bad_signature, stale, too_large, unreadable, unmappable, conflict, unknown_source, store_unavailable, store_error.",
    },
    Family {
        name: STORE_UNAVAILABLE_TOTAL,
        kind: Kind::Counter,
        labels: &["surface"],
        help: "Requests answered 503 store_unavailable because the store did not answer within [store] unavailable_after_ms or could not take writes, by surface: webhooks, scim, admin, console, readyz.",
    },
    Family {
        name: SCIM_REQUESTS_TOTAL,
        kind: Kind::Counter,
        labels: &["operation", "outcome"],
        help: "SCIM requests by operation (discovery, create, get, list, replace, patch, delete; auth for a request refused before it reached one) and outcome: ok, deprovisioned, reactivated, unauthorized, invalid, not_found, uniqueness, precondition_failed, store_unavailable, store_error.",
    },
    Family {
        name: STORE_GROUP_COMMITS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "SQLite transactions (one fsync each) that stored webhook requests as a group (0 on PostgreSQL).",
    },
    Family {
        name: STORE_GROUP_COMMIT_REQUESTS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Webhook requests stored through SQLite group commits; divided by offboard_store_group_commits_total, the mean group size.",
    },
    Family {
        name: STORE_PRUNED_JOBS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Finished jobs deleted by retention ([store] keep_finished_days), with their audit trail; their events stay as dedupe tombstones.",
    },
    Family {
        name: HTTP_REQUEST_DURATION_SECONDS,
        kind: Kind::Histogram,
        labels: &["route", "method", "status"],
        help: "HTTP requests served, by route template (unmatched for unknown paths), method and status code, with their latency.",
    },
    Family {
        name: JOBS,
        kind: Kind::Gauge,
        labels: &["state"],
        help: "Jobs in the store per state (read at scrape time; every replica reports the same shared store).",
    },
    Family {
        name: JOB_TRANSITIONS_TOTAL,
        kind: Kind::Counter,
        labels: &["to"],
        help: "Job runs ended by this process, by where they went: succeeded, scheduled, retry, needs_review, failed, cancelled, released.",
    },
    Family {
        name: QUEUE_LAG_SECONDS,
        kind: Kind::Gauge,
        labels: &[],
        help: "Age of the oldest job that is runnable now and not yet claimed (0 when none is waiting).",
    },
    Family {
        name: CRM_REQUEST_DURATION_SECONDS,
        kind: Kind::Histogram,
        labels: &["method", "endpoint", "status"],
        help: "CRM HTTP calls by method, endpoint template (e.g. /v2/users, /v2/deals/:id) and status code (timeout or error when no answer came), with their latency.",
    },
    Family {
        name: CRM_RATE_LIMIT_WAITS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Times the CRM answered 429 and the call waited before trying again.",
    },
    Family {
        name: CRM_PACING_WAIT_SECONDS,
        kind: Kind::Histogram,
        labels: &["lane"],
        help: "How long each CRM call waited for the shared request budget (rate and in-flight limit) before it was sent, by the lane it queued in (access, deals, records): in a mass layoff access waits least.",
    },
    Family {
        name: CRM_ALLOWED_REQUESTS_PER_SECOND,
        kind: Kind::Gauge,
        labels: &[],
        help: "The request rate the CRM budget currently allows (requests_per_second, lowered after 429s, recovering on success).",
    },
    Family {
        name: CRM_BUDGET_SLOTS_DROPPED_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Reserved shared-budget (PostgreSQL store) slots not used in time and dropped rather than sent late (0 on SQLite).",
    },
    Family {
        name: CRM_BUDGET_ERRORS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Permits the shared CRM budget (PostgreSQL store) could not take from the database; the process then paces alone (0 on SQLite).",
    },
    Family {
        name: CRM_API_USAGE,
        kind: Kind::Gauge,
        labels: &["crm"],
        help: "API calls the CRM org has used in its current allocation window, as the CRM's last answer reported it (Salesforce: Sforce-Limit-Info api-usage, rolling 24 hours).",
    },
    Family {
        name: CRM_API_LIMIT,
        kind: Kind::Gauge,
        labels: &["crm"],
        help: "The CRM org's API call allocation for that window, as the CRM's last answer reported it (Salesforce: Sforce-Limit-Info api-usage).",
    },
    Family {
        name: RECORDS_REASSIGNED_TOTAL,
        kind: Kind::Counter,
        labels: &["kind"],
        help: "CRM records moved to a new owner, by kind: leads, contacts, deals, tasks.",
    },
    Family {
        name: SEATS_TOTAL,
        kind: Kind::Counter,
        labels: &["action", "state"],
        help: "Seat changes by action (deactivate, delete) and state: requested (the admin was asked) or verified (the CRM shows it done).",
    },
    Family {
        name: SEATS_PENDING_ADMIN_ACTION,
        kind: Kind::Gauge,
        labels: &["action"],
        help: "Active jobs whose seat change was requested from the CRM admin and is not verified yet, by action (read at scrape time).",
    },
    Family {
        name: NOTIFICATIONS_TOTAL,
        kind: Kind::Counter,
        labels: &["channel", "outcome"],
        help: "Notification delivery attempts by this process, by channel (email, webhook) and outcome: delivered, retry (failed, tried again later), dead (failed and given up on).",
    },
    Family {
        name: NOTIFICATIONS_PENDING,
        kind: Kind::Gauge,
        labels: &["channel"],
        help: "Notifications in the outbox not delivered and not given up on yet, by channel (read at scrape time).",
    },
];

/// The family named `name`, if offboard exports it.
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}

/// The process-wide Prometheus recorder, installed on first use (also when many
/// apps run in one test process). Every later call returns the same handle.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> PrometheusHandle {
    let recorder = builder().build_recorder();
    let handle = recorder.handle();
    // Another recorder may already be installed (a test that brings its own); then
    // ours only renders what reaches it.
    let _ = ::metrics::set_global_recorder(recorder);
    for f in FAMILIES {
        let help = f.help;
        match f.kind {
            Kind::Counter => ::metrics::describe_counter!(f.name, help),
            Kind::Gauge => ::metrics::describe_gauge!(f.name, help),
            Kind::Histogram => ::metrics::describe_histogram!(f.name, help),
        }
    }
    ::metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Label-less counters exist from the start, so a rate() over them works before
    // the first event.
    ::metrics::counter!(CRM_RATE_LIMIT_WAITS_TOTAL).increment(0);
    ::metrics::counter!(STORE_GROUP_COMMITS_TOTAL).increment(0);
    ::metrics::counter!(STORE_GROUP_COMMIT_REQUESTS_TOTAL).increment(0);
    ::metrics::counter!(STORE_PRUNED_JOBS_TOTAL).increment(0);
    ::metrics::counter!(CRM_BUDGET_SLOTS_DROPPED_TOTAL).increment(0);
    ::metrics::counter!(CRM_BUDGET_ERRORS_TOTAL).increment(0);
    // A delivery alert must see 0 before it sees 1.
    for channel in ["email", "webhook"] {
        for outcome in ["delivered", "retry", "dead"] {
            ::metrics::counter!(NOTIFICATIONS_TOTAL, "channel" => channel, "outcome" => outcome)
                .increment(0);
        }
    }
    // An outage alert must see 0 before it sees 1.
    for surface in ["webhooks", "scim", "admin", "console", "readyz"] {
        ::metrics::counter!(STORE_UNAVAILABLE_TOTAL, "surface" => surface).increment(0);
    }
    handle
}

/// The exporter with offboard's buckets: histograms render as `_bucket` series
/// (aggregatable across replicas), not as per-process summaries.
fn builder() -> PrometheusBuilder {
    let mut builder = PrometheusBuilder::new();
    for f in FAMILIES.iter().filter(|f| f.kind == Kind::Histogram) {
        let buckets = if f.name == CRM_PACING_WAIT_SECONDS {
            PACING_BUCKETS
        } else {
            LATENCY_BUCKETS
        };
        let matcher = Matcher::Full(f.name.to_owned());
        // Only an empty bucket list is refused; the lists above are not empty.
        builder = match builder.set_buckets_for_metric(matcher, buckets) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        for f in FAMILIES {
            assert!(f.name.starts_with("offboard_"), "{}", f.name);
            match f.kind {
                Kind::Counter => assert!(f.name.ends_with("_total"), "{}", f.name),
                Kind::Histogram => assert!(f.name.ends_with("_seconds"), "{}", f.name),
                Kind::Gauge => assert!(!f.name.ends_with("_total"), "{}", f.name),
            }
            for l in f.labels {
                assert!(
                    !["email", "id", "job_id", "user_id", "event_id"].contains(l),
                    "{}: high-cardinality label {l}",
                    f.name
                );
            }
        }
        let mut names: Vec<_> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len(), "duplicate family");
    }
}
