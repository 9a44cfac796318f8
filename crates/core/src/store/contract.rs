//! What every store backend implements and every caller sees: the [`JobStore`]
//! trait, the rows and outcomes it speaks in, and [`StoreError`]. A leaf of the
//! store: the backends and the shared row/rule helpers import it, it imports none
//! of them, so `store/mod.rs` can compose the backends without a cycle.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use offboard_domain::budget::{BudgetSettings, RateBudget};

use crate::domain::{JobKind, JobState, OffboardingEvent};

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
        /// The job the operator named.
        id: String,
        /// The state it is in now, which the operation does not apply to.
        state: JobState,
        /// The operation refused: `retry`, `cancel` or `approve`.
        op: &'static str,
    },
    /// A stored value no longer decodes (a state, a timestamp, a count, JSON…); the
    /// message names the row and column. Stored data is never silently defaulted.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The store URL names a backend this build doesn't have (the message names only
    /// the scheme: the rest of the URL may hold a password).
    #[error("unsupported store: {0}")]
    Unsupported(String),
    /// The directory for the SQLite file could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why not.
        source: std::io::Error,
    },
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
    /// No answer within the time a request may wait for the store.
    #[error("the store did not answer within {0:?}")]
    Unavailable(Duration),
}

impl StoreError {
    /// The store is away or cannot take writes (PostgreSQL down or refusing
    /// connections, the pool exhausted, SQLite's disk full, its file read-only or
    /// locked past the busy timeout) rather than refusing this request: the caller
    /// answers 503 and is asked again later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::GroupCommit(inner) => inner.is_unavailable(),
            Self::Database(e) => database_unavailable(e),
            _ => false,
        }
    }
}

fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite (primary result codes; extended codes keep them in the low
            // byte): BUSY 5, LOCKED 6, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
            // PostgreSQL: class 08 connection exceptions, 53 insufficient
            // resources (53100 disk full), 57P01–57P03 shutting down / starting.
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                code.parse::<i64>()
                    .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
            } else {
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
            }
        }
        _ => false,
    }
}

/// Runs a store call for someone waiting on an answer (a webhook, an identity
/// provider, a probe, an operator): past `deadline` it is
/// [`StoreError::Unavailable`]. What the call had started still completes or
/// rolls back in the store; the caller only stops waiting, so a 2xx is never
/// sent for what was not stored, and a retry of what was is a duplicate.
pub async fn within<T>(
    deadline: Duration,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or(Err(StoreError::Unavailable(deadline)))
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
        /// The sender's event id (the dedupe key within its source).
        event_id: String,
        /// The job created for it.
        job_id: String,
    },
    /// Seen before with the same body; nothing new stored.
    Duplicate {
        /// The sender's event id.
        event_id: String,
        /// The job the first delivery created (not a follow-up job).
        job_id: String,
    },
    /// Seen before with a different body; nothing stored.
    Conflict {
        /// The reused event id.
        event_id: String,
    },
}

/// The right to write for one attempt of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job it lets one write to.
    pub job_id: String,
    /// The worker holding it.
    pub owner: String,
    /// The attempt it was granted for.
    pub attempt: u32,
}

/// A job row.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// UUIDv7: ids sort by creation time.
    pub id: String,
    /// What the job does (offboard, reverse, a follow-up check…).
    pub kind: JobKind,
    /// Where it is in its lifecycle; at most one job per employee is `running`.
    pub state: JobState,
    /// Number of times the job has been claimed.
    pub attempt: u32,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Failed attempts allowed before the job is `failed` (a retry past it gives up).
    pub max_attempts: u32,
    /// Not claimed before this instant (millisecond precision).
    pub run_at: DateTime<Utc>,
    /// The worker holding the lease; set only while `running`.
    pub lease_owner: Option<String>,
    /// When the lease lapses unless heartbeated; then the job is requeued. Set only
    /// while `running`.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The configured source the event came from.
    pub source: String,
    /// The event's dedupe id.
    pub event_id: String,
    /// The canonical event that created the job (follow-ups share their parent's).
    pub event: OffboardingEvent,
    /// The employee's normalised e-mail: the key of "one running job per employee".
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
    /// When it was stored, on the store's clock (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// The last write to the job row (checkpoints and audit don't touch it).
    pub updated_at: DateTime<Utc>,
}

/// A claimed job and the lease to write with.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The job as it is now, `running` with its attempt counted.
    pub job: Job,
    /// What every write of this run is fenced by.
    pub lease: Lease,
}

/// How a run of a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done.
    Succeeded,
    /// Waiting for a time (effective date or the next verification poll); not a failure.
    Scheduled {
        /// When to run again.
        run_at: DateTime<Utc>,
        /// What it waits for (not stored: the audit trail says it).
        reason: String,
    },
    /// A transient failure: run again at `run_at` unless `max_attempts` is used up.
    Retry {
        /// When to try again (the worker's backoff).
        run_at: DateTime<Utc>,
        /// Stored as `last_error`; with "gave up after N attempts: " when it was the last.
        error: String,
    },
    /// A person must decide.
    NeedsReview {
        /// What they must decide, stored as `last_error`.
        reason: String,
    },
    /// A permanent failure.
    Failed {
        /// Stored as `last_error`.
        error: String,
    },
    /// Stopped (a reversal arrived).
    Cancelled {
        /// Stored as `last_error`.
        reason: String,
    },
    /// Shutting down: give the job back now, unchanged.
    Released,
}

/// One audit entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// When it was written, on the store's clock (millisecond precision).
    pub at: DateTime<Utc>,
    /// Dotted kind, e.g. `crm.call`, `decision`, `reassign.moved`.
    pub kind: String,
    /// Kind-specific JSON, as the writer gave it.
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
        /// Reservations counted in the window (at least `max`).
        count: u64,
        /// The configured cap per window.
        max: u32,
    },
}

/// A job with everything an operator needs to see.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    /// The job row.
    pub job: Job,
    /// The worker's saved progress by key (e.g. `seat_requested_at`), so a retried
    /// attempt resumes instead of repeating CRM calls.
    pub checkpoints: BTreeMap<String, Value>,
    /// The job's history, oldest first.
    pub audit: Vec<AuditEntry>,
    /// The notifications the job's steps caused, oldest first, each with its
    /// delivery state.
    pub notifications: Vec<Notification>,
}

/// How a notification travels (DESIGN.md §13).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// SMTP, `[notify.email]`; the target is the address.
    Email,
    /// A signed HTTP POST, `[[notify.webhooks]]`; the target is the endpoint's name.
    Webhook,
}

impl Channel {
    /// The stored spelling and the metrics label: `email`, `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
        }
    }

    /// Every channel.
    pub const ALL: [Self; 2] = [Self::Email, Self::Webhook];
}

impl std::str::FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown channel {s:?}"))
    }
}

/// Where a notification is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationState {
    /// Waiting for its next attempt (`next_at`).
    Pending,
    /// A worker holds it and is sending it (until its lease lapses).
    Sending,
    /// The receiver accepted it (a 2xx, or the SMTP server's 250 after DATA).
    Delivered,
    /// Given up on after `[notify] give_up_after_hours`; it stays visible.
    Dead,
}

impl NotificationState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// Every state.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Sending, Self::Delivered, Self::Dead];
}

impl std::str::FromStr for NotificationState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown notification state {s:?}"))
    }
}

/// A notification a step causes, written in the same transaction as the step's own
/// write ([`JobStore::set_plan_with`], [`JobStore::put_checkpoint_with`],
/// [`JobStore::finish_with`]). Writing one whose `id` is stored already inserts
/// nothing: one cause, one row, however often the step is repeated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// Stable for its cause and recipient (`ntf_…`); sent as `webhook-id` and in
    /// the `Message-ID`.
    pub id: String,
    /// The event type, e.g. `seat.requested` (DESIGN.md §13).
    pub event: String,
    /// E-mail or webhook.
    pub channel: Channel,
    /// The address, or the webhook endpoint's configured name.
    pub target: String,
    /// What is sent, rendered now (subject and bodies, or the webhook's JSON body),
    /// so a retry sends exactly the same message.
    pub message: Value,
    /// Written only if the finish leaves the job in this state (a last retry ends
    /// `failed`, which only the finish's transaction knows); `None`: always.
    pub only_if: Option<JobState>,
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// The stable id.
    pub id: String,
    /// The job whose step caused it.
    pub job_id: String,
    /// The event type.
    pub event: String,
    /// E-mail or webhook.
    pub channel: Channel,
    /// The address or the endpoint's name.
    pub target: String,
    /// What is sent.
    pub message: Value,
    /// Where its delivery is.
    pub state: NotificationState,
    /// Deliveries started so far.
    pub attempts: u32,
    /// Not sent before this.
    pub next_at: DateTime<Utc>,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
    /// When the receiver accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When its cause was written.
    pub created_at: DateTime<Utc>,
    /// The last change of its state.
    pub updated_at: DateTime<Utc>,
}

/// The right to record the result of one delivery attempt of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLease {
    /// The notification.
    pub id: String,
    /// The worker sending it.
    pub owner: String,
    /// The attempt it was claimed for.
    pub attempt: u32,
}

/// A notification claimed for one delivery attempt.
#[derive(Debug, Clone)]
pub struct ClaimedNotification {
    /// As stored, `sending`, with this attempt counted.
    pub notification: Notification,
    /// What the result is fenced by.
    pub lease: DeliveryLease,
}

/// When failed deliveries are tried again, and when they are given up on
/// (`[notify]`): the store decides with it, once for both backends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryRetry {
    /// The wait after the first failure; it doubles per further failure.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
    /// From the notification's creation: a failure after this is final (`dead`),
    /// and no retry is scheduled later than this.
    pub give_up_after: Duration,
}

/// A seat change the CRM's admin was asked for (the job's checkpoint
/// `seat_requested_at`) that the job has not verified yet: it is still active.
#[derive(Debug, Clone, Serialize)]
pub struct SeatWait {
    /// The job that asked.
    pub job: Job,
    /// When it asked (the verification deadline counts from here).
    pub requested_at: DateTime<Utc>,
    /// The admin task's id in the CRM (checkpoint `admin_task_id`), once created.
    pub admin_task: Option<Value>,
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Exact (normalised) employee e-mail.
    pub employee: Option<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Page size ([`JobFilter::DEFAULT_LIMIT`] when unset, at most
    /// [`JobFilter::MAX_LIMIT`]).
    pub limit: Option<u32>,
    /// Return jobs whose id sorts before this one (ids are time-ordered).
    pub before: Option<String>,
}

impl JobFilter {
    /// A page when no limit is given.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// The largest page the store returns; the admin API refuses a larger `limit`
    /// (and its OpenAPI document says so) rather than answering fewer silently.
    pub const MAX_LIMIT: u32 = 1000;

    /// How many jobs one page holds.
    pub fn page_size(&self) -> u32 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .min(Self::MAX_LIMIT)
    }
}

/// An operator's verb on one job (DESIGN.md §4's `retry|cancel|approve`). Which
/// states each applies to is decided here, once: the store refuses the others
/// (`StoreError::WrongState`), and the console asks [`OperatorAction::allowed_in`]
/// before it shows a button, so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAction {
    /// failed/needs_review/cancelled → queued now, failures reset.
    Retry,
    /// Anything not finished → cancelled, with the operator's reason.
    Cancel,
    /// needs_review → queued now, past the guard or cap that stopped it.
    Approve,
}

impl OperatorAction {
    /// Every action, in the order a page lists them.
    pub const ALL: [Self; 3] = [Self::Approve, Self::Retry, Self::Cancel];

    /// The verb, as in errors, routes and the audit kind `operator.<verb>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Cancel => "cancel",
            Self::Approve => "approve",
        }
    }

    /// The states the action applies to.
    pub fn applies_to(self) -> &'static [JobState] {
        match self {
            Self::Retry => &[JobState::Failed, JobState::NeedsReview, JobState::Cancelled],
            Self::Cancel => &[
                JobState::Queued,
                JobState::Running,
                JobState::Scheduled,
                JobState::NeedsReview,
            ],
            Self::Approve => &[JobState::NeedsReview],
        }
    }

    /// Whether the action applies to a job in `state`.
    pub fn allowed_in(self, state: JobState) -> bool {
        self.applies_to().contains(&state)
    }
}

impl std::str::FromStr for OperatorAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action {s:?} (expected approve, retry or cancel)"))
    }
}

/// Where an operator action came from, recorded as `via` in its audit entry
/// (`operator.<verb>`), so the trail says whether a person used the admin API,
/// the command line or the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// `POST /api/v1/jobs/{id}/…`.
    Api,
    /// `offboard jobs retry|cancel|approve`.
    Cli,
    /// The ops console under `/console`.
    Console,
}

impl Via {
    /// The stored spelling: `api`, `cli`, `console`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Cli => "cli",
            Self::Console => "console",
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCIM User as offboard keeps it (DESIGN.md §10): what the identity provider
/// last wrote, with the columns filters and uniqueness need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScimUser {
    /// offboard's id for it (UUIDv7), the resource's SCIM `id`.
    pub id: String,
    /// `userName` as sent (unique without regard to case).
    pub user_name: String,
    /// The provider's own id for the user.
    pub external_id: Option<String>,
    /// `active`; a user is still kept, and returned, when false.
    pub active: bool,
    /// The resource as last written, without `id` and `meta` (offboard adds those).
    pub resource: Value,
    /// 1 when created, +1 per write: `meta.version`, the ETag.
    pub version: u64,
    /// When it was created, on the store's clock.
    pub created_at: DateTime<Utc>,
    /// The last write.
    pub updated_at: DateTime<Utc>,
}

/// What a SCIM write stores for a user.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserValues {
    /// `userName`.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `active`.
    pub active: bool,
    /// The whole resource, without `id` and `meta`.
    pub resource: Value,
}

/// One SCIM write, applied atomically with the event it makes (if any).
#[derive(Debug, Clone)]
pub struct ScimWrite {
    /// The user's id (new for a create).
    pub id: String,
    /// `None` creates the user; `Some(v)` changes it only while it is still at
    /// version `v` (what the caller read), so two writers can't lose each other's change.
    pub expected_version: Option<u64>,
    /// The new values; `None` deletes the user.
    pub values: Option<ScimUserValues>,
    /// The event this change makes (a deprovisioning or a reactivation), stored with
    /// its job in the same transaction, deduped like any other.
    pub event: Option<NewEvent>,
}

/// What happened to a [`ScimWrite`].
#[derive(Debug, Clone, PartialEq)]
pub enum ScimWriteOutcome {
    /// Stored: the user as now stored (`None` after a delete) and the event's outcome.
    Written {
        /// The stored user.
        user: Option<ScimUser>,
        /// What became of the event, if the write carried one.
        event: Option<IngestOutcome>,
    },
    /// No user with this id (update or delete).
    NotFound,
    /// The user changed since the caller read it: nothing written.
    VersionMismatch,
    /// Another user already has this `userName` (compared without case): nothing written.
    UserNameTaken,
}

/// Which SCIM users to list: the conditions are ANDed; absent ones don't apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScimUserQuery {
    /// `userName eq`, compared without case.
    pub user_name: Option<String>,
    /// `externalId eq`, exact.
    pub external_id: Option<String>,
    /// Users to skip (`startIndex - 1`).
    pub offset: u64,
    /// At most this many users.
    pub limit: u64,
}

/// One page of SCIM users, oldest first, and how many match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserPage {
    /// Matching users in the store (`totalResults`).
    pub total: u64,
    /// This page's users.
    pub users: Vec<ScimUser>,
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
    async fn finish(&self, lease: &Lease, outcome: Outcome) -> Result<(), StoreError> {
        self.finish_with(lease, outcome, &[]).await
    }
    /// [`JobStore::finish`] and the notifications the run's end causes, in one
    /// transaction (fenced); a notification with `only_if` is written only when
    /// the job ends in that state.
    async fn finish_with(
        &self,
        lease: &Lease,
        outcome: Outcome,
        notices: &[NewNotification],
    ) -> Result<(), StoreError>;
    /// Puts jobs whose lease expired back to `queued`; returns how many.
    async fn requeue_expired(&self) -> Result<u64, StoreError>;

    /// Saves the decision and final action (fenced).
    async fn set_plan(&self, lease: &Lease, action: &str, plan: &Value) -> Result<(), StoreError> {
        self.set_plan_with(lease, action, plan, &[]).await
    }
    /// [`JobStore::set_plan`] and the notifications the decision causes, in one
    /// transaction (fenced: a lost lease writes neither).
    async fn set_plan_with(
        &self,
        lease: &Lease,
        action: &str,
        plan: &Value,
        notices: &[NewNotification],
    ) -> Result<(), StoreError>;
    /// Saves one checkpoint (fenced).
    async fn put_checkpoint(
        &self,
        lease: &Lease,
        key: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        self.put_checkpoint_with(lease, key, value, &[]).await
    }
    /// [`JobStore::put_checkpoint`] and the notifications the step it records
    /// causes, in one transaction (fenced).
    async fn put_checkpoint_with(
        &self,
        lease: &Lease,
        key: &str,
        value: &Value,
        notices: &[NewNotification],
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
    /// failed/needs_review/cancelled → queued, failures reset. Audited as
    /// `operator.retry` with `via`.
    async fn retry(&self, id: &str, via: Via) -> Result<Job, StoreError>;
    /// Any non-terminal state → cancelled. Audited as `operator.cancel` with the
    /// reason and `via`.
    async fn cancel(&self, id: &str, reason: &str, via: Via) -> Result<Job, StoreError>;
    /// needs_review → queued with `approved` set. Audited as `operator.approve`
    /// with `via`.
    async fn approve(&self, id: &str, via: Via) -> Result<Job, StoreError>;
    /// Jobs per state (for metrics).
    async fn count_by_state(&self) -> Result<BTreeMap<JobState, u64>, StoreError>;
    /// Age of the oldest runnable job (queue lag).
    async fn oldest_runnable_age(&self) -> Result<Option<Duration>, StoreError>;
    /// Active jobs (queued, running, scheduled, needs_review) whose seat change was
    /// requested from the CRM admin (checkpoint `seat_requested_at`) and not yet
    /// verified, counted per reserved action (`deactivate`, `delete`). For metrics.
    async fn seats_pending(&self) -> Result<BTreeMap<String, u64>, StoreError>;
    /// The same jobs as [`JobStore::seats_pending`] counts (active, seat change
    /// requested), each with when it asked, oldest job first, at most `limit`: the
    /// console's "seats waiting for the CRM admin", in one query.
    async fn seat_waits(&self, limit: u32) -> Result<Vec<SeatWait>, StoreError>;

    /// Retention: deletes up to `batch` finished jobs (succeeded, failed, cancelled)
    /// whose last write is older than `keep` on the store's clock, in one short
    /// transaction, with their audit rows, checkpoints, seat reservations and
    /// notifications; returns how many jobs went. A job is kept while a follow-up of
    /// it is still stored (the follow-up points at it; it goes first) or one of its
    /// notifications is still to be delivered. Its
    /// event stays as a dedupe tombstone (source, id, body hash and the job id a
    /// redelivery is a duplicate of), its payload dropped once no job refers to it.
    /// The caller repeats until a batch finds nothing (`store::retention::prune`).
    async fn prune_finished(&self, keep: Duration, batch: u32) -> Result<u64, StoreError>;
    /// Folds the per-transaction deltas behind [`JobStore::count_by_state`] into one
    /// row per state (PostgreSQL appends a delta per state change so that workers
    /// never contend on a counter row); a no-op where counts are kept in place
    /// (SQLite). The pruner's round calls it, retention on or off.
    async fn compact_job_counts(&self) -> Result<(), StoreError>;

    /// One SCIM user by id.
    async fn scim_user(&self, id: &str) -> Result<Option<ScimUser>, StoreError>;
    /// SCIM users matching `query`, oldest first.
    async fn scim_users(&self, query: &ScimUserQuery) -> Result<ScimUserPage, StoreError>;
    /// Creates, changes or deletes a SCIM user and stores the event it makes, in one
    /// transaction: both or neither.
    async fn scim_write(&self, write: ScimWrite) -> Result<ScimWriteOutcome, StoreError>;

    /// Claims up to `n` notifications that are due (pending past `next_at`, or
    /// `sending` under a lapsed lease) for `owner`, for one attempt each, leased
    /// for `lease`.
    async fn claim_notifications(
        &self,
        owner: &str,
        n: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedNotification>, StoreError>;
    /// Records that the receiver accepted the claimed notification (audited as
    /// `notify.delivered`). `false` when the lease no longer holds (nothing written).
    async fn notification_delivered(&self, lease: &DeliveryLease) -> Result<bool, StoreError>;
    /// Records a failed attempt: the notification is `pending` again at its next
    /// backoff, or `dead` once `retry` says to give up (audited as `notify.retry` or
    /// `notify.dead`). The new state, or `None` when the lease no longer holds.
    async fn notification_failed(
        &self,
        lease: &DeliveryLease,
        error: &str,
        retry: &DeliveryRetry,
    ) -> Result<Option<NotificationState>, StoreError>;
    /// Notifications not delivered and not dead yet, per channel (for metrics).
    async fn notifications_pending(&self) -> Result<BTreeMap<Channel, u64>, StoreError>;

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
        _key: &str,
        _settings: &BudgetSettings,
    ) -> Option<Arc<dyn RateBudget>> {
        None
    }
}

/// The query behind [`JobStore::seats_pending`], the same text for both backends.
pub(crate) const SEATS_PENDING_SQL: &str = "SELECT s.action AS action, COUNT(*) AS n FROM jobs j \
     JOIN checkpoints c ON c.job_id = j.id AND c.key = 'seat_requested_at' \
     JOIN seat_actions s ON s.job_id = j.id \
     WHERE j.state IN ('queued', 'running', 'scheduled', 'needs_review') \
     GROUP BY s.action";

/// A shared store handle.
pub type SharedStore = Arc<dyn JobStore>;
