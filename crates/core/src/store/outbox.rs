//! The outbox's statements that both backends run the same way, each inside the
//! caller's transaction: writing a step's notices with it, and recording a
//! delivery attempt's result under its lease. The backends pass only their SQL
//! (numbered parameters as documented per function); [`super::rules`] decides
//! what a failed attempt does, [`super::rows`] decodes.

use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type};

use super::contract::{
    DeliveryLease, DeliveryRetry, NewNotification, NotificationState, StoreError,
};

/// Ends a fenced step's transaction: when the fence held, the step's notices are
/// written in it too; then it commits. Returns whether the fence held.
pub(crate) async fn commit_fenced<DB>(
    mut tx: sqlx::Transaction<'static, DB>,
    held: bool,
    (insert, audit): (&'static str, &'static str),
    job_id: &str,
    notices: &[NewNotification],
    now: i64,
) -> Result<bool, StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    <DB as Database>::QueryResult: RowsAffected,
    StoreError: From<sqlx::Error>,
{
    if held {
        insert_notices(&mut tx, insert, audit, job_id, notices, now).await?;
    }
    tx.commit().await?;
    Ok(held)
}

/// Writes `notices` for `job_id` inside the transaction of the step that causes
/// them: `insert` stores one row (parameters: id, job id, event, channel, target,
/// message as text, now; `ON CONFLICT (id) DO NOTHING`), and each row actually
/// inserted gets its `notify.queued` line through `audit` (parameters: job id, now,
/// detail as text). A notice already stored (the same cause written again) adds
/// nothing, not even an audit line.
pub(crate) async fn insert_notices<DB>(
    tx: &mut sqlx::Transaction<'static, DB>,
    insert: &'static str,
    audit: &'static str,
    job_id: &str,
    notices: &[NewNotification],
    now: i64,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    <DB as Database>::QueryResult: RowsAffected,
    StoreError: From<sqlx::Error>,
{
    for n in notices {
        let done = sqlx::query(insert)
            .bind(n.id.clone())
            .bind(job_id.to_owned())
            .bind(n.event.clone())
            .bind(n.channel.as_str().to_owned())
            .bind(n.target.clone())
            .bind(n.message.to_string())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            continue;
        }
        let detail = super::rules::notice_audit(
            &n.id,
            &n.event,
            n.channel.as_str(),
            &n.target,
            None,
            None,
            None,
        );
        sqlx::query(audit)
            .bind(job_id.to_owned())
            .bind(now)
            .bind(detail.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Records a delivered attempt inside `tx`: `update` marks the notification
/// delivered under its lease (parameters: id, owner, attempt, now) and returns
/// `job_id, event, channel, target`; the `notify.delivered` line goes through
/// `audit` (job id, now, detail). `false` when the lease no longer holds.
pub(crate) async fn record_delivered<DB>(
    tx: &mut sqlx::Transaction<'static, DB>,
    update: &'static str,
    audit: &'static str,
    lease: &DeliveryLease,
    now: i64,
) -> Result<bool, StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
    StoreError: From<sqlx::Error>,
{
    let Some(row) = sqlx::query(update)
        .bind(lease.id.clone())
        .bind(lease.owner.clone())
        .bind(i64::from(lease.attempt))
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(false);
    };
    let job_id: String = row.try_get("job_id")?;
    let (event, channel, target): (String, String, String) = (
        row.try_get("event")?,
        row.try_get("channel")?,
        row.try_get("target")?,
    );
    let detail = super::rules::notice_audit(
        &lease.id,
        &event,
        &channel,
        &target,
        Some(i64::from(lease.attempt)),
        None,
        None,
    );
    sqlx::query(audit)
        .bind(job_id)
        .bind(now)
        .bind(detail.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// Records a failed attempt inside `tx`: `select` reads the leased notification
/// (parameters: id, owner, attempt; columns `job_id, event, channel, target,
/// attempts, created_at`), [`super::rules::after_failed_delivery`] decides, `update`
/// writes it (id, state, next_at, error, now), and `audit` records `notify.retry`
/// or `notify.dead` (job id, now, kind, detail). `None` when the lease no longer
/// holds.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_failed<DB>(
    tx: &mut sqlx::Transaction<'static, DB>,
    select: &'static str,
    update: &'static str,
    audit: &'static str,
    lease: &DeliveryLease,
    error: &str,
    retry: &DeliveryRetry,
    now: i64,
) -> Result<Option<NotificationState>, StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'t> String: Encode<'t, DB>,
    String: Type<DB>,
    for<'t> i64: Encode<'t, DB>,
    i64: Type<DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
    StoreError: From<sqlx::Error>,
{
    let Some(row) = sqlx::query(select)
        .bind(lease.id.clone())
        .bind(lease.owner.clone())
        .bind(i64::from(lease.attempt))
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let job_id: String = row.try_get("job_id")?;
    let (event, channel, target): (String, String, String) = (
        row.try_get("event")?,
        row.try_get("channel")?,
        row.try_get("target")?,
    );
    let (attempts, created_at): (i64, i64) = (row.try_get("attempts")?, row.try_get("created_at")?);
    let after = super::rules::after_failed_delivery(
        attempts,
        created_at,
        now,
        retry,
        rand::random::<f64>(),
    );
    // Free text as both databases store it (PostgreSQL's text refuses NUL).
    let error = error.replace('\0', "\u{fffd}");
    sqlx::query(update)
        .bind(lease.id.clone())
        .bind(after.state.as_str().to_owned())
        .bind(after.next_at)
        .bind(error.clone())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let (kind, next_at) = match after.state {
        NotificationState::Dead => ("notify.dead", None),
        _ => ("notify.retry", Some(after.next_at)),
    };
    let detail = super::rules::notice_audit(
        &lease.id,
        &event,
        &channel,
        &target,
        Some(attempts),
        Some(&error),
        next_at,
    );
    sqlx::query(audit)
        .bind(job_id)
        .bind(now)
        .bind(kind.to_owned())
        .bind(detail.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(Some(after.state))
}

/// The number of rows a statement changed, on either database.
pub(crate) trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}
