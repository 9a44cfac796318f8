//! Durable events and jobs behind one [`JobStore`] trait.
//!
//! [`sqlite`] is the embedded default (WAL, `synchronous=FULL`, one writer with
//! `BEGIN IMMEDIATE`, group commit for concurrent ingests); [`postgres`] satisfies
//! the same trait for scale-out (many receivers and workers on one database).
//! [`open`] picks one from the URL scheme. The trait, its rows and [`StoreError`]
//! live in the private leaf `contract` and are re-exported here: the backends import
//! them from there, never from this file, because this file imports the backends.
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
//! - at most one job per employee e-mail is `running` at a time;
//! - a pruned job's event stays as a dedupe tombstone ([`retention`]), so a
//!   redelivery after retention is still a duplicate;
//! - a notification is written in the transaction of the step that causes it,
//!   under an id that makes a second write of the same cause insert nothing, and
//!   its delivery results are fenced by its own lease (id + owner + attempt).

pub mod bulk;
mod contract;
mod outbox;
pub mod postgres;
pub mod postgres_budget;
mod queue;
pub mod retention;
mod rows;
mod rules;
pub mod sqlite;

use std::{sync::Arc, time::Duration};

use offboard_domain::{SharedClock, SystemClock};

pub use contract::{
    AuditEntry, Channel, Claimed, ClaimedNotification, DeliveryLease, DeliveryRetry, IngestOutcome,
    Job, JobDetail, JobFilter, JobStore, Lease, NewEvent, NewNotification, Notification,
    NotificationState, OperatorAction, Outcome, Reservation, ScimUser, ScimUserPage, ScimUserQuery,
    ScimUserValues, ScimWrite, ScimWriteOutcome, SeatWait, SharedStore, StoreError, Via, within,
};

use crate::config::StoreConfig;

/// Opens the store the URL names: `sqlite:…`, or `postgres://…`/`postgresql://…`,
/// on the system clock. `synchronous` is SQLite's `PRAGMA synchronous`; PostgreSQL
/// follows the server's `synchronous_commit`.
pub async fn open(url: &str, synchronous: &str) -> Result<SharedStore, StoreError> {
    open_with(url, synchronous, true).await
}

/// Opens the store `[store]` configures, on the system clock.
pub async fn open_configured(config: &StoreConfig) -> Result<SharedStore, StoreError> {
    open_configured_with_clock(config, SystemClock::shared()).await
}

/// [`open_configured`], reading "now" from `clock`.
pub async fn open_configured_with_clock(
    config: &StoreConfig,
    clock: SharedClock,
) -> Result<SharedStore, StoreError> {
    let answer_within = Duration::from_millis(config.unavailable_after_ms);
    if is_postgres(&config.url) {
        // A request waits for a connection no longer than it may wait for the
        // store at all: with the database down or every connection busy, it is
        // told so (503) instead of queueing.
        return Ok(Arc::new(
            postgres::PgStore::open_bounded(&config.url, clock, answer_within).await?,
        ));
    }
    open_with_clock(
        &config.url,
        &config.sqlite_synchronous,
        config.sqlite_group_commit,
        clock,
    )
    .await
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// [`open`], choosing whether SQLite groups concurrent ingests into one commit
/// (`group_commit`; PostgreSQL ignores it: its server already does).
pub async fn open_with(
    url: &str,
    synchronous: &str,
    group_commit: bool,
) -> Result<SharedStore, StoreError> {
    open_with_clock(url, synchronous, group_commit, SystemClock::shared()).await
}

/// [`open_with`], reading "now" from `clock`: lease expiry, `run_at`, the hourly
/// caps' window and every stored timestamp. Tests pass a
/// [`offboard_domain::ManualClock`] to move time instead of sleeping.
pub async fn open_with_clock(
    url: &str,
    synchronous: &str,
    group_commit: bool,
    clock: SharedClock,
) -> Result<SharedStore, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::open_with_clock(url, synchronous, group_commit, clock).await?,
        ))
    } else if is_postgres(url) {
        Ok(Arc::new(
            postgres::PgStore::open_with_clock(url, clock).await?,
        ))
    } else {
        // Only the scheme: the rest of the URL may hold a password.
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::Unsupported(format!(
            "store.url: unsupported scheme {scheme:?} (expected sqlite:, postgres:// or postgresql://)"
        )))
    }
}
