//! What offboard needs from a sales CRM and what a CRM answers with: the [`Crm`]
//! trait, [`Record`], [`WriteOutcome`], [`NewTask`] and [`CrmError`]. A leaf of the
//! CRM seam: the clients and the worker's dry-run wrapper import it; it imports
//! none of the clients, so a client never imports the `crm` module's own file.
//!
//! The seam is vendor-neutral: ids are opaque ([`CrmId`]), a write may carry many
//! records (as many as [`Capabilities::records_per_write`] allows) and answers per
//! record, and a seat change is a call where the CRM's API has one. What a CRM can
//! do is data ([`Crm::capabilities`]); the worker never asks which vendor it is.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{Capabilities, CrmId, CrmUser, Resource, SeatChange};

/// One owned record, as far as offboarding cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The CRM's id, unique within its [`Resource`] (not across resources).
    pub id: CrmId,
    /// The CRM user id of the current owner; after a reassignment the worker
    /// re-lists and expects the new owner here.
    pub owner_id: CrmId,
    /// What `open_only` keeps to (DESIGN.md §9): every lead, contact and
    /// organization; deals not won or lost; tasks not done.
    pub open: bool,
}

/// One record to write, named by its resource (ids are unique only within one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordRef {
    /// Which kind of record.
    pub resource: Resource,
    /// Its id within that resource.
    pub id: CrmId,
}

/// What a write call did to one of the records it carried.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The record.
    pub id: CrmId,
    /// `Ok` when the record now has the new owner; [`CrmError::NotFound`] when it
    /// no longer exists, [`CrmError::Rejected`] when the CRM refused this record
    /// (usually the owner), anything else when this record's write failed.
    pub result: Result<(), CrmError>,
}

/// A task to create (the manual seat step asks an admin to act).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// Text shown to the admin; includes a marker so the task can be found again.
    pub content: String,
    /// The admin who must act.
    pub owner_id: CrmId,
    /// RFC 3339 due date.
    pub due_date: Option<String>,
}

/// What can go wrong talking to a CRM, classified by what the caller should do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CrmError {
    /// 429: slow down and try again.
    #[error("rate limited by the CRM{}", .retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// From `Retry-After`/`X-RateLimit-Reset` when the CRM sent one.
        retry_after: Option<Duration>,
    },
    /// 5xx, timeout, connection reset: try again later.
    #[error("transient CRM failure: {0}")]
    Transient(String),
    /// The thing asked for does not exist (404).
    #[error("not found in the CRM: {0}")]
    NotFound(String),
    /// The CRM refused the data (Sell 422, Pipedrive 400): for a reassignment,
    /// usually an inactive owner.
    #[error("the CRM rejected the request ({code}): {message}")]
    Rejected {
        /// The CRM's machine-readable error code (Sell: `errors[0].error.code`).
        code: String,
        /// The CRM's explanation, kept for the audit trail.
        message: String,
    },
    /// The run stopped before this write was sent (its lease is gone, or the worker
    /// is shutting down): nothing was written, and the job is someone else's or later.
    #[error("not sent: {0}")]
    Interrupted(String),
    /// 401/403/other 4xx or an unreadable answer: retrying will not help.
    #[error("CRM error (HTTP {status} {code}): {message}")]
    Permanent {
        /// The HTTP status the CRM answered with; 0 when no request was sent (a URL
        /// could not be built). A 200 here means the answer itself was unusable.
        status: u16,
        /// The CRM's error code, or offboard's own (`unreadable_response`,
        /// `too_many_pages`, `invalid_url`) when the CRM gave none.
        code: String,
        /// The CRM's explanation, kept for the audit trail.
        message: String,
    },
}

impl CrmError {
    /// Worth retrying later with backoff.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }
}

/// What offboard needs from a CRM. Implementations pace and retry transient
/// failures themselves; an error that comes out of a method is final for that call.
#[async_trait]
pub trait Crm: Send + Sync {
    /// What this CRM can do: seat changes by API or by a person, records per write
    /// call, whether users have a manager, which resources exist.
    fn capabilities(&self) -> &Capabilities;
    /// The user whose e-mail matches (case-insensitively), if any, as complete as
    /// [`Crm::get_user`]'s answer (the worker uses it in place of one).
    async fn find_user_by_email(&self, email: &str) -> Result<Option<CrmUser>, CrmError>;
    /// One user by id; `None` when the CRM no longer has it.
    async fn get_user(&self, id: &CrmId) -> Result<Option<CrmUser>, CrmError>;
    /// All users (every page), to find reportees.
    async fn list_users(&self) -> Result<Vec<CrmUser>, CrmError>;
    /// The user the API token acts as, where the CRM can say (offboard must never
    /// deactivate the seat its own token belongs to). `None`: the CRM cannot tell.
    async fn token_user(&self) -> Result<Option<CrmId>, CrmError>;
    /// Every record of `resource` owned by `owner` (every page), open or not. A
    /// resource the CRM has no object for lists nothing.
    async fn list_owned(&self, resource: Resource, owner: &CrmId) -> Result<Vec<Record>, CrmError>;
    /// Makes `new_owner` the owner of `ids` (at most
    /// [`Capabilities::records_per_write`] of them) in one write call: one outcome
    /// per id, so one refused record does not fail the others. `Err` when the call
    /// as a whole failed, and then any of the records may or may not have moved.
    async fn reassign(
        &self,
        resource: Resource,
        ids: &[CrmId],
        new_owner: &CrmId,
    ) -> Result<Vec<WriteOutcome>, CrmError>;
    /// Makes `new_owner` the owner of `records`, which come grouped by resource
    /// (at most [`Capabilities::records_per_write`] of them, of several resources
    /// only where [`Capabilities::mixed_writes`] allows): one outcome per record,
    /// tagged with its resource. A CRM whose write call takes several resources
    /// overrides this with one call; the default sends one
    /// [`reassign`](Self::reassign) per run of one resource and stops at the
    /// first call that fails as a whole (`Err`, as for `reassign`).
    async fn reassign_records(
        &self,
        records: &[RecordRef],
        new_owner: &CrmId,
    ) -> Result<Vec<(Resource, WriteOutcome)>, CrmError> {
        let mut outcomes = Vec::with_capacity(records.len());
        for run in records.chunk_by(|a, b| a.resource == b.resource) {
            let Some(resource) = run.first().map(|r| r.resource) else {
                continue;
            };
            let ids: Vec<CrmId> = run.iter().map(|r| r.id.clone()).collect();
            let answered = self.reassign(resource, &ids, new_owner).await?;
            outcomes.extend(answered.into_iter().map(|o| (resource, o)));
        }
        Ok(outcomes)
    }
    /// Carries out a seat change through the API. Only called for a change whose
    /// [`Capabilities::ability`] is `Api`; other changes answer a permanent error.
    async fn change_seat(&self, user: &CrmId, change: SeatChange) -> Result<(), CrmError>;
    /// Creates a task (Sell task, Pipedrive activity, …); returns its id.
    async fn create_task(&self, task: &NewTask) -> Result<CrmId, CrmError>;
    /// The id of a task of `owner` whose text contains `marker`: an open one
    /// first, else a completed one (it still proves the task was created).
    async fn find_task(&self, owner: &CrmId, marker: &str) -> Result<Option<CrmId>, CrmError>;
}

/// The answer of [`Crm::reassign`] for a resource the CRM has no object for (the
/// worker never asks: it skips what [`Capabilities::resources`] lacks).
pub fn resource_unsupported(crm: &Capabilities, resource: Resource) -> CrmError {
    CrmError::Permanent {
        status: 0,
        code: "unsupported".to_owned(),
        message: format!("{} has no {resource} object", crm.name),
    }
}

/// The answer of [`Crm::change_seat`] for a change the CRM's API cannot make.
pub fn seat_change_unsupported(crm: &Capabilities, change: SeatChange) -> CrmError {
    CrmError::Permanent {
        status: 0,
        code: "unsupported".to_owned(),
        message: format!(
            "{} cannot {} a user through its API",
            crm.name,
            change.as_str()
        ),
    }
}
