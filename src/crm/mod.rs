//! The CRM seam: what offboard needs from a sales CRM, independent of any vendor.
//!
//! [`Crm`] is the trait the worker talks to; [`sell`] implements it for Zendesk Sell
//! over HTTP, and [`sandbox`] is a Sell-compatible server for demos, rehearsals and
//! benchmarks. Only this folder knows Sell's JSON envelopes. Every HTTP call a
//! client makes is reported to the [`calls`] sink of the current task, so the
//! worker can store it in the job's audit trail without the trait carrying it.
//! [`pacing`] holds the per-token request budget that every client call waits on.
//!
//! A CRM never decides anything: it lists, reassigns and creates tasks when told to.

pub mod calls;
pub mod pacing;
pub mod sandbox;
pub mod sell;

use std::{fmt, str::FromStr, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A kind of record a rep can own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    #[allow(missing_docs)]
    Leads,
    #[allow(missing_docs)]
    Contacts,
    #[allow(missing_docs)]
    Deals,
    #[allow(missing_docs)]
    Tasks,
}

impl Resource {
    /// All resources, in the order offboard reassigns them.
    pub const ALL: [Resource; 4] = [Self::Leads, Self::Contacts, Self::Deals, Self::Tasks];

    /// The API path segment and policy name (`leads`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leads => "leads",
            Self::Contacts => "contacts",
            Self::Deals => "deals",
            Self::Tasks => "tasks",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown resource {s:?} (expected leads, contacts, deals or tasks)")
            })
    }
}

/// `active` or `inactive` in Sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    #[allow(missing_docs)]
    Active,
    #[allow(missing_docs)]
    Inactive,
}

/// `user` or `admin` in Sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    #[allow(missing_docs)]
    User,
    #[allow(missing_docs)]
    Admin,
}

/// A CRM user (a seat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmUser {
    #[allow(missing_docs)]
    pub id: i64,
    #[allow(missing_docs)]
    #[serde(default)]
    pub name: String,
    /// As the CRM stores it (compare case-insensitively).
    pub email: String,
    #[allow(missing_docs)]
    pub status: UserStatus,
    #[allow(missing_docs)]
    pub role: UserRole,
    /// The user's manager in the CRM, if set.
    #[serde(default)]
    pub reports_to: Option<i64>,
    #[allow(missing_docs)]
    #[serde(default)]
    pub team_name: Option<String>,
    /// Set once the seat is deleted.
    #[serde(default)]
    pub deleted_at: Option<String>,
}

impl CrmUser {
    /// Active and not deleted: may own records.
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active && self.deleted_at.is_none()
    }

    /// Deleted (or soft-deleted).
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// One owned record, as far as offboarding cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[allow(missing_docs)]
    pub id: i64,
    #[allow(missing_docs)]
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
        #[allow(missing_docs)]
        code: String,
        #[allow(missing_docs)]
        message: String,
    },
    /// 401/403/other 4xx or an unreadable answer: retrying will not help.
    #[error("CRM error (HTTP {status} {code}): {message}")]
    Permanent {
        #[allow(missing_docs)]
        status: u16,
        #[allow(missing_docs)]
        code: String,
        #[allow(missing_docs)]
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
