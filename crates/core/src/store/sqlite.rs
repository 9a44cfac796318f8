//! The embedded SQLite store: WAL, `synchronous=FULL` so a 2xx survives power
//! loss, and one writer connection that opens every write with `BEGIN IMMEDIATE`
//! (no upgrade deadlocks; other processes on the same file wait on `busy_timeout`).
//! Reads use a separate small pool so they never queue behind writes.
//!
//! **Group commit.** An fsync costs about a millisecond here, so one transaction per
//! webhook caps ingest at roughly a thousand requests a second. With group commit
//! (the default) the webhook handlers don't write themselves: they hand their events
//! to a committer task over a channel and wait. The committer takes everything
//! queued (up to [`MAX_GROUP_REQUESTS`]) into one `BEGIN IMMEDIATE` transaction,
//! decides dedupe for each request in arrival order (one request's conflict stores
//! nothing of that request and nothing less of the others), writes the new events and
//! jobs with a constant number of statements, commits once, and only then answers
//! every request. Should that fail, the group is retried with each request in its
//! own `SAVEPOINT`, so a request that makes SQLite fail fails alone. A failed commit
//! answers all of them with the error: nothing is acknowledged that isn't on disk.
//! There is no timer: while one group commits, the next one queues up, so a lone
//! request pays no extra latency.
//!
//! **Checkpoints off the commit path.** By default SQLite copies the WAL back into
//! the database file inside whichever COMMIT pushes the WAL past 1000 pages, so one
//! group in a few hundred would wait for that copy and its fsync while every
//! request queued behind it waits too. With group commit the writer connection
//! turns that off (`wal_autocheckpoint = 0`) and a background task runs a
//! `PASSIVE` checkpoint on a reader connection every [`CHECKPOINT_EVERY`]: passive
//! checkpoints never block the writer. They copy the WAL into the database file,
//! but SQLite only starts the WAL file over when a writer finds it fully copied,
//! which a steady stream of writes never allows: under sustained load the WAL file
//! keeps growing (300–670 MB after 10 s of `wrk` at ~10,000 webhooks/s) until the
//! load pauses. Bounding it (starting it over between groups when it is large) is
//! open work; it did not cause latency in those runs.
//!
//! All writes — the committer's groups and the worker's claims, checkpoints, … —
//! go through the same one-connection writer pool, whose queue is first come, first
//! served: the committer holds the connection for one group at a time, so neither
//! side can starve the other, and no one waits for the connection while holding it.

use std::{collections::BTreeMap, collections::HashMap, str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use offboard_domain::{SharedClock, SystemClock};
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::{
    Acquire, Row, Sqlite, SqliteConnection, SqlitePool, Transaction,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::sync::{mpsc, oneshot};

use super::{
    contract::{
        Channel, DeliveryLease, DeliveryRetry, IngestOutcome, Job, JobDetail, JobFilter, Lease,
        NewEvent, NewNotification, Notification, NotificationState, Outcome, Reservation,
        SEATS_PENDING_SQL, ScimUser, ScimUserPage, ScimUserQuery, ScimWrite, ScimWriteOutcome,
        SeatWait, StoreError, Via,
    },
    outbox,
    queue::{Round, SeatRequest, Statements, StoreResult, Sweep},
    rows::{
        self, BindShared, Columns, NOTIFICATION_COLUMNS, decode_detail, decode_job, decode_jobs,
        decode_notification, decode_scim_user, ms, new_id,
    },
    rules::{self, Operation, Stored, has_conflict},
};
use crate::domain::{JobKind, JobState};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// At most this many requests share one commit (bounds a group's transaction and
/// the latency of its last member).
pub const MAX_GROUP_REQUESTS: usize = 512;

/// Requests waiting for the committer beyond this make `ingest` wait to enqueue.
const QUEUE_DEPTH: usize = 4096;

/// How often the background checkpointer copies the WAL into the database file
/// (in this crate's unit tests: never while a test runs, so they see what the
/// commits alone do).
pub const CHECKPOINT_EVERY: Duration = if cfg!(test) {
    Duration::from_secs(3600)
} else {
    Duration::from_millis(250)
};

/// SQLite-backed [`JobStore`](super::JobStore).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The committer's queue; `None` when group commit is off.
    committer: Option<mpsc::Sender<IngestRequest>>,
    /// Where "now" comes from for every timestamp this store writes or compares.
    clock: SharedClock,
}

/// One `ingest` call waiting for a group commit.
#[derive(Debug)]
struct IngestRequest {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>,
}

const JOB_COLUMNS: &str = "id, kind, state, attempt, failures, max_attempts, run_at, lease_owner, \
    lease_expires_at, source, event_id, employee_email, action, plan, last_error, approved, \
    parent_id, created_at, updated_at, \
    (SELECT payload FROM events e WHERE e.source = jobs.source AND e.event_id = jobs.event_id) AS payload";

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`), with
    /// group commit.
    pub async fn open(url: &str, synchronous: &str) -> Result<Self, StoreError> {
        Self::open_with(url, synchronous, true).await
    }

    /// [`SqliteStore::open`], choosing whether concurrent ingests share commits.
    /// With `group_commit` this spawns the committer task on the current Tokio
    /// runtime; it ends when the last clone of the store is dropped.
    pub async fn open_with(
        url: &str,
        synchronous: &str,
        group_commit: bool,
    ) -> Result<Self, StoreError> {
        Self::open_with_clock(url, synchronous, group_commit, SystemClock::shared()).await
    }

    /// [`SqliteStore::open_with`], reading "now" from `clock`.
    pub async fn open_with_clock(
        url: &str,
        synchronous: &str,
        group_commit: bool,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        let sync = match synchronous {
            "normal" => SqliteSynchronous::Normal,
            "extra" => SqliteSynchronous::Extra,
            _ => SqliteSynchronous::Full,
        };
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .map(|p| p.split('?').next().unwrap_or(p))
            && let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
            && path != ":memory:"
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.to_owned(),
                source,
            })?;
        }
        let writer_opts = if group_commit {
            opts.clone().pragma("wal_autocheckpoint", "0")
        } else {
            opts.clone()
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(writer_opts)
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(false))
            .await?;
        let committer = group_commit.then(|| {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            tokio::spawn(run_committer(writer.clone(), rx, clock.clone()));
            tokio::spawn(run_checkpointer(reader.clone(), tx.downgrade()));
            tx
        });
        Ok(Self {
            writer,
            reader,
            committer,
            clock,
        })
    }

    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        begin_immediate(&self.writer).await
    }
}

/// `BEGIN IMMEDIATE` on the one writer connection. A COMMIT that failed (the disk
/// full, the file read-only) can leave that connection inside its transaction,
/// refusing every later BEGIN even once the disk has room again; it is then closed
/// (the pool opens a fresh one) and the BEGIN tried once more, so the store
/// recovers by itself.
async fn begin_immediate(writer: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
    match writer.begin_with("BEGIN IMMEDIATE").await {
        Err(sqlx::Error::InvalidSavePointStatement) => {
            tracing::warn!(
                "the SQLite writer connection was left inside a failed transaction: reopening it"
            );
            writer.acquire().await?.close().await?;
            Ok(writer.begin_with("BEGIN IMMEDIATE").await?)
        }
        other => Ok(other?),
    }
}

/// The committer: one group at a time, each group one transaction and one fsync.
async fn run_committer(
    writer: SqlitePool,
    mut queue: mpsc::Receiver<IngestRequest>,
    clock: SharedClock,
) {
    let mut group = Vec::with_capacity(MAX_GROUP_REQUESTS);
    // `recv_many` waits for the first request, then takes whatever else is queued.
    while queue.recv_many(&mut group, MAX_GROUP_REQUESTS).await > 0 {
        let requests: Vec<&[NewEvent]> = group.iter().map(|r| r.events.as_slice()).collect();
        match commit_group(&writer, &requests, ms(clock.now())).await {
            Ok(answers) => {
                metrics::counter!(crate::metrics::STORE_GROUP_COMMITS_TOTAL).increment(1);
                metrics::counter!(crate::metrics::STORE_GROUP_COMMIT_REQUESTS_TOTAL)
                    .increment(group.len() as u64);
                for (request, answer) in group.drain(..).zip(answers) {
                    // The caller may have gone (client hung up): its events are stored
                    // anyway and a retry will be answered as a duplicate.
                    if request.reply.send(answer).is_err() {
                        tracing::debug!("an ingest caller left before its group committed");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = group.len(), "group commit failed; nothing of it was stored");
                let e = Arc::new(e);
                for request in group.drain(..) {
                    if request
                        .reply
                        .send(Err(StoreError::GroupCommit(e.clone())))
                        .is_err()
                    {
                        tracing::debug!("an ingest caller left before its group failed");
                    }
                }
            }
        }
    }
}

/// Copies the WAL into the database file every [`CHECKPOINT_EVERY`], beside the
/// committer rather than inside its commits; ends with the committer (when the
/// last clone of the store is gone). A checkpoint that fails (a full disk, say)
/// is retried at the next tick: the data is safe in the WAL meanwhile.
async fn run_checkpointer(reader: SqlitePool, committer: mpsc::WeakSender<IngestRequest>) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + CHECKPOINT_EVERY,
        CHECKPOINT_EVERY,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if committer.upgrade().is_none() {
            return;
        }
        if let Err(e) = checkpoint_once(&reader).await {
            tracing::debug!(error = %e, "WAL checkpoint failed; retried at the next tick");
        }
    }
}

/// One `PASSIVE` checkpoint: copies what it can without waiting for anyone.
async fn checkpoint_once(reader: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_optional(reader)
        .await
        .map(drop)
}

/// One answer per request of a group, in order.
type GroupAnswers = Vec<Result<Vec<IngestOutcome>, StoreError>>;

/// Commits one group: the batched path, and if that fails for any reason, the group
/// again request by request in savepoints (so a request that makes SQLite fail fails
/// alone). `Err` means nothing of the group was committed.
async fn commit_group(
    writer: &SqlitePool,
    requests: &[&[NewEvent]],
    now: i64,
) -> Result<GroupAnswers, StoreError> {
    match commit_group_batched(writer, requests, now).await {
        Ok(answers) => Ok(answers),
        Err(e) => {
            tracing::warn!(error = %e, requests = requests.len(), "batched group commit failed; retrying it request by request");
            commit_group_savepoints(writer, requests, now).await
        }
    }
}

/// The fast path: a constant number of statements per group, whatever its size.
///
/// Inside one `BEGIN IMMEDIATE` (so nothing changes under it): one `SELECT` finds
/// which of the group's event ids are already stored; dedupe is then decided in
/// memory, request by request in arrival order, exactly as [`ingest_request`] would
/// one after the other (an id accepted earlier in the group is a duplicate or a
/// conflict for later requests; a request with any conflict stages nothing); one
/// `INSERT … SELECT FROM jsonb_each(?)` stores all new events and one all their jobs
/// (`jsonb_each` hands each row over parsed once, not once per column).
/// Nothing is written for a request that doesn't commit, so it needs no savepoint.
async fn commit_group_batched(
    writer: &SqlitePool,
    requests: &[&[NewEvent]],
    now: i64,
) -> Result<GroupAnswers, StoreError> {
    let mut tx = begin_immediate(writer).await?;

    // (source, event id) → (body sha, its first job) for every id already stored.
    let mut keys: Vec<(&str, &str)> = requests
        .iter()
        .flat_map(|events| events.iter())
        .map(|ev| (ev.source.as_str(), ev.event.id.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let keys = to_json(&keys)?;
    let mut known: HashMap<(String, String), (String, Option<String>)> = HashMap::new();
    for row in sqlx::query(
        "SELECT e.source, e.event_id, e.body_sha256, \
           COALESCE((SELECT j.id FROM jobs j WHERE j.source = e.source AND j.event_id = e.event_id \
              AND j.parent_id IS NULL ORDER BY j.id LIMIT 1), e.pruned_job_id) AS job_id \
         FROM jsonb_each(?) k JOIN events e ON e.source = k.value ->> 0 AND e.event_id = k.value ->> 1",
    )
    .bind(keys)
    .fetch_all(&mut *tx)
    .await?
    {
        known.insert(
            (row.try_get("source")?, row.try_get("event_id")?),
            (row.try_get("body_sha256")?, row.try_get("job_id")?),
        );
    }

    let mut answers = Vec::with_capacity(requests.len());
    // Rows for `jsonb_each`, serialized straight from borrowed fields.
    let mut new_events: Vec<(&str, &str, &str, String)> = Vec::new();
    let mut new_jobs: Vec<(String, &str, u32, i64, &str, &str, &str)> = Vec::new();
    for events in requests {
        match decide(events, &known) {
            Err(e) => answers.push(Err(e)),
            Ok(Decision { outcomes, .. }) if has_conflict(&outcomes) => answers.push(Ok(outcomes)),
            Ok(Decision { outcomes, staged }) => {
                for (ev, job_id, payload) in staged {
                    known.insert(
                        (ev.source.clone(), ev.event.id.clone()),
                        (ev.body_sha256.clone(), Some(job_id.clone())),
                    );
                    new_events.push((&ev.source, &ev.event.id, &ev.body_sha256, payload));
                    new_jobs.push((
                        job_id,
                        ev.job_kind().as_str(),
                        ev.max_attempts,
                        ms(ev.run_at),
                        &ev.source,
                        &ev.event.id,
                        ev.event.employee.email.as_str(),
                    ));
                }
                answers.push(Ok(outcomes));
            }
        }
    }

    if !new_events.is_empty() {
        let expected = new_events.len() as u64;
        let events = sqlx::query(
            "INSERT INTO events (source, event_id, body_sha256, payload, received_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, ? FROM jsonb_each(?)",
        )
        .bind(now)
        .bind(to_json(&new_events)?)
        .execute(&mut *tx)
        .await?;
        let jobs = sqlx::query(
            "INSERT INTO jobs (id, kind, state, max_attempts, run_at, source, event_id, employee_email, created_at, updated_at) \
             SELECT value ->> 0, value ->> 1, 'queued', value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, ?, ? \
             FROM jsonb_each(?)",
        )
        .bind(now)
        .bind(now)
        .bind(to_json(&new_jobs)?)
        .execute(&mut *tx)
        .await?;
        if events.rows_affected() != expected || jobs.rows_affected() != expected {
            return Err(StoreError::Corrupt(format!(
                "group insert stored {} events and {} jobs of {expected}",
                events.rows_affected(),
                jobs.rows_affected()
            )));
        }
    }
    tx.commit().await?;
    Ok(answers)
}

fn to_json(rows: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// What one request of a group would do.
struct Decision<'a> {
    outcomes: Vec<IngestOutcome>,
    /// Events to store: (event, new job id, canonical JSON).
    staged: Vec<(&'a NewEvent, String, String)>,
}

/// Dedupe for one request against what is stored (or accepted earlier in the
/// group), the same rules as [`ingest_one`].
fn decide<'a>(
    events: &'a [NewEvent],
    known: &HashMap<(String, String), (String, Option<String>)>,
) -> Result<Decision<'a>, StoreError> {
    let mut outcomes = Vec::with_capacity(events.len());
    let mut staged: Vec<(&NewEvent, String, String)> = Vec::with_capacity(events.len());
    for ev in events {
        let event_id = ev.event.id.clone();
        // An id repeated inside one request: the later one sees the earlier.
        let earlier = staged
            .iter()
            .find(|(s, _, _)| s.source == ev.source && s.event.id == ev.event.id)
            .map(|(s, job, _)| (s.body_sha256.as_str(), Some(job.as_str())));
        let seen = earlier.or_else(|| {
            known
                .get(&(ev.source.clone(), event_id.clone()))
                .map(|(sha, job)| (sha.as_str(), job.as_deref()))
        });
        if let Some((body_sha256, job_id)) = seen {
            outcomes.push(rules::seen_before(
                ev,
                Stored {
                    body_sha256,
                    job_id,
                },
            )?);
            continue;
        }
        let job_id = new_id();
        outcomes.push(IngestOutcome::Accepted {
            event_id,
            job_id: job_id.clone(),
        });
        staged.push((ev, job_id, rules::payload(ev)?));
    }
    Ok(Decision { outcomes, staged })
}

/// The robust path: each request in its own savepoint of one transaction, one
/// commit. A request whose statements fail is rolled back to its savepoint and
/// answered with its error; the others still commit.
async fn commit_group_savepoints(
    writer: &SqlitePool,
    requests: &[&[NewEvent]],
    now: i64,
) -> Result<GroupAnswers, StoreError> {
    let mut tx = begin_immediate(writer).await?;
    let mut answers = Vec::with_capacity(requests.len());
    for events in requests {
        let mut savepoint = (&mut tx).begin().await?;
        match ingest_request(&mut savepoint, events, now).await {
            Ok(out) if !has_conflict(&out) => {
                savepoint.commit().await?;
                answers.push(Ok(out));
            }
            answer => {
                // A conflict anywhere in one request stores nothing of it; an error
                // fails only this request.
                savepoint.rollback().await?;
                answers.push(answer);
            }
        }
    }
    tx.commit().await?;
    Ok(answers)
}

/// Stores one request's events, stopping at the first error.
async fn ingest_request(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
    now: i64,
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        out.push(ingest_one(conn, ev, now).await?);
    }
    Ok(out)
}

/// Stores one event and its job inside an open transaction.
async fn ingest_one(
    tx: &mut SqliteConnection,
    ev: &NewEvent,
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    let event_id = ev.event.id.clone();
    let existing = sqlx::query(
        "SELECT e.body_sha256, COALESCE((SELECT j.id FROM jobs j WHERE j.source = e.source \
           AND j.event_id = e.event_id AND j.parent_id IS NULL ORDER BY j.id LIMIT 1), e.pruned_job_id) AS job_id \
         FROM events e WHERE e.source = ? AND e.event_id = ?",
    )
    .bind(&ev.source)
    .bind(&event_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = existing {
        return rules::seen_in(ev, &row);
    }
    let payload = rules::payload(ev)?;
    sqlx::query("INSERT INTO events (source, event_id, body_sha256, payload, received_at) VALUES (?, ?, ?, ?, ?)")
        .bind(&ev.source)
        .bind(&event_id)
        .bind(&ev.body_sha256)
        .bind(payload)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let job_id = new_id();
    sqlx::query(
        "INSERT INTO jobs (id, kind, state, max_attempts, run_at, source, event_id, employee_email, created_at, updated_at) \
         VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )
    .new_job(&job_id, ev, now)
    .execute(&mut *tx)
    .await?;
    Ok(IngestOutcome::Accepted { event_id, job_id })
}

const SCIM_COLUMNS: &str =
    "id, user_name, external_id, active, resource, version, created_at, updated_at";

/// The conditions of a SCIM user list, numbered as [`BindShared::scim_query`] binds.
const SCIM_WHERE: &str = "(?1 IS NULL OR user_name_key = ?1) AND (?2 IS NULL OR external_id = ?2)";

/// Leases due jobs: one runnable job per employee, and none whose employee already
/// has a running job (`claim_due`).
const CLAIM_DUE: &str = "SELECT MIN(id) FROM jobs j \
     WHERE state IN ('queued', 'scheduled') AND run_at <= ?1 \
       AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.employee_email = j.employee_email AND r.state = 'running') \
     GROUP BY employee_email ORDER BY MIN(run_at), MIN(id) LIMIT ?2";

/// A page of jobs, newest first (`select_jobs`; binds as [`BindShared::filter`]).
/// The cursor is a bound, not `?4 IS NULL OR id < ?4`: with the `OR` SQLite walked
/// the primary key from the newest job down to the cursor (a last page read every
/// job); `'~'` sorts after every id (hex digits and dashes), so no cursor is the
/// first page and either way the page is one seek. A filter that is set is written
/// as a plain equality (the statement is picked per filter), so it seeks too: by
/// employee through `jobs_employee` (an employee has a few jobs), by state through
/// `jobs_state` (state, id) in id order; with an `OR` a rare state read every job.
fn select_jobs_sql(filter: &JobFilter) -> String {
    let by = if filter.employee.is_some() {
        "employee_email = ?2 AND (?1 IS NULL OR state = ?1)"
    } else if filter.state.is_some() {
        "state = ?1"
    } else {
        "?1 IS NULL AND ?2 IS NULL"
    };
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs \
         WHERE {by} AND (?3 IS NULL OR created_at >= ?3) AND id < COALESCE(?4, '~') \
         ORDER BY id DESC LIMIT ?5"
    )
}

/// One job with its event (`select_detail`).
fn job_by_id_sql() -> String {
    format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1")
}

/// A job's checkpoints (`select_detail`).
const DETAIL_CHECKPOINTS: &str =
    "SELECT key, value FROM checkpoints WHERE job_id = ?1 ORDER BY key";

/// A job's audit trail, in order (`select_detail`).
const DETAIL_AUDIT: &str = "SELECT at, kind, detail FROM audit WHERE job_id = ?1 ORDER BY id";

/// A job's notifications (`select_detail`).
fn detail_notifications_sql() -> String {
    format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE job_id = ?1 ORDER BY created_at, id"
    )
}

/// Jobs per state, kept by triggers (migration 0005): one row per state, not a
/// scan of every job.
const COUNT_STATES: &str = "SELECT state, n FROM job_counts";

/// `run_at` of the oldest due job.
const OLDEST_DUE: &str =
    "SELECT MIN(run_at) FROM jobs WHERE state IN ('queued', 'scheduled') AND run_at <= ?1";

/// Notifications still to deliver, per channel.
const NOTIFICATIONS_PENDING: &str = "SELECT channel, COUNT(*) AS n FROM notifications \
     WHERE state IN ('pending', 'sending') GROUP BY channel";

/// The statements `offboard bench store` times, by name, exactly as the methods
/// above run them, for `EXPLAIN QUERY PLAN` (`store::bulk::query_plans`).
pub(super) fn measured_statements() -> Vec<(&'static str, String)> {
    vec![
        ("claim", CLAIM_DUE.to_owned()),
        ("list_jobs", select_jobs_sql(&JobFilter::default())),
        (
            "list_jobs (a state)",
            select_jobs_sql(&JobFilter {
                state: Some(JobState::NeedsReview),
                ..JobFilter::default()
            }),
        ),
        (
            "list_jobs (an employee)",
            select_jobs_sql(&JobFilter {
                employee: Some(String::new()),
                ..JobFilter::default()
            }),
        ),
        ("get_job: job", job_by_id_sql()),
        ("get_job: checkpoints", DETAIL_CHECKPOINTS.to_owned()),
        ("get_job: audit", DETAIL_AUDIT.to_owned()),
        ("get_job: notifications", detail_notifications_sql()),
        ("metrics: count_by_state", COUNT_STATES.to_owned()),
        ("metrics: oldest_runnable_age", OLDEST_DUE.to_owned()),
        ("metrics: seats_pending", SEATS_PENDING_SQL.to_owned()),
        (
            "metrics: notifications_pending",
            NOTIFICATIONS_PENDING.to_owned(),
        ),
    ]
}

/// The final states, as an SQL list: retention deletes only jobs in them.
const FINISHED: &str = "('succeeded', 'failed', 'cancelled')";

/// The tables whose rows belong to one job (`job_id`) and go with it when it is
/// pruned, children before the job row their foreign keys point at.
const PRUNED_WITH_JOB: [&str; 4] = ["checkpoints", "notifications", "seat_actions", "audit"];

/// `WHERE` fragment that fences a write to the lease holder.
const FENCE: &str = "id = ?1 AND lease_owner = ?2 AND attempt = ?3 AND state = 'running'";

/// One notice of a step (see [`outbox::insert_notices`]).
const NOTICE_INSERT: &str = "INSERT INTO notifications (id, job_id, event, channel, target, \
     message, state, attempts, next_at, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7, ?7) ON CONFLICT (id) DO NOTHING";

/// Its `notify.queued` line.
const NOTICE_AUDIT: &str =
    "INSERT INTO audit (job_id, at, kind, detail) VALUES (?1, ?2, 'notify.queued', ?3)";

/// A delivered attempt, fenced by its lease (see [`outbox::record_delivered`]).
const NOTICE_DELIVERED: &str = "UPDATE notifications SET state = 'delivered', delivered_at = ?4, \
     last_error = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?4 \
     WHERE id = ?1 AND lease_owner = ?2 AND attempts = ?3 AND state = 'sending' \
     RETURNING job_id, event, channel, target";

/// Its `notify.delivered` line.
const NOTICE_AUDIT_DELIVERED: &str =
    "INSERT INTO audit (job_id, at, kind, detail) VALUES (?1, ?2, 'notify.delivered', ?3)";

/// What a failed attempt's decision reads, fenced by its lease (see [`outbox::record_failed`]).
const NOTICE_LEASED: &str = "SELECT job_id, event, channel, target, attempts, created_at \
     FROM notifications WHERE id = ?1 AND lease_owner = ?2 AND attempts = ?3 AND state = 'sending'";

/// What it writes.
const NOTICE_FAILED: &str = "UPDATE notifications SET state = ?2, next_at = ?3, last_error = ?4, \
     lease_owner = NULL, lease_expires_at = NULL, updated_at = ?5 WHERE id = ?1";

/// The line it adds to the trail (`notify.retry` or `notify.dead`).
const NOTICE_ATTEMPT_AUDIT: &str =
    "INSERT INTO audit (job_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)";

/// The statements behind [`JobStore`](super::JobStore) (implemented in `queue.rs`). Writes open with
/// `BEGIN IMMEDIATE` on the one writer connection; reads use the reader pool.
#[async_trait]
impl Statements for SqliteStore {
    async fn run_migrations(&self) -> StoreResult<()> {
        Ok(MIGRATOR.run(&self.writer).await?)
    }

    async fn applied_migrations(&self) -> StoreResult<Vec<i64>> {
        Ok(
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    async fn insert_events(&self, events: Vec<NewEvent>) -> StoreResult<Vec<IngestOutcome>> {
        if let Some(committer) = &self.committer {
            let (reply, answer) = oneshot::channel();
            // The committer only stops when its runtime shuts down.
            let gone = || StoreError::Database(sqlx::Error::WorkerCrashed);
            committer
                .send(IngestRequest { events, reply })
                .await
                .map_err(|_| gone())?;
            return answer.await.map_err(|_| gone())?;
        }
        let mut tx = self.write_tx().await?;
        let out = ingest_request(&mut tx, &events, self.now()).await?;
        // A conflict anywhere in one request stores nothing of it.
        if has_conflict(&out) {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(out)
    }

    async fn claim_due(&self, round: Round<'_>) -> StoreResult<Vec<Job>> {
        let mut tx = self.write_tx().await?;
        // One runnable job per employee, and none whose employee already has a running job.
        let ids: Vec<String> = sqlx::query_scalar(CLAIM_DUE)
            .bind(round.now)
            .bind(i64::try_from(round.n).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = ?, \
                 lease_expires_at = ?, updated_at = ? WHERE id = ? RETURNING {JOB_COLUMNS}"
            )))
            .bind(round.owner)
            .bind(round.until)
            .bind(round.now)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            claimed.push(decode_job(&row)?);
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn extend_lease(&self, lease: &Lease, until: i64) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET lease_expires_at = ?4 WHERE {FENCE}"
        )))
        .fence(lease)
        .bind(until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn end_run(
        &self,
        lease: &Lease,
        outcome: Outcome,
        notices: &[NewNotification],
    ) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let held = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT failures, max_attempts FROM jobs WHERE {FENCE}"
        )))
        .fence(lease);
        let Some(row) = held.fetch_optional(&mut *tx).await? else {
            return Ok(false);
        };
        let to = rules::transition(
            outcome,
            row.try_get("failures")?,
            row.try_get("max_attempts")?,
            now,
        );
        sqlx::query(
            "UPDATE jobs SET state = ?, run_at = COALESCE(?, run_at), failures = ?, last_error = COALESCE(?, last_error), \
             lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(to.state.as_str())
        .bind(to.run_at)
        .bind(to.failures)
        .bind(to.last_error)
        .bind(now)
        .bind(&lease.job_id)
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
        tx.commit().await?;
        Ok(true)
    }

    async fn requeue_lapsed(&self) -> StoreResult<u64> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, run_at = ?1, updated_at = ?1 \
             WHERE state = 'running' AND lease_expires_at < ?1 RETURNING id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            sqlx::query("INSERT INTO audit (job_id, at, kind, detail) VALUES (?, ?, 'lease.expired', '{\"requeued\":true}')")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
    }

    async fn write_plan(
        &self,
        lease: &Lease,
        action: &str,
        plan: &Value,
        notices: &[NewNotification],
    ) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET action = ?4, plan = ?5, updated_at = ?6 WHERE {FENCE}"
        )))
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
        let now = self.now();
        let mut tx = self.write_tx().await?;
        // Under `BEGIN IMMEDIATE` nothing changes between the fence check and the write.
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO checkpoints (job_id, key, value, updated_at) \
             SELECT id, ?4, ?5, ?6 FROM jobs WHERE {FENCE} \
             ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
        ))).fenced_value(lease, key, v, now)
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
        let now = self.now();
        let mut tx = self.write_tx().await?;
        for (kind, detail) in entries {
            sqlx::query("INSERT INTO audit (job_id, at, kind, detail) VALUES (?, ?, ?, ?)")
                .bind(job_id)
                .bind(now)
                .bind(kind)
                .bind(detail.to_string())
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx.commit().await?)
    }

    async fn follow_up(&self, lease: &Lease, kind: JobKind, at: i64) -> StoreResult<String> {
        let mut tx = self.write_tx().await?;
        let held = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM jobs WHERE {FENCE}"
        )))
        .fence(lease);
        if held.fetch_optional(&mut *tx).await?.is_none() {
            return Err(StoreError::LeaseLost(lease.job_id.clone()));
        }
        // The unique (parent_id, kind) index makes a second call insert nothing.
        sqlx::query(
            "INSERT INTO jobs (id, kind, state, max_attempts, run_at, source, event_id, employee_email, parent_id, created_at, updated_at) \
             SELECT ?1, ?2, 'scheduled', max_attempts, ?3, source, event_id, employee_email, id, ?4, ?4 FROM jobs WHERE id = ?5 \
             ON CONFLICT DO NOTHING",
        )
        .follow_up(lease, kind, at, self.now())
        .execute(&mut *tx)
        .await?;
        let id: String = sqlx::query_scalar("SELECT id FROM jobs WHERE parent_id = ? AND kind = ?")
            .bind(&lease.job_id)
            .bind(kind.as_str())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn cancel_others(&self, sweep: Sweep<'_>) -> StoreResult<Vec<String>> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'cancelled', last_error = ?, updated_at = ? \
             WHERE employee_email = ? AND id <> ? AND state IN ('queued', 'scheduled', 'needs_review') RETURNING id",
        )
        .bind(sweep.reason)
        .bind(now)
        .bind(sweep.email)
        .bind(sweep.except)
        .fetch_all(&mut *tx)
        .await?;
        let detail = serde_json::json!({ "reason": sweep.reason, "by_job": sweep.except });
        for id in &ids {
            sqlx::query(
                "INSERT INTO audit (job_id, at, kind, detail) VALUES (?, ?, 'job.cancelled', ?)",
            )
            .bind(id)
            .bind(now)
            .bind(detail.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn select_for(&self, email: &str, states: &[JobState]) -> StoreResult<Vec<Job>> {
        let states = to_json(&states.iter().map(|s| s.as_str()).collect::<Vec<_>>())?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE employee_email = ? \
             AND state IN (SELECT value FROM json_each(?)) ORDER BY id DESC"
        )))
        .bind(email)
        .bind(states);
        decode_jobs(&rows.fetch_all(&self.reader).await?)
    }

    async fn reserve(&self, req: SeatRequest<'_>) -> StoreResult<Option<Reservation>> {
        let mut tx = self.write_tx().await?;
        // Under `BEGIN IMMEDIATE` reservations are serialised: the counts stay true
        // until this one commits.
        let facts = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM seat_actions WHERE job_id = ?1) AS mine, \
               (SELECT COUNT(*) FROM seat_actions WHERE at >= ?4 AND action = ?5) AS same, \
               (SELECT COUNT(*) FROM seat_actions WHERE at >= ?4) AS all_actions \
             FROM jobs WHERE {FENCE}"
        )))
        .fence(req.lease)
        .bind(req.since)
        .bind(req.action)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(facts) = facts else { return Ok(None) };
        if let Some(settled) = rules::settled_seat(&facts, req.max_same_action, req.max_all)? {
            return Ok(Some(settled));
        }
        let insert = "INSERT INTO seat_actions (job_id, action, at) VALUES (?1, ?2, ?3)";
        rows::grant_seat(tx, insert, &req.lease.job_id, req.action, self.now()).await
    }

    async fn select_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(select_jobs_sql(filter))).filter(filter);
        decode_jobs(&rows.fetch_all(&self.reader).await?)
    }

    async fn select_detail(&self, id: &str) -> StoreResult<Option<JobDetail>> {
        // One read transaction: the job, its checkpoints and its trail agree.
        let mut tx = self.reader.begin().await?;
        let job = sqlx::query(sqlx::AssertSqlSafe(job_by_id_sql()))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(job) = job else { return Ok(None) };
        let checkpoints = sqlx::query(DETAIL_CHECKPOINTS)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let audit = sqlx::query(DETAIL_AUDIT)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let notifications = sqlx::query(sqlx::AssertSqlSafe(detail_notifications_sql()))
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let detail = decode_detail(&job, &checkpoints, &audit, &notifications)?;
        tx.commit().await?;
        Ok(Some(detail))
    }

    async fn operate(&self, id: &str, op: Operation<'_>, via: Via) -> StoreResult<Job> {
        let now = self.now();
        let change = op.change(now);
        let (rewrite_error, error) = change.last_error();
        let mut tx = self.write_tx().await?;
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let from = op.check(id, state)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = ?2, run_at = COALESCE(?3, run_at), \
               failures = CASE WHEN ?4 THEN 0 ELSE failures END, \
               last_error = CASE WHEN ?5 THEN ?6 ELSE last_error END, approved = (approved OR ?7), \
               lease_owner = NULL, lease_expires_at = NULL, updated_at = ?8 \
             WHERE id = ?1 RETURNING {JOB_COLUMNS}"
        )))
        .bind(id)
        .bind(change.state.as_str())
        .bind(change.run_at)
        .bind(change.reset_failures)
        .bind(rewrite_error)
        .bind(error)
        .bind(change.approve)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let job = decode_job(&row)?;
        // Where the action came from (API, CLI, console) and the reason belong in the trail.
        let detail = op.audit_detail(from, via).to_string();
        sqlx::query("INSERT INTO audit (job_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)")
            .bind(id)
            .bind(now)
            .bind(op.audit_kind())
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn prune_batch(&self, before: i64, limit: u32) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let picked = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, source, event_id FROM jobs j \
             WHERE state IN {FINISHED} AND updated_at < ?1 \
               AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = j.id) \
               AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.job_id = j.id \
                               AND n.state IN ('pending', 'sending')) \
             LIMIT ?2"
        )))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if picked.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(picked.len());
        let mut events = Vec::with_capacity(picked.len());
        for row in &picked {
            ids.push(row.try_get::<String, _>("id")?);
            events.push((
                row.try_get::<String, _>("source")?,
                row.try_get::<String, _>("event_id")?,
            ));
        }
        let ids = to_json(&ids)?;
        // The tombstone first, while the job still says which one it was.
        sqlx::query(
            "UPDATE events SET pruned_job_id = j.id FROM jobs j \
             WHERE j.id IN (SELECT value FROM json_each(?1)) AND j.parent_id IS NULL \
               AND events.source = j.source AND events.event_id = j.event_id",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        for table in PRUNED_WITH_JOB {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE job_id IN (SELECT value FROM json_each(?1))"
            )))
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        }
        let gone = sqlx::query("DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(&ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // An event no job refers to any more keeps only what dedupe needs.
        sqlx::query(
            "UPDATE events SET payload = 'null' \
             WHERE (source, event_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?1)) \
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.source = events.source AND j.event_id = events.event_id)",
        )
        .bind(to_json(&events)?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone)
    }

    async fn scim_select(&self, id: &str) -> StoreResult<Option<ScimUser>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SCIM_COLUMNS} FROM scim_users WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(decode_scim_user).transpose()
    }

    async fn scim_select_page(&self, query: &ScimUserQuery) -> StoreResult<ScimUserPage> {
        // One read transaction: the total and the page describe the same moment.
        let mut tx = self.reader.begin().await?;
        let total = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM scim_users WHERE {SCIM_WHERE}"
        )))
        .scim_query(query)
        .fetch_one(&mut *tx)
        .await?
        .int("n")?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SCIM_COLUMNS} FROM scim_users WHERE {SCIM_WHERE} ORDER BY id LIMIT ?3 OFFSET ?4"
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
        let mut tx = self.write_tx().await?;
        let found = rows::scim_found(
            &mut tx,
            "SELECT version, created_at FROM scim_users WHERE id = ?1",
            "SELECT id FROM scim_users WHERE user_name_key = ?1",
            write,
        )
        .await?;
        if let Some(refused) = rules::scim_refusal(write, &found) {
            tx.rollback().await?;
            return Ok(refused);
        }
        let version = rules::scim_next_version(write);
        let statement = match (&write.values, found.current) {
            (Some(_), None) => {
                "INSERT INTO scim_users (id, user_name, user_name_key, external_id, active, \
                 resource, version, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)"
            }
            (Some(_), Some(_)) => {
                "UPDATE scim_users SET user_name = ?2, user_name_key = ?3, external_id = ?4, \
                 active = ?5, resource = ?6, version = ?7, updated_at = ?8 WHERE id = ?1"
            }
            (None, _) => "DELETE FROM scim_users WHERE id = ?1",
        };
        match &write.values {
            Some(values) => {
                sqlx::query(statement)
                    .scim_user(&write.id, values, version, now)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query(statement)
                    .bind(&write.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let event = match &write.event {
            Some(ev) => Some(ingest_one(&mut tx, ev, now).await?),
            None => None,
        };
        let answer = rules::scim_written(write, &found, event, now)?;
        tx.commit().await?;
        Ok(answer)
    }

    async fn count_states(&self) -> StoreResult<BTreeMap<JobState, u64>> {
        let rows = sqlx::query(COUNT_STATES).fetch_all(&self.reader).await?;
        rows::tally_states(&rows)
    }

    async fn oldest_due(&self, now: i64) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(OLDEST_DUE)
            .bind(now)
            .fetch_one(&self.reader)
            .await?)
    }

    async fn count_seats_pending(&self) -> StoreResult<BTreeMap<String, u64>> {
        let rows = sqlx::query(SEATS_PENDING_SQL)
            .fetch_all(&self.reader)
            .await?;
        rows::tally_actions(&rows)
    }

    async fn select_seat_waits(&self, limit: u32) -> StoreResult<Vec<SeatWait>> {
        // The checkpoint keys are worker/checkpoint.rs's SEAT_REQUESTED and
        // ADMIN_TASK (frozen names); the states are SEATS_PENDING_SQL's.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS},                (SELECT value FROM checkpoints c WHERE c.job_id = jobs.id AND c.key = 'seat_requested_at') AS seat_requested_at,                (SELECT value FROM checkpoints c WHERE c.job_id = jobs.id AND c.key = 'admin_task_id') AS admin_task_id              FROM jobs              WHERE state IN ('queued', 'running', 'scheduled', 'needs_review')                AND EXISTS (SELECT 1 FROM checkpoints c WHERE c.job_id = jobs.id AND c.key = 'seat_requested_at')              ORDER BY id LIMIT ?1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::decode_seat_wait).collect()
    }

    async fn claim_due_notifications(
        &self,
        owner: &str,
        n: usize,
        until: i64,
        now: i64,
    ) -> StoreResult<Vec<Notification>> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE notifications SET state = 'sending', attempts = attempts + 1, \
               lease_owner = ?1, lease_expires_at = ?2, updated_at = ?3 \
             WHERE id IN (SELECT id FROM notifications \
               WHERE (state = 'pending' AND next_at <= ?3) OR (state = 'sending' AND lease_expires_at < ?3) \
               ORDER BY next_at, id LIMIT ?4) \
             RETURNING {NOTIFICATION_COLUMNS}"
        )))
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        let claimed = rows
            .iter()
            .map(decode_notification)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn mark_delivered(&self, lease: &DeliveryLease) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
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
        let mut tx = self.write_tx().await?;
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
            .fetch_all(&self.reader)
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

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::{domain::OffboardingEvent, store::JobStore};

    fn ev(id: &str, body: &str) -> NewEvent {
        let event = OffboardingEvent::from_json(
            &serde_json::json!({
                "id": id,
                "type": "employee.terminated",
                "employee": { "email": format!("{id}@example.com") },
            }),
            None,
        )
        .expect("valid event");
        NewEvent {
            source: "hr".into(),
            event,
            body_sha256: format!("sha-{body}"),
            run_at: Utc::now(),
            max_attempts: 3,
        }
    }

    /// Outcomes with job ids replaced by the event id that created the job, so two
    /// stores' answers compare.
    fn shape(answers: &GroupAnswers, jobs: &HashMap<String, String>) -> Vec<String> {
        answers
            .iter()
            .map(|a| match a {
                Err(e) => format!("error {e}"),
                Ok(out) => out
                    .iter()
                    .map(|o| match o {
                        IngestOutcome::Accepted { event_id, .. } => format!("accepted {event_id}"),
                        IngestOutcome::Duplicate { event_id, job_id } => {
                            format!("duplicate {event_id} of job for {}", jobs[job_id])
                        }
                        IngestOutcome::Conflict { event_id } => format!("conflict {event_id}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect()
    }

    async fn stored(store: &SqliteStore) -> (Vec<String>, HashMap<String, String>) {
        let jobs = store.list_jobs(&JobFilter::default()).await.expect("list");
        let mut ids: Vec<String> = jobs.iter().map(|j| j.event_id.clone()).collect();
        ids.sort();
        let by_job = jobs.into_iter().map(|j| (j.id, j.event_id)).collect();
        (ids, by_job)
    }

    /// With group commit the commits never copy the WAL back themselves (the
    /// writer's `wal_autocheckpoint` is 0): the database file does not grow until
    /// a checkpoint like the background checkpointer's runs (which, in unit tests,
    /// waits an hour).
    #[tokio::test]
    async fn the_wal_is_checkpointed_beside_the_commits_not_inside_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("t.db");
        let url = format!("sqlite://{}", db.display());
        let store = SqliteStore::open_with(&url, "full", true)
            .await
            .expect("open");
        let autocheckpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.writer)
            .await
            .expect("pragma");
        assert_eq!(autocheckpoint, 0, "the writer's commits never checkpoint");
        store.migrate().await.expect("migrate");
        checkpoint_once(&store.reader).await.expect("checkpoint");
        let size = || std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        let before = size();
        // Well past SQLite's 1000-page autocheckpoint threshold.
        let body = "x".repeat(4000);
        for i in 0..1500 {
            store
                .ingest(vec![ev(&format!("e{i}"), &format!("{i}{body}"))])
                .await
                .expect("ingest");
        }
        assert_eq!(size(), before, "a commit copied the WAL into the file");
        checkpoint_once(&store.reader).await.expect("checkpoint");
        assert!(size() > before, "the checkpoint copied nothing");
    }

    /// The batched path and the savepoint path give the same answers and store the
    /// same rows for a group that mixes every case.
    #[tokio::test]
    async fn both_group_paths_agree() {
        let group: Vec<Vec<NewEvent>> = vec![
            vec![ev("a", "1")],                 // new
            vec![ev("a", "1")],                 // duplicate of the one just above
            vec![ev("a", "2")],                 // conflict with it
            vec![ev("b", "1"), ev("old", "x")], // conflict with a stored id: b not stored
            vec![ev("b", "1")],                 // so b is new here
            vec![ev("c", "1"), ev("c", "1")],   // repeated inside one request
            vec![ev("old", "0")],               // duplicate of a stored event
            vec![],                             // nothing at all
        ];
        let requests: Vec<&[NewEvent]> = group.iter().map(Vec::as_slice).collect();
        let mut results = Vec::new();
        for batched in [true, false] {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/t.db", dir.path().display());
            let store = SqliteStore::open_with(&url, "full", false)
                .await
                .expect("open");
            store.migrate().await.expect("migrate");
            store.ingest(vec![ev("old", "0")]).await.expect("seed");
            let answers = if batched {
                commit_group_batched(&store.writer, &requests, store.now()).await
            } else {
                commit_group_savepoints(&store.writer, &requests, store.now()).await
            }
            .expect("group commits");
            let (ids, jobs) = stored(&store).await;
            results.push((shape(&answers, &jobs), ids));
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(
            results[0].0,
            vec![
                "accepted a",
                "duplicate a of job for a",
                "conflict a",
                "accepted b, conflict old",
                "accepted b",
                "accepted c, duplicate c of job for c",
                "duplicate old of job for old",
                "",
            ]
        );
        assert_eq!(results[0].1, vec!["a", "b", "c", "old"]);
    }

    /// Many concurrent callers through the committer: each gets its own answer,
    /// and everything acknowledged is stored once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_ingests_share_commits() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = SqliteStore::open(&url, "full").await.expect("open");
        store.migrate().await.expect("migrate");
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.ingest(vec![ev(&format!("e{i}"), "1")]).await })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let out = task.await.expect("task").expect("ingest");
            assert!(
                matches!(&out[..], [IngestOutcome::Accepted { event_id, .. }] if *event_id == format!("e{i}"))
            );
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&store.reader)
            .await
            .expect("count");
        assert_eq!(count, 200);
    }
}
