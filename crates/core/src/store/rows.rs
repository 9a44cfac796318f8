//! How stored rows become domain values, once for both backends: the column
//! accessors any sqlx row offers ([`Columns`]), the decoding of jobs, checkpoints and
//! audit entries, and the representations both schemas share (Unix milliseconds for
//! time, `bigint`/`INTEGER` for counts, UUIDv7 strings for ids).
//!
//! Stored data is input too: a value that doesn't decode is [`StoreError::Corrupt`]
//! naming the job and the column, never a silent default (a timestamp that reads back
//! as 1970 would make a job runnable, or its lease expired, for ever).

use std::{collections::BTreeMap, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type, query::Query};

use super::contract::{
    AuditEntry, Channel, Job, JobDetail, JobFilter, Lease, NewEvent, Notification,
    NotificationState, Reservation, ScimUser, ScimUserQuery, ScimUserValues, ScimWrite, SeatWait,
    StoreError,
};
use crate::domain::{JobKind, JobState, OffboardingEvent};

/// Typed column access for any sqlx row whose database stores text, 64-bit integers
/// and booleans (SQLite's `INTEGER` 0/1 decodes as a boolean too). Errors are the
/// driver's (a missing column, a type mismatch): the query, not the data, is wrong.
pub(crate) trait Columns {
    /// A `NOT NULL` text column.
    fn text(&self, col: &str) -> Result<String, StoreError>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    /// A `NOT NULL` integer column.
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    /// A boolean column.
    fn flag(&self, col: &str) -> Result<bool, StoreError>;
}

impl<R> Columns for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> Result<String, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn flag(&self, col: &str) -> Result<bool, StoreError> {
        Ok(self.try_get(col)?)
    }
}

/// A statement being bound, on either database.
pub(crate) type Bound<'q, DB> = Query<'q, DB, <DB as Database>::Arguments>;

/// Binds the same values in the same order on either database: each backend's SQL
/// numbers its parameters to match (`?N` in SQLite, `$N` in PostgreSQL).
pub(crate) trait BindShared: Sized {
    /// The fence: job id, owner, attempt (parameters 1 to 3).
    fn fence(self, lease: &Lease) -> Self;
    /// A new job for `ev`: id, kind, max attempts, run_at, source, event id, e-mail,
    /// and `now` (parameters 1 to 8).
    fn new_job(self, job_id: &str, ev: &NewEvent, now: i64) -> Self;
    /// A list filter: state, employee, since, before, limit (parameters 1 to 5).
    fn filter(self, filter: &JobFilter) -> Self;
    /// A follow-up of the leased job: new id, kind, run_at, now, parent (1 to 5).
    fn follow_up(self, lease: &Lease, kind: JobKind, run_at: i64, now: i64) -> Self;
    /// A fenced write of a named JSON value: the fence, `name`, `value` as text, and
    /// `now` (parameters 1 to 6): a plan under its action, a checkpoint under its key.
    fn fenced_value(self, lease: &Lease, name: &str, value: &Value, now: i64) -> Self;
    /// A seat-action reservation: job id, action, `now` (parameters 1 to 3).
    fn seat_action(self, job_id: &str, action: &str, now: i64) -> Self;
    /// A SCIM user's row: id, userName, its lower-cased key, externalId, active,
    /// resource as text, version, `now` (parameters 1 to 8).
    fn scim_user(self, id: &str, values: &ScimUserValues, version: u64, now: i64) -> Self;
    /// A SCIM user list's conditions: userName key, externalId (parameters 1 and 2).
    fn scim_query(self, query: &ScimUserQuery) -> Self;
    /// A SCIM user page: the conditions, then limit and offset (parameters 1 to 4).
    fn scim_page(self, query: &ScimUserQuery) -> Self;
}

impl<DB: Database> BindShared for Bound<'_, DB>
where
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> Option<String>: Encode<'t, DB>,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB>,
    for<'t> bool: Encode<'t, DB>,
    bool: Type<DB>,
{
    fn scim_user(self, id: &str, values: &ScimUserValues, version: u64, now: i64) -> Self {
        self.bind(id.to_owned())
            .bind(values.user_name.clone())
            .bind(user_name_key(&values.user_name))
            .bind(values.external_id.clone())
            .bind(values.active)
            .bind(values.resource.to_string())
            .bind(i64::try_from(version).unwrap_or(i64::MAX))
            .bind(now)
    }

    fn scim_query(self, query: &ScimUserQuery) -> Self {
        self.bind(query.user_name.as_deref().map(user_name_key))
            .bind(query.external_id.clone())
    }

    fn scim_page(self, query: &ScimUserQuery) -> Self {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.scim_query(query)
            .bind(count(query.limit))
            .bind(count(query.offset))
    }

    fn seat_action(self, job_id: &str, action: &str, now: i64) -> Self {
        self.bind(job_id.to_owned())
            .bind(action.to_owned())
            .bind(now)
    }

    fn fence(self, lease: &Lease) -> Self {
        self.bind(lease.job_id.clone())
            .bind(lease.owner.clone())
            .bind(i64::from(lease.attempt))
    }

    fn new_job(self, job_id: &str, ev: &NewEvent, now: i64) -> Self {
        let text = |s: &str| s.to_owned();
        self.bind(text(job_id))
            .bind(text(ev.job_kind().as_str()))
            .bind(i64::from(ev.max_attempts))
            .bind(ms(ev.run_at))
            .bind(text(&ev.source))
            .bind(text(&ev.event.id))
            .bind(text(ev.event.employee.email.as_str()))
            .bind(now)
    }

    fn filter(self, filter: &JobFilter) -> Self {
        self.bind(filter.state.map(|s| s.as_str().to_owned()))
            .bind(filter.employee.clone())
            .bind(filter.since.map(ms))
            .bind(filter.before.clone())
            .bind(i64::from(filter.page_size()))
    }

    fn fenced_value(self, lease: &Lease, name: &str, value: &Value, now: i64) -> Self {
        self.fence(lease)
            .bind(name.to_owned())
            .bind(value.to_string())
            .bind(now)
    }

    fn follow_up(self, lease: &Lease, kind: JobKind, run_at: i64, now: i64) -> Self {
        self.bind(new_id())
            .bind(kind.as_str().to_owned())
            .bind(run_at)
            .bind(now)
            .bind(lease.job_id.clone())
    }
}

/// An instant as stored: Unix milliseconds (UTC).
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored instant back; `what` names the row and column for the error.
pub(crate) fn from_ms(v: i64, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(v).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "{what}: {v} is not a time (Unix milliseconds out of range)"
        ))
    })
}

/// A duration as stored next to instants (milliseconds), saturating: a lease of
/// centuries is still "not expired".
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A stored counter (attempts, failures, limits: never negative when written by
/// this code) as the `u32` the API speaks.
pub(crate) fn count_u32(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v)
        .map_err(|_| StoreError::Corrupt(format!("{what}: {v} is not a count (0..=u32::MAX)")))
}

/// A `COUNT(*)` result, which SQL never makes negative.
pub(crate) fn count_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A new job id: UUIDv7, so ids sort by creation time (cursors and "newest first"
/// rely on it).
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// JSON stored as text back into a value; `what` names it for the error.
fn json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// How `userName` is compared and kept unique: RFC 7643 §4.1.1 makes it
/// `caseExact: false`.
pub(crate) fn user_name_key(user_name: &str) -> String {
    user_name.to_lowercase()
}

/// The SCIM user columns both backends select (`resource` as text).
pub(crate) fn decode_scim_user(row: &impl Columns) -> Result<ScimUser, StoreError> {
    let id = row.text("id")?;
    let what = |col: &str| format!("scim user {id} {col}");
    let version = row.int("version")?;
    Ok(ScimUser {
        user_name: row.text("user_name")?,
        external_id: row.opt_text("external_id")?,
        active: row.flag("active")?,
        resource: json(&row.text("resource")?, &what("resource"))?,
        version: u64::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("{}: {version}", what("version"))))?,
        created_at: from_ms(row.int("created_at")?, &what("created_at"))?,
        updated_at: from_ms(row.int("updated_at")?, &what("updated_at"))?,
        id,
    })
}

/// Rows of the job columns, in order.
pub(crate) fn decode_jobs(rows: &[impl Columns]) -> Result<Vec<Job>, StoreError> {
    rows.iter().map(decode_job).collect()
}

/// A row of the job columns plus `seat_requested_at` and `admin_task_id` (the two
/// checkpoints' stored JSON, as text; the second may be NULL).
pub(crate) fn decode_seat_wait(row: &impl Columns) -> Result<SeatWait, StoreError> {
    let job = decode_job(row)?;
    let what = |col: &str| format!("job {} checkpoint {col}", job.id);
    let requested = json(&row.text("seat_requested_at")?, &what("seat_requested_at"))?;
    let requested_at = serde_json::from_value(requested)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", what("seat_requested_at"))))?;
    let admin_task = row
        .opt_text("admin_task_id")?
        .map(|t| json(&t, &what("admin_task_id")))
        .transpose()?;
    Ok(SeatWait {
        job,
        requested_at,
        admin_task,
    })
}

/// A row of the job columns (both backends select the same names, with `plan` and
/// the event's `payload` as text).
pub(crate) fn decode_job(row: &impl Columns) -> Result<Job, StoreError> {
    let id = row.text("id")?;
    let what = |col: &str| format!("job {id} {col}");
    let corrupt =
        |col: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{}: {e}", what(col)));
    let event_json = json(&row.text("payload")?, &what("event"))?;
    let event = OffboardingEvent::from_json(&event_json, None).map_err(|e| corrupt("event", &e))?;
    let plan = row
        .opt_text("plan")?
        .map(|p| json(&p, &what("plan")))
        .transpose()?;
    let time = |col: &str| from_ms(row.int(col)?, &what(col));
    let count = |col: &str| count_u32(row.int(col)?, &what(col));
    let lease_expires_at = row
        .opt_int("lease_expires_at")?
        .map(|v| from_ms(v, &what("lease_expires_at")))
        .transpose()?;
    Ok(Job {
        kind: JobKind::from_str(&row.text("kind")?).map_err(|e| corrupt("kind", &e))?,
        state: JobState::from_str(&row.text("state")?).map_err(|e| corrupt("state", &e))?,
        attempt: count("attempt")?,
        failures: count("failures")?,
        max_attempts: count("max_attempts")?,
        run_at: time("run_at")?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_expires_at,
        source: row.text("source")?,
        event_id: row.text("event_id")?,
        event,
        employee_email: row.text("employee_email")?,
        action: row.opt_text("action")?,
        plan,
        last_error: row.opt_text("last_error")?,
        approved: row.flag("approved")?,
        parent_id: row.opt_text("parent_id")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        id,
    })
}

/// The notification columns both backends select, in this order (`message` as text).
pub(crate) const NOTIFICATION_COLUMNS: &str = "id, job_id, event, channel, target, message, \
    state, attempts, next_at, last_error, delivered_at, created_at, updated_at";

/// A row of [`NOTIFICATION_COLUMNS`].
pub(crate) fn decode_notification(row: &impl Columns) -> Result<Notification, StoreError> {
    let id = row.text("id")?;
    let what = |col: &str| format!("notification {id} {col}");
    let corrupt =
        |col: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{}: {e}", what(col)));
    let time = |col: &str| from_ms(row.int(col)?, &what(col));
    let delivered_at = row
        .opt_int("delivered_at")?
        .map(|v| from_ms(v, &what("delivered_at")))
        .transpose()?;
    Ok(Notification {
        job_id: row.text("job_id")?,
        event: row.text("event")?,
        channel: Channel::from_str(&row.text("channel")?).map_err(|e| corrupt("channel", &e))?,
        target: row.text("target")?,
        message: json(&row.text("message")?, &what("message"))?,
        state: NotificationState::from_str(&row.text("state")?)
            .map_err(|e| corrupt("state", &e))?,
        attempts: count_u32(row.int("attempts")?, &what("attempts"))?,
        next_at: time("next_at")?,
        last_error: row.opt_text("last_error")?,
        delivered_at,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        id,
    })
}

/// Rows of (`channel`, `n`) as a count for every channel, zero where no row says
/// otherwise (a channel this build doesn't know is left out).
pub(crate) fn tally_channels(rows: &[impl Columns]) -> Result<BTreeMap<Channel, u64>, StoreError> {
    let mut out: BTreeMap<Channel, u64> = Channel::ALL.into_iter().map(|c| (c, 0)).collect();
    for row in rows {
        if let Ok(channel) = Channel::from_str(&row.text("channel")?) {
            out.insert(channel, count_u64(row.int("n")?));
        }
    }
    Ok(out)
}

/// A job, its checkpoints (`key`, `value` as text), its audit trail (`at`,
/// `kind`, `detail` as text, in trail order) and its notifications
/// ([`NOTIFICATION_COLUMNS`], oldest first) as one [`JobDetail`].
pub(crate) fn decode_detail<R: Columns>(
    job: &R,
    checkpoints: &[R],
    audit: &[R],
    notifications: &[R],
) -> Result<JobDetail, StoreError> {
    let job = decode_job(job)?;
    let checkpoints = checkpoints
        .iter()
        .map(|row| {
            let key = row.text("key")?;
            let value = json(
                &row.text("value")?,
                &format!("job {} checkpoint {key}", job.id),
            )?;
            Ok((key, value))
        })
        .collect::<Result<BTreeMap<_, _>, StoreError>>()?;
    let audit = audit
        .iter()
        .map(|row| {
            let what = format!("job {} audit", job.id);
            Ok(AuditEntry {
                at: from_ms(row.int("at")?, &what)?,
                kind: row.text("kind")?,
                detail: json(&row.text("detail")?, &what)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let notifications = notifications
        .iter()
        .map(decode_notification)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(JobDetail {
        job,
        checkpoints,
        audit,
        notifications,
    })
}

/// Rows of (`state`, `n`) as a count for every state, zero where no row says
/// otherwise. A state this build doesn't know is left out rather than failing
/// metrics (a newer replica may have written it).
pub(crate) fn tally_states(rows: &[impl Columns]) -> Result<BTreeMap<JobState, u64>, StoreError> {
    let mut out: BTreeMap<JobState, u64> = JobState::ALL.into_iter().map(|s| (s, 0)).collect();
    for row in rows {
        if let Ok(state) = JobState::from_str(&row.text("state")?) {
            out.insert(state, count_u64(row.int("n")?));
        }
    }
    Ok(out)
}

/// Rows of (`action`, `n`) as a map.
pub(crate) fn tally_actions(rows: &[impl Columns]) -> Result<BTreeMap<String, u64>, StoreError> {
    rows.iter()
        .map(|row| Ok((row.text("action")?, count_u64(row.int("n")?))))
        .collect()
}

/// How long the oldest runnable job (due at `oldest`, Unix ms) has waited at `now`.
pub(crate) fn age(now: i64, oldest: Option<i64>) -> Option<Duration> {
    oldest.map(|t| Duration::from_millis(count_u64(now.saturating_sub(t))))
}

/// What a SCIM write finds stored before it writes: the user's row, if any, and
/// which user (if any) already holds the new `userName`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScimFound {
    /// The user's stored version and creation time (Unix ms).
    pub current: Option<(i64, i64)>,
    /// The id of the user whose `userName` equals the new one without case.
    pub name_holder: Option<String>,
}

/// Reads, inside a SCIM write's transaction, what [`super::rules::scim_refusal`]
/// decides on: `current` selects `version, created_at` of the user with id
/// parameter 1 (PostgreSQL adds `FOR UPDATE`), `holder` the `id` of the user whose
/// `user_name_key` is parameter 1.
pub(crate) async fn scim_found<DB>(
    tx: &mut sqlx::Transaction<'static, DB>,
    current: &'static str,
    holder: &'static str,
    write: &ScimWrite,
) -> Result<ScimFound, StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    i64: Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
    StoreError: From<sqlx::Error>,
{
    let current = match sqlx::query(current)
        .bind(write.id.clone())
        .fetch_optional(&mut **tx)
        .await?
    {
        Some(row) => Some((row.try_get("version")?, row.try_get("created_at")?)),
        None => None,
    };
    let name_holder = match &write.values {
        Some(values) => match sqlx::query(holder)
            .bind(user_name_key(&values.user_name))
            .fetch_optional(&mut **tx)
            .await?
        {
            Some(row) => Some(row.try_get("id")?),
            None => None,
        },
        None => None,
    };
    Ok(ScimFound {
        current,
        name_holder,
    })
}

/// The last step of a granted seat reservation on either database: store the row
/// (`insert` numbers its parameters as [`BindShared::seat_action`] binds them),
/// commit the transaction the caps were counted in, and answer `Granted`.
pub(crate) async fn grant_seat<DB>(
    mut tx: sqlx::Transaction<'static, DB>,
    insert: &'static str,
    job_id: &str,
    action: &str,
    now: i64,
) -> Result<Option<Reservation>, StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> Option<String>: Encode<'t, DB>,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB>,
    for<'t> bool: Encode<'t, DB>,
    bool: Type<DB>,
    StoreError: From<sqlx::Error>,
{
    sqlx::query(insert)
        .seat_action(job_id, action, now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(Reservation::Granted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_out_of_range_timestamp_is_corrupt_not_1970() {
        match from_ms(i64::MAX, "job j run_at") {
            Err(StoreError::Corrupt(msg)) => assert!(msg.contains("job j run_at"), "{msg}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let t = Utc::now();
        let back = from_ms(ms(t), "t").map(ms);
        assert_eq!(back.ok(), Some(ms(t)));
    }

    #[test]
    fn a_negative_count_is_corrupt() {
        assert!(matches!(count_u32(-1, "x"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            count_u32(i64::from(u32::MAX) + 1, "x"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(count_u32(7, "x").ok(), Some(7));
        assert_eq!(age(10, Some(20)), Some(Duration::ZERO));
    }
}
