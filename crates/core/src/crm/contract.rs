//! What offboard needs from a sales CRM and what a CRM answers with: the [`Crm`]
//! trait, [`Record`], [`NewTask`] and [`CrmError`]. A leaf of the CRM seam: the
//! Sell client and the worker's dry-run wrapper import it; it imports none of the
//! clients, so a client never imports the `crm` module's own file.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{CrmUser, Resource};

/// One owned record, as far as offboarding cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The CRM's id, unique within its [`Resource`] (not across resources).
    pub id: i64,
    /// The CRM user id of the current owner; after a reassignment the worker
    /// re-lists and expects the new owner here.
    pub owner_id: i64,
    /// Every lead and contact; deals not in a won/lost stage; tasks not completed.
    pub open: bool,
}

/// A task to create (the manual seat step asks an admin to act).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// Text shown to the admin; includes a marker so the task can be found again.
    pub content: String,
    /// The admin who must act.
    pub owner_id: i64,
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
    /// 422: the CRM refused the data (for a reassignment: usually an inactive owner).
    #[error("the CRM rejected the request (422 {code}): {message}")]
    Rejected {
        /// The CRM's machine-readable error code (Sell: `errors[0].error.code`).
        code: String,
        /// The CRM's explanation, kept for the audit trail.
        message: String,
    },
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
    /// The user whose e-mail matches (case-insensitively), if any.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<CrmUser>, CrmError>;
    /// One user by id; `None` when the CRM no longer has it.
    async fn get_user(&self, id: i64) -> Result<Option<CrmUser>, CrmError>;
    /// All users (every page), to find reportees.
    async fn list_users(&self) -> Result<Vec<CrmUser>, CrmError>;
    /// Every record of `resource` owned by `owner_id` (every page), open or not.
    async fn list_owned(&self, resource: Resource, owner_id: i64) -> Result<Vec<Record>, CrmError>;
    /// Makes `new_owner` the owner of one record.
    async fn reassign(
        &self,
        resource: Resource,
        record_id: i64,
        new_owner: i64,
    ) -> Result<(), CrmError>;
    /// Creates a task; returns its id.
    async fn create_task(&self, task: &NewTask) -> Result<i64, CrmError>;
    /// The id of a task of `owner_id` whose content contains `marker`: an open one
    /// first, else a completed one (it still proves the task was created).
    async fn find_task(&self, owner_id: i64, marker: &str) -> Result<Option<i64>, CrmError>;
}
