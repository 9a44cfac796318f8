//! The PostgreSQL store, for scale-out: many receivers and workers on one database,
//! with exactly the semantics of [`super::sqlite`] (the conformance suite in
//! `tests/store_conformance.rs` runs the same tests on both).
//!
//! What SQLite gets from having one writer, this store gets from the database itself:
//! - claims lock rows with `FOR UPDATE SKIP LOCKED` in a CTE feeding `UPDATE …
//!   RETURNING`, so concurrent workers never wait on, or take, each other's jobs;
//! - "one running job per employee" is a partial unique index, and the claim is
//!   written so that it normally never trips it (see `CLAIM`);
//! - every worker write is fenced by `lease_owner` + `attempt` in the same statement
//!   (or under a row lock taken by the fence check), so an expired worker cannot
//!   overwrite a newer attempt even when a requeue races with it;
//! - cap reservations serialise on one lock row, so replicas can't overshoot a cap;
//! - "now" is the store's [`SharedClock`] (the system clock in production), bound
//!   into each statement like any other value, so tests can move time and both stores
//!   read time the same way. Replicas must therefore keep their clocks in sync (NTP):
//!   a replica whose clock runs ahead expires others' leases early. The shared CRM
//!   budget alone still uses the database clock (`offboard_now_ms()`), see
//!   [`super::postgres_budget`].
//!
//! Ingests, requeues, releases, retries and approvals `NOTIFY offboard_jobs`; idle
//! workers wait in [`JobStore::wait_for_work`](super::JobStore::wait_for_work) on a `LISTEN` connection the store
//! opens on first use and re-opens after errors, with the caller's timeout as the
//! polling fallback.
//!
//! The CRM rate budget the replicas share lives next door, in
//! [`super::postgres_budget`], on this store's pool ([`JobStore::shared_crm_budget`](super::JobStore::shared_crm_budget)).
//!
//! A 2xx is answered after `COMMIT` returns, and every session asks for
//! `synchronous_commit=on` at start-up, so the commit returns only once its WAL is
//! flushed — whatever the server's or the database's default says (an operator
//! who set it `off` for other applications cannot weaken offboard's ack;
//! `tests/durable_ack.rs` checks the order in the system calls). The `synchronous`
//! argument of [`super::open`] is SQLite's and is ignored here.

use std::{
    collections::BTreeMap,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use offboard_domain::{
    SharedClock, SystemClock,
    budget::{BudgetSettings, RateBudget},
};

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{
    PgPool, Postgres, Row, Transaction,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};
use tokio::{sync::Notify, task::JoinHandle};

use super::{
    contract::{
        Channel, DeliveryLease, DeliveryRetry, IngestOutcome, Job, JobDetail, JobFilter, Lease,
        NewEvent, NewNotification, Notification, NotificationState, Outcome, Reservation,
        SEATS_PENDING_SQL, ScimUser, ScimUserPage, ScimUserQuery, ScimWrite, ScimWriteOutcome,
        SeatWait, StoreError, Via,
    },
    outbox,
    postgres_budget::{PgBudget, SharedBudgetOptions},
    queue::{Round, SeatRequest, Statements, StoreResult, Sweep},
    rows::{
        self, BindShared, Columns, decode_detail, decode_job, decode_jobs, decode_notification,
        decode_scim_user, new_id,
    },
    rules::{self, Operation, has_conflict},
};
use crate::domain::{JobKind, JobState};
use sqlx::migrate::Migrator;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The `LISTEN/NOTIFY` channel that announces runnable work.
pub const CHANNEL: &str = "offboard_jobs";

/// Connections per store. Every statement is short, so a few go a long way; the
/// `LISTEN` connection is separate and not counted here.
const POOL_SIZE: u32 = 10;

/// How many times a claim is re-run after losing a race on the one-running-per-employee
/// index before it gives up for this round (see [`CLAIM`]).
const CLAIM_RACE_RETRIES: usize = 8;

/// The job columns, as a macro so queries stay `&'static str` via `concat!` (sqlx 0.9
/// only takes dynamic SQL through `AssertSqlSafe`). JSON columns are read as text and
/// parsed by serde, as in SQLite.
macro_rules! job_cols {
    () => {
        "j.id, j.kind, j.state, j.attempt, j.failures, j.max_attempts, j.run_at, j.lease_owner, \
         j.lease_expires_at, j.source, j.event_id, j.employee_email, j.action, j.plan::text AS plan, \
         j.last_error, j.approved, j.parent_id, j.created_at, j.updated_at, e.payload::text AS payload"
    };
}

/// Jobs joined with their event (the payload lives once, in `events`).
macro_rules! jobs_with_event {
    () => {
        "jobs j JOIN events e ON e.source = j.source AND e.event_id = j.event_id"
    };
}

/// One job with its event, `$1` its id.
const JOB_BY_ID: &str = concat!(
    "SELECT ",
    job_cols!(),
    " FROM ",
    jobs_with_event!(),
    " WHERE j.id = $1"
);

/// The notification columns (`rows::NOTIFICATION_COLUMNS`, with `message` as text).
macro_rules! notification_cols {
    () => {
        "id, job_id, event, channel, target, message::text AS message, state, attempts, \
         next_at, last_error, delivered_at, created_at, updated_at"
    };
}

/// A page of jobs, newest first (`select_jobs`; binds as `BindShared::filter`).
/// The cursor is a bound (`'~'` sorts after every id under the ids' C collation),
/// not an `OR`, so the page is one index range however deep the cursor (as SQLite's).
/// A filter that is set is a plain equality (the statement is picked per filter,
/// [`select_jobs_sql`]), so a rare state or one employee is a seek, not a walk
/// through every newer job.
macro_rules! select_jobs {
    ($by:literal) => {
        concat!(
            "SELECT ",
            job_cols!(),
            " FROM ",
            jobs_with_event!(),
            " WHERE ",
            $by,
            " AND ($3::bigint IS NULL OR j.created_at >= $3) AND j.id < COALESCE($4::text, '~') \
             ORDER BY j.id DESC LIMIT $5"
        )
    };
}

/// The page statement for `filter` (binds as `BindShared::filter`).
fn select_jobs_sql(filter: &JobFilter) -> &'static str {
    if filter.employee.is_some() {
        select_jobs!("j.employee_email = $2 AND ($1::text IS NULL OR j.state = $1)")
    } else if filter.state.is_some() {
        select_jobs!("j.state = $1 AND $2::text IS NULL")
    } else {
        select_jobs!("$1::text IS NULL AND $2::text IS NULL")
    }
}

/// A job's checkpoints (`select_detail`).
const DETAIL_CHECKPOINTS: &str =
    "SELECT key, value::text AS value FROM checkpoints WHERE job_id = $1";

/// A job's audit trail, in order (`select_detail`).
const DETAIL_AUDIT: &str =
    "SELECT at, kind, detail::text AS detail FROM audit WHERE job_id = $1 ORDER BY id";

/// A job's notifications (`select_detail`).
const DETAIL_NOTIFICATIONS: &str = concat!(
    "SELECT ",
    notification_cols!(),
    " FROM notifications WHERE job_id = $1 ORDER BY created_at, id"
);

/// Jobs per state.
/// Jobs per state: the sum of the deltas the triggers of migration 0005 append,
/// folded by [`COMPACT_COUNTS`] every pruner round, so a few rows, not every job.
const COUNT_STATES: &str = "SELECT state, sum(n)::bigint AS n FROM job_count_deltas GROUP BY state";

/// Folds the deltas into one row per state, in one transaction: under an exclusive
/// lock (state changes wait for it, a few milliseconds every pruner round) the sums
/// are read, the table truncated and the sums written back. TRUNCATE rather than
/// DELETE because a deleted row's page stays in the table until VACUUM and a live
/// row keeps the table from shrinking: after a million state changes (a bulk load,
/// a layoff) every `/metrics` scrape read the 40 MB that was left
/// (`offboard bench store`: 9.9 ms against 1.4 ms); after TRUNCATE it reads one page.
pub(super) const COMPACT_COUNTS: &[&str] = &[
    "LOCK TABLE job_count_deltas IN ACCESS EXCLUSIVE MODE",
    "CREATE TEMP TABLE job_count_sums ON COMMIT DROP AS \
     SELECT state, sum(n)::bigint AS n FROM job_count_deltas GROUP BY state",
    "TRUNCATE job_count_deltas",
    "INSERT INTO job_count_deltas (state, n) SELECT state, n FROM job_count_sums WHERE n <> 0",
];

/// `run_at` of the oldest due job.
const OLDEST_DUE: &str =
    "SELECT min(run_at) FROM jobs WHERE state IN ('queued', 'scheduled') AND run_at <= $1";

/// Notifications still to deliver, per channel.
const NOTIFICATIONS_PENDING: &str = "SELECT channel, COUNT(*) AS n FROM notifications \
     WHERE state IN ('pending', 'sending') GROUP BY channel";

/// A parameter of a statement `EXPLAIN`ed by [`measured_statements`].
#[derive(Debug, Clone)]
pub(super) enum Param {
    /// A text value.
    Text(String),
    /// A bigint value.
    Int(i64),
    /// A NULL text (a filter that is not set).
    NullText,
    /// A NULL bigint.
    NullInt,
}

/// The statements `offboard bench store` times, by name, exactly as the methods
/// above run them, with parameters of the kind the bench binds (`EXPLAIN` plans
/// with values; `store::bulk::query_plans`).
pub(super) fn measured_statements() -> Vec<(&'static str, String, Vec<Param>)> {
    let now = i64::MAX / 2;
    let id = || Param::Text("01a00000-0000-7000-8000-000000000001".to_owned());
    vec![
        (
            "claim",
            CLAIM.to_owned(),
            vec![
                Param::Text("bench".into()),
                Param::Int(1),
                Param::Int(now),
                Param::Int(now),
            ],
        ),
        (
            "list_jobs (first page)",
            select_jobs_sql(&JobFilter::default()).to_owned(),
            vec![
                Param::NullText,
                Param::NullText,
                Param::NullInt,
                Param::NullText,
                Param::Int(100),
            ],
        ),
        (
            "list_jobs (a cursor)",
            select_jobs_sql(&JobFilter::default()).to_owned(),
            vec![
                Param::NullText,
                Param::NullText,
                Param::NullInt,
                id(),
                Param::Int(100),
            ],
        ),
        (
            "list_jobs (a state)",
            select_jobs_sql(&JobFilter {
                state: Some(JobState::NeedsReview),
                ..JobFilter::default()
            })
            .to_owned(),
            vec![
                Param::Text("needs_review".into()),
                Param::NullText,
                Param::NullInt,
                Param::NullText,
                Param::Int(100),
            ],
        ),
        (
            "list_jobs (an employee)",
            select_jobs_sql(&JobFilter {
                employee: Some(String::new()),
                ..JobFilter::default()
            })
            .to_owned(),
            vec![
                Param::NullText,
                Param::Text("leaver-1@example.com".into()),
                Param::NullInt,
                Param::NullText,
                Param::Int(100),
            ],
        ),
        ("get_job: job", JOB_BY_ID.to_owned(), vec![id()]),
        (
            "get_job: checkpoints",
            DETAIL_CHECKPOINTS.to_owned(),
            vec![id()],
        ),
        ("get_job: audit", DETAIL_AUDIT.to_owned(), vec![id()]),
        (
            "get_job: notifications",
            DETAIL_NOTIFICATIONS.to_owned(),
            vec![id()],
        ),
        ("metrics: count_by_state", COUNT_STATES.to_owned(), vec![]),
        (
            "metrics: oldest_runnable_age",
            OLDEST_DUE.to_owned(),
            vec![Param::Int(now)],
        ),
        (
            "metrics: seats_pending",
            SEATS_PENDING_SQL.to_owned(),
            vec![],
        ),
        (
            "metrics: notifications_pending",
            NOTIFICATIONS_PENDING.to_owned(),
            vec![],
        ),
    ]
}

/// The final states, as an SQL list: retention deletes only jobs in them (the
/// predicate of the `jobs_finished` index, spelled the same so the planner uses it).
macro_rules! finished {
    () => {
        "('succeeded', 'failed', 'cancelled')"
    };
}

/// `WHERE` fragment that fences a write to the lease holder: `$1` job id, `$2` owner,
/// `$3` attempt.
macro_rules! fence {
    () => {
        "id = $1 AND lease_owner = $2 AND attempt = $3 AND state = 'running'"
    };
}

/// Claims up to `$2` jobs for owner `$1` at `$4` (now, Unix ms), leasing them until `$3`.
///
/// `FOR UPDATE SKIP LOCKED` sits in the CTE so the planner locks only the rows the
/// `LIMIT` keeps, and concurrent claimers skip each other's rows instead of waiting.
///
/// One job per employee: Postgres forbids `FOR UPDATE` with `DISTINCT ON`/`GROUP BY`,
/// so each candidate must itself be "the earliest-created runnable job of an employee
/// with nothing running" (two `NOT EXISTS` probes, both served by partial indexes).
/// That is SQLite's choice (`MIN(id)` per employee), and it means one claim never picks
/// two jobs of one employee. Two *concurrent* claims normally can't either: they see
/// the same earliest job, and one of them skips it because the other holds its lock.
/// They can still disagree at the edges (a job whose `run_at` passes between the two
/// snapshots, an operator retry in between), and then the second `UPDATE` hits
/// `jobs_one_running_per_employee`. The index is the guarantee; the claim catches that
/// unique violation and runs again — by then the winner has committed, so the
/// `NOT EXISTS running` probe leaves that employee out. The alternative, serialising all
/// claims on a lock, would give up the point of `SKIP LOCKED`.
const CLAIM: &str = concat!(
    "WITH picked AS (
        SELECT j.id FROM jobs j
        WHERE j.state IN ('queued', 'scheduled') AND j.run_at <= $4
          AND NOT EXISTS (SELECT 1 FROM jobs r
                          WHERE r.employee_email = j.employee_email AND r.state = 'running')
          AND NOT EXISTS (SELECT 1 FROM jobs o
                          WHERE o.employee_email = j.employee_email
                            AND o.state IN ('queued', 'scheduled') AND o.run_at <= $4
                            AND o.id < j.id)
        ORDER BY j.run_at, j.id
        LIMIT $2
        FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, lease_owner = $1,
        lease_expires_at = $3, updated_at = $4
    FROM picked, events e
    WHERE j.id = picked.id AND e.source = j.source AND e.event_id = j.event_id
    RETURNING ",
    job_cols!()
);

/// One notice of a step (see [`outbox::insert_notices`]).
const NOTICE_INSERT: &str = "INSERT INTO notifications (id, job_id, event, channel, target, \
     message, state, attempts, next_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6::json, 'pending', 0, $7, $7, $7) ON CONFLICT (id) DO NOTHING";

/// Its `notify.queued` line.
const NOTICE_AUDIT: &str =
    "INSERT INTO audit (job_id, at, kind, detail) VALUES ($1, $2, 'notify.queued', $3::json)";

/// A delivered attempt's line.
const NOTICE_AUDIT_DELIVERED: &str =
    "INSERT INTO audit (job_id, at, kind, detail) VALUES ($1, $2, 'notify.delivered', $3::json)";

/// A delivered attempt, fenced by its lease (see [`outbox::record_delivered`]).
const NOTICE_DELIVERED: &str = "UPDATE notifications SET state = 'delivered', delivered_at = $4, \
     last_error = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = $4 \
     WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'sending' \
     RETURNING job_id, event, channel, target";

/// What a failed attempt's decision reads, fenced and locked (see [`outbox::record_failed`]).
const NOTICE_LEASED: &str = "SELECT job_id, event, channel, target, attempts, created_at \
     FROM notifications WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'sending' \
     FOR UPDATE";

/// What it writes.
const NOTICE_FAILED: &str = "UPDATE notifications SET state = $2, next_at = $3, last_error = $4, \
     lease_owner = NULL, lease_expires_at = NULL, updated_at = $5 WHERE id = $1";

/// The line it adds to the trail (`notify.retry` or `notify.dead`).
const NOTICE_ATTEMPT_AUDIT: &str =
    "INSERT INTO audit (job_id, at, kind, detail) VALUES ($1, $2, $3, $4::json)";

/// Claims up to `$4` due notifications for `$1` at `$3` (now), leased until `$2`;
/// `SKIP LOCKED` keeps replicas off each other's rows.
const CLAIM_NOTIFICATIONS: &str = "WITH picked AS (
        SELECT id FROM notifications
        WHERE (state = 'pending' AND next_at <= $3) OR (state = 'sending' AND lease_expires_at < $3)
        ORDER BY next_at, id
        LIMIT $4
        FOR UPDATE SKIP LOCKED
    )
    UPDATE notifications n SET state = 'sending', attempts = n.attempts + 1, lease_owner = $1,
        lease_expires_at = $2, updated_at = $3
    FROM picked WHERE n.id = picked.id
    RETURNING n.id, n.job_id, n.event, n.channel, n.target, n.message::text AS message, n.state,
        n.attempts, n.next_at, n.last_error, n.delivered_at, n.created_at, n.updated_at";

/// PostgreSQL-backed [`JobStore`](super::JobStore).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    wake: Arc<Wakeups>,
    /// Where "now" comes from for every timestamp this store writes or compares.
    clock: SharedClock,
}

/// The `LISTEN` side: a task (started on the first wait) that turns notifications into
/// wake-ups for every waiter in this process.
#[derive(Debug)]
struct Wakeups {
    /// A separate one-connection pool: `LISTEN` pins its connection for good.
    listen_pool: PgPool,
    notify: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        // The task holds no reference back to the store, so it would run forever.
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = task.take() {
            handle.abort();
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://…` or `postgresql://…`; libpq-style
    /// parameters such as `sslmode` and `options=-c search_path%3D…` are honoured).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_clock(url, SystemClock::shared()).await
    }

    /// [`PgStore::open`], reading "now" from `clock`.
    pub async fn open_with_clock(url: &str, clock: SharedClock) -> Result<Self, StoreError> {
        Self::open_bounded(url, clock, Duration::from_secs(10)).await
    }

    /// [`PgStore::open_with_clock`], where no call waits longer than `acquire` for
    /// a connection (`[store] unavailable_after_ms`): past it the call fails with
    /// `PoolTimedOut`, which [`StoreError::is_unavailable`] names.
    pub async fn open_bounded(
        url: &str,
        clock: SharedClock,
        acquire: Duration,
    ) -> Result<Self, StoreError> {
        let mut opts = PgConnectOptions::from_str(url)?;
        if opts.get_application_name().is_none() {
            opts = opts.application_name("offboard");
        }
        opts = opts.options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(acquire)
            .connect_with(opts.clone())
            .await?;
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(opts);
        Ok(Self {
            pool,
            wake: Arc::new(Wakeups {
                listen_pool,
                notify: Arc::new(Notify::new()),
                task: Mutex::new(None),
            }),
            clock,
        })
    }

    /// Starts (or restarts, if it ended) the task that listens for work.
    fn ensure_listener(&self) {
        let mut task = self.wake.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.as_ref().is_none_or(|t| t.is_finished()) {
            *task = Some(tokio::spawn(listen_loop(
                self.wake.listen_pool.clone(),
                self.wake.notify.clone(),
            )));
        }
    }

    /// One claim round; `Ok(None)` when it lost a race on the one-running-per-employee
    /// index and must run again.
    async fn try_claim(&self, round: Round<'_>) -> StoreResult<Option<Vec<Job>>> {
        let rows = sqlx::query(CLAIM)
            .bind(round.owner)
            .bind(i64::try_from(round.n).unwrap_or(i64::MAX))
            .bind(round.until)
            .bind(round.now)
            .fetch_all(&self.pool)
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(e))
                if e.constraint() == Some("jobs_one_running_per_employee") =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let mut jobs = rows
            .iter()
            .map(decode_job)
            .collect::<StoreResult<Vec<_>>>()?;
        // RETURNING has no order; hand jobs out in the order they were picked.
        jobs.sort_by(|a, b| (a.run_at, &a.id).cmp(&(b.run_at, &b.id)));
        Ok(Some(jobs))
    }
}

/// Keeps one `LISTEN offboard_jobs` connection open and wakes every waiter on each
/// notification. Whenever it (re)connects it also wakes them once: notifications sent
/// while nobody listened are lost, so waiters should look for work themselves.
async fn listen_loop(pool: PgPool, notify: Arc<Notify>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    backoff = Duration::from_millis(250);
                    notify.notify_waiters();
                    loop {
                        match listener.try_recv().await {
                            // A notification, or `None`: the connection dropped and was
                            // re-established (sqlx re-LISTENs), possibly missing some.
                            Ok(_) => notify.notify_waiters(),
                            Err(e) => {
                                tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                                notify.notify_waiters();
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "LISTEN failed; retrying"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot open the LISTEN connection; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Queues a wake-up for listening workers; Postgres delivers it when `tx` commits (and
/// folds repeats within one transaction into one).
async fn notify(tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Free text (error messages, reasons) as Postgres can store it: `text` rejects NUL,
/// which SQLite keeps and a CRM error body may carry. Failing the write would leave the
/// job running until its lease expired, again and again, so NUL becomes U+FFFD.
fn pg_text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

const SCIM_COLUMNS: &str = "id, user_name, external_id, active, resource::text AS resource, \
     version, created_at, updated_at";

/// The conditions of a SCIM user list, numbered as [`BindShared::scim_query`] binds.
const SCIM_WHERE: &str =
    "($1::text IS NULL OR user_name_key = $1) AND ($2::text IS NULL OR external_id = $2)";

/// Stores one event and its job inside an open transaction.
///
/// The insert goes first, with `ON CONFLICT DO NOTHING`: two receivers racing on one
/// event then both succeed (the loser waits for the winner's commit and reports a
/// duplicate or conflict) instead of one failing on the primary key.
async fn ingest_one(
    tx: &mut Transaction<'static, Postgres>,
    ev: &NewEvent,
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    let event_id = ev.event.id.clone();
    let inserted = sqlx::query(
        "INSERT INTO events (source, event_id, body_sha256, payload, received_at) \
         VALUES ($1, $2, $3, $4::json, $5) ON CONFLICT (source, event_id) DO NOTHING",
    )
    .bind(&ev.source)
    .bind(&event_id)
    .bind(&ev.body_sha256)
    .bind(rules::payload(ev)?)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        let row = sqlx::query(
            "SELECT e.body_sha256, COALESCE((SELECT j.id FROM jobs j WHERE j.source = e.source \
               AND j.event_id = e.event_id AND j.parent_id IS NULL ORDER BY j.id LIMIT 1), e.pruned_job_id) AS job_id \
             FROM events e WHERE e.source = $1 AND e.event_id = $2",
        )
        .bind(&ev.source)
        .bind(&event_id)
        .fetch_one(&mut **tx)
        .await?;
        return rules::seen_in(ev, &row);
    }
    let job_id = new_id();
    sqlx::query(
        "INSERT INTO jobs (id, kind, state, max_attempts, run_at, source, event_id, employee_email, created_at, updated_at) \
         VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $8)",
    )
    .new_job(&job_id, ev, now)
    .execute(&mut **tx)
    .await?;
    Ok(IngestOutcome::Accepted { event_id, job_id })
}

/// The statements behind [`JobStore`](super::JobStore) (implemented in `queue.rs`). Worker writes are
/// fenced in the statement itself or under the row lock the fence check takes.
#[async_trait]
impl Statements for PgStore {
    async fn run_migrations(&self) -> StoreResult<()> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    async fn applied_migrations(&self) -> StoreResult<Vec<i64>> {
        let query = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success");
        Ok(query.fetch_all(&self.pool).await?)
    }

    async fn insert_events(&self, events: Vec<NewEvent>) -> StoreResult<Vec<IngestOutcome>> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(events.len());
        for ev in &events {
            out.push(ingest_one(&mut tx, ev, now).await?);
        }
        // A conflict anywhere in one request stores nothing of it.
        if has_conflict(&out) {
            tx.rollback().await?;
            return Ok(out);
        }
        if out
            .iter()
            .any(|o| matches!(o, IngestOutcome::Accepted { .. }))
        {
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn claim_due(&self, round: Round<'_>) -> StoreResult<Vec<Job>> {
        for _ in 0..CLAIM_RACE_RETRIES {
            if let Some(jobs) = self.try_claim(round).await? {
                return Ok(jobs);
            }
        }
        // Every lost race means another claimer just started a job, so the queue is
        // moving; come back next round rather than fail the worker's loop.
        tracing::debug!(
            owner = round.owner,
            "claim kept losing races on one employee; retrying next round"
        );
        Ok(Vec::new())
    }

    async fn extend_lease(&self, lease: &Lease, until: i64) -> StoreResult<bool> {
        let update = sqlx::query(concat!(
            "UPDATE jobs SET lease_expires_at = $4 WHERE ",
            fence!()
        ));
        let done = update.fence(lease).bind(until).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn end_run(
        &self,
        lease: &Lease,
        outcome: Outcome,
        notices: &[NewNotification],
    ) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        // The row lock holds off a concurrent requeue or operator cancel until we commit.
        let locked = sqlx::query(concat!(
            "SELECT failures, max_attempts FROM jobs WHERE ",
            fence!(),
            " FOR UPDATE"
        ));
        let Some(row) = locked.fence(lease).fetch_optional(&mut *tx).await? else {
            return Ok(false);
        };
        let (failures, max_attempts) = (row.try_get("failures")?, row.try_get("max_attempts")?);
        let to = rules::transition(outcome, failures, max_attempts, now);
        sqlx::query(
            "UPDATE jobs SET state = $2, run_at = COALESCE($3, run_at), failures = $4, \
               last_error = COALESCE($5, last_error), \
               lease_owner = NULL, lease_expires_at = NULL, updated_at = $6 \
             WHERE id = $1",
        )
        .bind(&lease.job_id)
        .bind(to.state.as_str())
        .bind(to.run_at)
        .bind(to.failures)
        .bind(to.last_error.as_deref().map(pg_text))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let notices = rules::notices_for(notices, to.state);
        outbox::insert_notices(
            &mut tx,
            NOTICE_INSERT,
            NOTICE_AUDIT,
            &lease.job_id,
            &notices,
            now,
        )
        .await?;
        if to.state == JobState::Queued {
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn requeue_lapsed(&self) -> StoreResult<u64> {
        // Every worker runs this every round, so it is one autocommit statement that
        // requeues and audits together; the NOTIFY follows only when it found something.
        let n: i64 = sqlx::query_scalar(
            "WITH requeued AS ( \
                 UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
                     run_at = $1, updated_at = $1 \
                 WHERE state = 'running' AND lease_expires_at < $1 RETURNING id \
             ), audited AS ( \
                 INSERT INTO audit (job_id, at, kind, detail) \
                 SELECT id, $1, 'lease.expired', '{\"requeued\":true}'::json FROM requeued \
                 RETURNING job_id \
             ) \
             SELECT count(*) FROM audited",
        )
        .bind(self.now())
        .fetch_one(&self.pool)
        .await?;
        if n > 0 {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(&self.pool)
                .await?;
        }
        Ok(rows::count_u64(n))
    }

    async fn write_plan(
        &self,
        lease: &Lease,
        action: &str,
        plan: &Value,
        notices: &[NewNotification],
    ) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let update = sqlx::query(concat!(
            "UPDATE jobs SET action = $4, plan = $5::json, updated_at = $6 WHERE ",
            fence!()
        ));
        let done = update
            .fenced_value(lease, action, plan, now)
            .execute(&mut *tx)
            .await?;
        outbox::commit_fenced(
            tx,
            done.rows_affected() > 0,
            (NOTICE_INSERT, NOTICE_AUDIT),
            &lease.job_id,
            notices,
            now,
        )
        .await
    }

    async fn write_checkpoint(
        &self,
        lease: &Lease,
        key: &str,
        v: &Value,
        notices: &[NewNotification],
    ) -> StoreResult<bool> {
        // FOR SHARE makes a concurrent requeue wait for this insert, and re-checks the
        // fence if one committed first, so a stale worker can't overwrite a key that the
        // next attempt has already written.
        let upsert = sqlx::query(concat!(
            "INSERT INTO checkpoints (job_id, key, value, updated_at) \
             SELECT id, $4, $5::json, $6 FROM jobs WHERE ",
            fence!(),
            " FOR SHARE \
             ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
        ));
        let now = self.now();
        if notices.is_empty() {
            let done = upsert
                .fenced_value(lease, key, v, now)
                .execute(&self.pool)
                .await?;
            return Ok(done.rows_affected() > 0);
        }
        let mut tx = self.pool.begin().await?;
        let done = upsert
            .fenced_value(lease, key, v, now)
            .execute(&mut *tx)
            .await?;
        outbox::commit_fenced(
            tx,
            done.rows_affected() > 0,
            (NOTICE_INSERT, NOTICE_AUDIT),
            &lease.job_id,
            notices,
            now,
        )
        .await
    }

    async fn append_audit(&self, job_id: &str, entries: &[(String, Value)]) -> StoreResult<()> {
        // One statement for the batch (all or nothing); `ORDER BY n` hands rows to the
        // insert in slice order, so `audit.id` (the trail's order) follows the slice.
        let (kinds, details): (Vec<&str>, Vec<String>) = entries
            .iter()
            .map(|(kind, detail)| (kind.as_str(), detail.to_string()))
            .unzip();
        sqlx::query(
            "INSERT INTO audit (job_id, at, kind, detail) \
             SELECT $1, $2, k, d::json FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS t(k, d, n) \
             ORDER BY n",
        )
        .bind(job_id)
        .bind(self.now())
        .bind(kinds)
        .bind(details)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn follow_up(&self, lease: &Lease, kind: JobKind, at: i64) -> StoreResult<String> {
        let mut tx = self.pool.begin().await?;
        let parent = sqlx::query(concat!("SELECT 1 FROM jobs WHERE ", fence!(), " FOR SHARE"));
        if parent
            .fence(lease)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Err(StoreError::LeaseLost(lease.job_id.clone()));
        }
        // The unique (parent_id, kind) index makes a concurrent second call a no-op.
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, kind, state, max_attempts, run_at, source, event_id, employee_email, parent_id, created_at, updated_at) \
             SELECT $1, $2, 'scheduled', max_attempts, $3, source, event_id, employee_email, id, $4, $4 FROM jobs WHERE id = $5 \
             ON CONFLICT (parent_id, kind) WHERE parent_id IS NOT NULL DO NOTHING RETURNING id",
        )
        .follow_up(lease, kind, at, self.now())
        .fetch_optional(&mut *tx)
        .await?;
        let id = match inserted {
            Some(row) => row.try_get("id")?,
            None => {
                sqlx::query_scalar("SELECT id FROM jobs WHERE parent_id = $1 AND kind = $2")
                    .bind(&lease.job_id)
                    .bind(kind.as_str())
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    async fn cancel_others(&self, sweep: Sweep<'_>) -> StoreResult<Vec<String>> {
        let detail = serde_json::json!({ "reason": sweep.reason, "by_job": sweep.except });
        Ok(sqlx::query_scalar(
            "WITH cancelled AS ( \
                 UPDATE jobs SET state = 'cancelled', last_error = $3, updated_at = $5 \
                 WHERE employee_email = $1 AND id <> $2 AND state IN ('queued', 'scheduled', 'needs_review') \
                 RETURNING id \
             ), audited AS ( \
                 INSERT INTO audit (job_id, at, kind, detail) \
                 SELECT id, $5, 'job.cancelled', $4::json FROM cancelled \
             ) \
             SELECT id FROM cancelled",
        )
        .bind(sweep.email)
        .bind(sweep.except)
        .bind(pg_text(sweep.reason))
        .bind(detail.to_string())
        .bind(self.now())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn select_for(&self, email: &str, states: &[JobState]) -> StoreResult<Vec<Job>> {
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_cols!(),
            " FROM ",
            jobs_with_event!(),
            " WHERE j.employee_email = $1 AND j.state = ANY($2) ORDER BY j.id DESC"
        ))
        .bind(email)
        .bind(states);
        decode_jobs(&rows.fetch_all(&self.pool).await?)
    }

    async fn reserve(&self, req: SeatRequest<'_>) -> StoreResult<Option<Reservation>> {
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(concat!("SELECT 1 FROM jobs WHERE ", fence!(), " FOR SHARE"));
        if held
            .fence(req.lease)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        // Serialise reservations: once we hold this row, the counts below run on a
        // fresh READ COMMITTED snapshot that includes every reservation made before us,
        // and no other replica can insert until we commit.
        sqlx::query("SELECT id FROM seat_action_lock WHERE id = 1 FOR UPDATE")
            .execute(&mut *tx)
            .await?;
        let facts = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM seat_actions WHERE job_id = $1) AS mine, \
               (SELECT count(*) FROM seat_actions WHERE at >= $2 AND action = $3) AS same, \
               (SELECT count(*) FROM seat_actions WHERE at >= $2) AS all_actions",
        )
        .bind(&req.lease.job_id)
        .bind(req.since)
        .bind(req.action)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(settled) = rules::settled_seat(&facts, req.max_same_action, req.max_all)? {
            return Ok(Some(settled));
        }
        let insert = "INSERT INTO seat_actions (job_id, action, at) VALUES ($1, $2, $3)";
        rows::grant_seat(tx, insert, &req.lease.job_id, req.action, self.now()).await
    }

    async fn select_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(select_jobs_sql(filter)).filter(filter);
        decode_jobs(&rows.fetch_all(&self.pool).await?)
    }

    async fn select_detail(&self, id: &str) -> StoreResult<Option<JobDetail>> {
        // One REPEATABLE READ snapshot: the job, its checkpoints and its audit trail
        // agree with each other even while a worker is writing.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let Some(row) = sqlx::query(JOB_BY_ID)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let checkpoints = sqlx::query(DETAIL_CHECKPOINTS)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let audit = sqlx::query(DETAIL_AUDIT)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let notifications = sqlx::query(DETAIL_NOTIFICATIONS)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        decode_detail(&row, &checkpoints, &audit, &notifications).map(Some)
    }

    async fn operate(&self, id: &str, op: Operation<'_>, via: Via) -> StoreResult<Job> {
        let now = self.now();
        let change = op.change(now);
        let (rewrite_error, error) = change.last_error();
        let mut tx = self.pool.begin().await?;
        // Checked under the row lock, so a worker's finish can't change it under us.
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let from = op.check(id, state)?;
        // The update and its audit entry (with where the action came from and the
        // operator's reason) in one statement.
        sqlx::query(
            "WITH changed AS ( \
                 UPDATE jobs SET state = $2, run_at = COALESCE($3, run_at), \
                     failures = CASE WHEN $4 THEN 0 ELSE failures END, \
                     last_error = CASE WHEN $5 THEN $6 ELSE last_error END, approved = (approved OR $7), \
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = $8 \
                 WHERE id = $1 RETURNING id \
             ) \
             INSERT INTO audit (job_id, at, kind, detail) SELECT id, $8, $9, $10::json FROM changed",
        )
        .bind(id)
        .bind(change.state.as_str())
        .bind(change.run_at)
        .bind(change.reset_failures)
        .bind(rewrite_error)
        .bind(error.map(pg_text))
        .bind(change.approve)
        .bind(now)
        .bind(op.audit_kind())
        .bind(op.audit_detail(from, via).to_string())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(JOB_BY_ID).bind(id).fetch_one(&mut *tx).await?;
        let job = decode_job(&row)?;
        if job.state == JobState::Queued {
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(job)
    }

    async fn compact_counts(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for &statement in COMPACT_COUNTS {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn prune_batch(&self, before: i64, limit: u32) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: two replicas' pruners take different jobs, and a job an
        // operator is acting on right now is left for the next round.
        let picked = sqlx::query(concat!(
            "SELECT id, source, event_id FROM jobs j \
             WHERE state IN ",
            finished!(),
            " AND updated_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = j.id) \
               AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.job_id = j.id \
                               AND n.state IN ('pending', 'sending')) \
             LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if picked.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(picked.len());
        let mut sources = Vec::with_capacity(picked.len());
        let mut event_ids = Vec::with_capacity(picked.len());
        for row in &picked {
            ids.push(row.try_get::<String, _>("id")?);
            sources.push(row.try_get::<String, _>("source")?);
            event_ids.push(row.try_get::<String, _>("event_id")?);
        }
        // The tombstone first, while the job still says which one it was.
        sqlx::query(
            "UPDATE events e SET pruned_job_id = j.id FROM jobs j \
             WHERE j.id = ANY($1) AND j.parent_id IS NULL \
               AND e.source = j.source AND e.event_id = j.event_id",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        for statement in [
            "DELETE FROM checkpoints WHERE job_id = ANY($1)",
            "DELETE FROM notifications WHERE job_id = ANY($1)",
            "DELETE FROM seat_actions WHERE job_id = ANY($1)",
            "DELETE FROM audit WHERE job_id = ANY($1)",
        ] {
            sqlx::query(statement).bind(&ids).execute(&mut *tx).await?;
        }
        let gone = sqlx::query("DELETE FROM jobs WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // An event no job refers to any more keeps only what dedupe needs.
        sqlx::query(
            "UPDATE events e SET payload = 'null' \
             FROM unnest($1::text[], $2::text[]) AS p(source, event_id) \
             WHERE e.source = p.source AND e.event_id = p.event_id \
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.source = e.source AND j.event_id = e.event_id)",
        )
        .bind(&sources)
        .bind(&event_ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone)
    }

    async fn scim_select(&self, id: &str) -> StoreResult<Option<ScimUser>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SCIM_COLUMNS} FROM scim_users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode_scim_user).transpose()
    }

    async fn scim_select_page(&self, query: &ScimUserQuery) -> StoreResult<ScimUserPage> {
        // One snapshot: the total and the page describe the same moment.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let total = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) AS n FROM scim_users WHERE {SCIM_WHERE}"
        )))
        .scim_query(query)
        .fetch_one(&mut *tx)
        .await?
        .int("n")?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SCIM_COLUMNS} FROM scim_users WHERE {SCIM_WHERE} ORDER BY id LIMIT $3 OFFSET $4"
        )))
        .scim_page(query)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ScimUserPage {
            total: rows::count_u64(total),
            users: rows
                .iter()
                .map(decode_scim_user)
                .collect::<Result<_, _>>()?,
        })
    }

    async fn scim_apply(&self, write: &ScimWrite) -> StoreResult<ScimWriteOutcome> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let found = rows::scim_found(
            &mut tx,
            "SELECT version, created_at FROM scim_users WHERE id = $1 FOR UPDATE",
            "SELECT id FROM scim_users WHERE user_name_key = $1",
            write,
        )
        .await?;
        if let Some(refused) = rules::scim_refusal(write, &found) {
            tx.rollback().await?;
            return Ok(refused);
        }
        let version = rules::scim_next_version(write);
        let written = match (&write.values, found.current) {
            (Some(values), current) => {
                let statement = if current.is_none() {
                    "INSERT INTO scim_users (id, user_name, user_name_key, external_id, active, \
                     resource, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6::json, $7, $8, $8)"
                } else {
                    "UPDATE scim_users SET user_name = $2, user_name_key = $3, external_id = $4, \
                     active = $5, resource = $6::json, version = $7, updated_at = $8 WHERE id = $1"
                };
                sqlx::query(statement)
                    .scim_user(&write.id, values, version, now)
                    .execute(&mut *tx)
                    .await
            }
            (None, _) => {
                sqlx::query("DELETE FROM scim_users WHERE id = $1")
                    .bind(&write.id)
                    .execute(&mut *tx)
                    .await
            }
        };
        // Two receivers creating the same userName at once: the check above saw
        // neither, the unique index stops the second.
        if let Err(e) = written {
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation())
            {
                tx.rollback().await?;
                return Ok(ScimWriteOutcome::UserNameTaken);
            }
            return Err(e.into());
        }
        let event = match &write.event {
            Some(ev) => Some(ingest_one(&mut tx, ev, now).await?),
            None => None,
        };
        let answer = rules::scim_written(write, &found, event, now)?;
        if matches!(
            &answer,
            ScimWriteOutcome::Written {
                event: Some(IngestOutcome::Accepted { .. }),
                ..
            }
        ) {
            notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(answer)
    }

    async fn count_states(&self) -> StoreResult<BTreeMap<JobState, u64>> {
        let query = sqlx::query(COUNT_STATES);
        rows::tally_states(&query.fetch_all(&self.pool).await?)
    }

    async fn oldest_due(&self, now: i64) -> StoreResult<Option<i64>> {
        let query = sqlx::query_scalar(OLDEST_DUE);
        Ok(query.bind(now).fetch_one(&self.pool).await?)
    }

    async fn count_seats_pending(&self) -> StoreResult<BTreeMap<String, u64>> {
        let query = sqlx::query(SEATS_PENDING_SQL);
        rows::tally_actions(&query.fetch_all(&self.pool).await?)
    }

    async fn select_seat_waits(&self, limit: u32) -> StoreResult<Vec<SeatWait>> {
        // The checkpoint keys are worker/checkpoint.rs's SEAT_REQUESTED and
        // ADMIN_TASK (frozen names); the states are SEATS_PENDING_SQL's.
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_cols!(),
            ", c.value::text AS seat_requested_at, t.value::text AS admin_task_id FROM ",
            jobs_with_event!(),
            " JOIN checkpoints c ON c.job_id = j.id AND c.key = 'seat_requested_at' \
             LEFT JOIN checkpoints t ON t.job_id = j.id AND t.key = 'admin_task_id' \
             WHERE j.state IN ('queued', 'running', 'scheduled', 'needs_review') \
             ORDER BY j.id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::decode_seat_wait).collect()
    }

    async fn wait(&self, max: Duration) -> bool {
        self.ensure_listener();
        tokio::time::timeout(max, self.wake.notify.notified())
            .await
            .is_ok()
    }

    fn budget(&self, key: &str, settings: &BudgetSettings) -> Option<Arc<dyn RateBudget>> {
        Some(Arc::new(PgBudget::new(
            self.pool.clone(),
            key.to_owned(),
            settings.clone(),
            SharedBudgetOptions::for_rate(settings.requests_per_second),
        )))
    }

    async fn claim_due_notifications(
        &self,
        owner: &str,
        n: usize,
        until: i64,
        now: i64,
    ) -> StoreResult<Vec<Notification>> {
        let rows = sqlx::query(CLAIM_NOTIFICATIONS)
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_notification).collect()
    }

    async fn mark_delivered(&self, lease: &DeliveryLease) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let held = outbox::record_delivered(
            &mut tx,
            NOTICE_DELIVERED,
            NOTICE_AUDIT_DELIVERED,
            lease,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn mark_failed(
        &self,
        lease: &DeliveryLease,
        error: &str,
        retry: &DeliveryRetry,
    ) -> StoreResult<Option<NotificationState>> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let state = outbox::record_failed(
            &mut tx,
            NOTICE_LEASED,
            NOTICE_FAILED,
            NOTICE_ATTEMPT_AUDIT,
            lease,
            error,
            retry,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(state)
    }

    async fn count_notifications_pending(&self) -> StoreResult<BTreeMap<Channel, u64>> {
        let rows = sqlx::query(NOTIFICATIONS_PENDING)
            .fetch_all(&self.pool)
            .await?;
        rows::tally_channels(&rows)
    }

    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn migrator(&self) -> &'static Migrator {
        &MIGRATOR
    }
}
