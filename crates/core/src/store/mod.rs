//! Durable events and jobs behind one [`JobStore`] trait.
//!
//! [`sqlite`] is the embedded default (WAL, `synchronous=FULL`, one writer with
//! `BEGIN IMMEDIATE`, group commit for concurrent ingests); [`postgres`] satisfies
//! the same trait for scale-out (many receivers and workers on one database).
//! [`open`] picks one from the URL scheme.
//! [`postgres_budget`] is the one thing here that is not a queue: the CRM rate budget
//! that replicas share through the database ([`JobStore::shared_crm_budget`]).
//! `tests/store_conformance.rs` runs one suite against both, so "the same semantics"
//! is checked, not hoped for. Only this folder contains SQL. Rows are parsed back into
//! domain types when read: stored data is input too.
//!
//! Invariants every implementation keeps:
//! - an event and its job(s) are stored in one transaction, before any 2xx;
//! - `(source, event_id)` is unique; the same id with another body is a conflict;
//! - every write a worker makes for a job is fenced by its [`Lease`] (owner + attempt),
//!   so a worker whose lease expired cannot overwrite a newer attempt;
//! - at most one job per employee e-mail is `running` at a time.

pub mod postgres;
pub mod postgres_budget;
pub mod sqlite;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::{
    config::StoreConfig,
    crm::pacing::{BudgetSettings, RateBudget},
    domain::{JobKind, JobState, OffboardingEvent},
};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The lease this write was fenced by is no longer held (expired, cancelled,
    /// or a newer attempt took over).
    #[error("lease lost for job {0}")]
    LeaseLost(String),
    /// No such job.
    #[error("no job {0}")]
    NotFound(String),
    /// The operation does not apply in the job's current state.
    #[error("job {id} is {state}: cannot {op}")]
    WrongState {
        #[allow(missing_docs)]
        id: String,
        #[allow(missing_docs)]
        state: JobState,
        #[allow(missing_docs)]
        op: &'static str,
    },
    /// A stored row no longer parses.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The shared transaction this request was grouped into failed to commit, so
    /// nothing of it was stored (every request in the group gets this error).
    #[error("group commit: {0}")]
    GroupCommit(Arc<StoreError>),
}

/// A verified, mapped event ready to be stored with its job.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Configured source name.
    pub source: String,
    /// The canonical event (its `id` is the dedupe key within the source).
    pub event: OffboardingEvent,
    /// SHA-256 (hex) of the raw body, to tell a retry from a conflicting reuse of an id.
    pub body_sha256: String,
    /// When the job becomes runnable.
    pub run_at: DateTime<Utc>,
    /// Failed attempts before `failed`.
    pub max_attempts: u32,
}

impl NewEvent {
    /// The job kind this event creates.
    pub fn job_kind(&self) -> JobKind {
        if self.event.event_type.is_reversal() {
            JobKind::Reverse
        } else {
            JobKind::Offboard
        }
    }
}

/// What happened to one [`NewEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IngestOutcome {
    /// Stored now.
    Accepted {
        #[allow(missing_docs)]
        event_id: String,
        #[allow(missing_docs)]
        job_id: String,
    },
    /// Seen before with the same body; nothing new stored.
    Duplicate {
        #[allow(missing_docs)]
        event_id: String,
        #[allow(missing_docs)]
        job_id: String,
    },
    /// Seen before with a different body; nothing stored.
    Conflict {
        #[allow(missing_docs)]
        event_id: String,
    },
}

/// The right to write for one attempt of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    #[allow(missing_docs)]
    pub job_id: String,
    /// The worker holding it.
    pub owner: String,
    /// The attempt it was granted for.
    pub attempt: u32,
}

/// A job row.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    #[allow(missing_docs)]
    pub id: String,
    #[allow(missing_docs)]
    pub kind: JobKind,
    #[allow(missing_docs)]
    pub state: JobState,
    /// Number of times the job has been claimed.
    pub attempt: u32,
    /// Consecutive failed attempts.
    pub failures: u32,
    #[allow(missing_docs)]
    pub max_attempts: u32,
    #[allow(missing_docs)]
    pub run_at: DateTime<Utc>,
    #[allow(missing_docs)]
    pub lease_owner: Option<String>,
    #[allow(missing_docs)]
    pub lease_expires_at: Option<DateTime<Utc>>,
    #[allow(missing_docs)]
    pub source: String,
    /// The event's dedupe id.
    pub event_id: String,
    #[allow(missing_docs)]
    pub event: OffboardingEvent,
    #[allow(missing_docs)]
    pub employee_email: String,
    /// Final action once decided (`deactivate`, `delete`, `review`).
    pub action: Option<String>,
    /// The stored decision and resolved plan.
    pub plan: Option<Value>,
    /// Why it failed or waits for review.
    pub last_error: Option<String>,
    /// An operator approved it past a guard or cap.
    pub approved: bool,
    /// For follow-up jobs: the job that scheduled it.
    pub parent_id: Option<String>,
    #[allow(missing_docs)]
    pub created_at: DateTime<Utc>,
    #[allow(missing_docs)]
    pub updated_at: DateTime<Utc>,
}

/// A claimed job and the lease to write with.
#[derive(Debug, Clone)]
pub struct Claimed {
    #[allow(missing_docs)]
    pub job: Job,
    #[allow(missing_docs)]
    pub lease: Lease,
}

/// How a run of a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done.
    Succeeded,
    /// Waiting for a time (effective date or the next verification poll); not a failure.
    Scheduled {
        #[allow(missing_docs)]
        run_at: DateTime<Utc>,
        #[allow(missing_docs)]
        reason: String,
    },
    /// A transient failure: run again at `run_at` unless `max_attempts` is used up.
    Retry {
        #[allow(missing_docs)]
        run_at: DateTime<Utc>,
        #[allow(missing_docs)]
        error: String,
    },
    /// A person must decide.
    NeedsReview {
        #[allow(missing_docs)]
        reason: String,
    },
    /// A permanent failure.
    Failed {
        #[allow(missing_docs)]
        error: String,
    },
    /// Stopped (a reversal arrived).
    Cancelled {
        #[allow(missing_docs)]
        reason: String,
    },
    /// Shutting down: give the job back now, unchanged.
    Released,
}

/// One audit entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    #[allow(missing_docs)]
    pub at: DateTime<Utc>,
    /// Dotted kind, e.g. `crm.call`, `decision`, `reassign.moved`.
    pub kind: String,
    #[allow(missing_docs)]
    pub detail: Value,
}

/// The answer of [`JobStore::reserve_seat_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The job may act.
    Granted,
    /// A cap is reached: `count` actions of the capped kind in the window.
    OverCap {
        /// `deletions` or `offboardings`.
        cap: &'static str,
        #[allow(missing_docs)]
        count: u64,
        #[allow(missing_docs)]
        max: u32,
    },
}

/// A job with everything an operator needs to see.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    #[allow(missing_docs)]
    pub job: Job,
    #[allow(missing_docs)]
    pub checkpoints: BTreeMap<String, Value>,
    #[allow(missing_docs)]
    pub audit: Vec<AuditEntry>,
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    #[allow(missing_docs)]
    pub state: Option<JobState>,
    /// Exact (normalised) employee e-mail.
    pub employee: Option<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Page size (default 100).
    pub limit: Option<u32>,
    /// Return jobs whose id sorts before this one (ids are time-ordered).
    pub before: Option<String>,
}

/// The durable queue. Implementations: [`sqlite::SqliteStore`], [`postgres::PgStore`].
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Reachable and fully migrated.
    async fn ready(&self) -> Result<(), StoreError>;

    /// Stores events and their jobs atomically per event (dedupe on source + id).
    async fn ingest(&self, events: Vec<NewEvent>) -> Result<Vec<IngestOutcome>, StoreError>;

    /// Claims up to `n` runnable jobs for `owner`, leasing them for `lease`.
    async fn claim(
        &self,
        owner: &str,
        n: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError>;
    /// Extends a lease; `LeaseLost` if it is no longer held.
    async fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> Result<(), StoreError>;
    /// Ends a run (fenced).
    async fn finish(&self, lease: &Lease, outcome: Outcome) -> Result<(), StoreError>;
    /// Puts jobs whose lease expired back to `queued`; returns how many.
    async fn requeue_expired(&self) -> Result<u64, StoreError>;

    /// Saves the decision and final action (fenced).
    async fn set_plan(&self, lease: &Lease, action: &str, plan: &Value) -> Result<(), StoreError>;
    /// Saves one checkpoint (fenced).
    async fn put_checkpoint(
        &self,
        lease: &Lease,
        key: &str,
        value: &Value,
    ) -> Result<(), StoreError>;
    /// Appends audit entries (not fenced: history stays true even from a late worker).
    async fn audit(&self, job_id: &str, entries: &[(String, Value)]) -> Result<(), StoreError>;

    /// Creates a follow-up job (idempotent per parent and kind).
    async fn enqueue_follow_up(
        &self,
        lease: &Lease,
        kind: JobKind,
        run_at: DateTime<Utc>,
    ) -> Result<String, StoreError>;
    /// Cancels every active, not-running job for `email` except `except`; returns their ids.
    async fn cancel_pending_for(
        &self,
        email: &str,
        except: &str,
        reason: &str,
    ) -> Result<Vec<String>, StoreError>;
    /// Jobs for `email` in the given states, newest first.
    async fn jobs_for(&self, email: &str, states: &[JobState]) -> Result<Vec<Job>, StoreError>;
    /// Reserves this job's seat action against the hourly caps, atomically: granted
    /// when the job already holds a reservation, or when fewer than `max_same_action`
    /// reservations of `action` and fewer than `max_all` of any action were made
    /// since `since` (a `None` cap does not apply). Fenced.
    async fn reserve_seat_action(
        &self,
        lease: &Lease,
        action: &str,
        since: DateTime<Utc>,
        max_same_action: Option<u32>,
        max_all: Option<u32>,
    ) -> Result<Reservation, StoreError>;

    /// Lists jobs, newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;
    /// One job with checkpoints and audit.
    async fn get_job(&self, id: &str) -> Result<Option<JobDetail>, StoreError>;
    /// failed/needs_review/cancelled → queued, failures reset.
    async fn retry(&self, id: &str) -> Result<Job, StoreError>;
    /// Any non-terminal state → cancelled.
    async fn cancel(&self, id: &str, reason: &str) -> Result<Job, StoreError>;
    /// needs_review → queued with `approved` set.
    async fn approve(&self, id: &str) -> Result<Job, StoreError>;
    /// Jobs per state (for metrics).
    async fn count_by_state(&self) -> Result<BTreeMap<JobState, u64>, StoreError>;
    /// Age of the oldest runnable job (queue lag).
    async fn oldest_runnable_age(&self) -> Result<Option<Duration>, StoreError>;
    /// Active jobs (queued, running, scheduled, needs_review) whose seat change was
    /// requested from the CRM admin (checkpoint `seat_requested_at`) and not yet
    /// verified, counted per reserved action (`deactivate`, `delete`). For metrics.
    async fn seats_pending(&self) -> Result<BTreeMap<String, u64>, StoreError>;

    /// Waits until new work may be runnable or `max` has passed, whichever comes first;
    /// `true` when woken early. An idle worker calls this between claims instead of
    /// sleeping. A wake-up is a hint (claim again), never a promise of work, and a
    /// missed one costs at most `max`, which is the polling fallback.
    ///
    /// The default just sleeps `max`: a store that can't hear other processes polls.
    /// PostgreSQL returns as soon as any replica's ingest, requeue, release, retry or
    /// approval sends `NOTIFY offboard_jobs`.
    async fn wait_for_work(&self, max: Duration) -> bool {
        tokio::time::sleep(max).await;
        false
    }

    /// A CRM rate budget shared with every other process on this store, for the
    /// token identified by `key` (a hash, never the token), or `None` when this
    /// store is one process's own (SQLite): the caller then paces in-process.
    /// PostgreSQL answers with [`postgres_budget::PgBudget`], so N replicas together
    /// stay within `requests_per_second`. No IO happens until the first permit.
    fn shared_crm_budget(
        &self,
        key: &str,
        settings: &BudgetSettings,
    ) -> Option<Arc<dyn RateBudget>> {
        let _ = (key, settings);
        None
    }
}

/// The query behind [`JobStore::seats_pending`], the same text for both backends.
pub(crate) const SEATS_PENDING_SQL: &str = "SELECT s.action AS action, COUNT(*) AS n FROM jobs j \
     JOIN checkpoints c ON c.job_id = j.id AND c.key = 'seat_requested_at' \
     JOIN seat_actions s ON s.job_id = j.id \
     WHERE j.state IN ('queued', 'running', 'scheduled', 'needs_review') \
     GROUP BY s.action";

/// States an operator's `retry` applies to (both stores use the same rules).
pub(crate) const RETRY_FROM: &[JobState] =
    &[JobState::Failed, JobState::NeedsReview, JobState::Cancelled];
/// States `cancel` applies to: anything not finished.
pub(crate) const CANCEL_FROM: &[JobState] = &[
    JobState::Queued,
    JobState::Running,
    JobState::Scheduled,
    JobState::NeedsReview,
];
/// States `approve` applies to.
pub(crate) const APPROVE_FROM: &[JobState] = &[JobState::NeedsReview];

/// A shared store handle.
pub type SharedStore = Arc<dyn JobStore>;

/// Opens the store the URL names: `sqlite:…`, or `postgres://…`/`postgresql://…`.
/// `synchronous` is SQLite's `PRAGMA synchronous`; PostgreSQL follows the server's
/// `synchronous_commit`.
pub async fn open(url: &str, synchronous: &str) -> Result<SharedStore, StoreError> {
    open_with(url, synchronous, true).await
}

/// Opens the store `[store]` configures.
pub async fn open_configured(config: &StoreConfig) -> Result<SharedStore, StoreError> {
    open_with(
        &config.url,
        &config.sqlite_synchronous,
        config.sqlite_group_commit,
    )
    .await
}

/// [`open`], choosing whether SQLite groups concurrent ingests into one commit
/// (`group_commit`; PostgreSQL ignores it: its server already does).
pub async fn open_with(
    url: &str,
    synchronous: &str,
    group_commit: bool,
) -> Result<SharedStore, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::open_with(url, synchronous, group_commit).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url).await?))
    } else {
        // Only the scheme: the rest of the URL may hold a password.
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::Corrupt(format!(
            "store.url: unsupported scheme {scheme:?} (expected sqlite:, postgres:// or postgresql://)"
        )))
    }
}
