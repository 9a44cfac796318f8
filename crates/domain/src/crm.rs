//! The CRM vocabulary every stage shares: the seats (users) and kinds of records a
//! rep owns. The vendor seam (`offboard_core::crm`) and the policy both speak it;
//! neither owns it.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A kind of record a rep can own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Prospects not yet converted (Sell `/v2/leads`); always open.
    Leads,
    /// People and companies (Sell `/v2/contacts`); always open.
    Contacts,
    /// Opportunities (Sell `/v2/deals`); open unless in a won or lost stage.
    Deals,
    /// To-dos (Sell `/v2/tasks`); open until completed.
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

/// A resource name that is none of [`Resource::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resource {0:?} (expected leads, contacts, deals or tasks)")]
pub struct UnknownResource(pub String);

impl FromStr for Resource {
    type Err = UnknownResource;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownResource(s.to_owned()))
    }
}

/// `active` or `inactive` in Sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// May sign in and own records.
    Active,
    /// Deactivated: cannot sign in; keeps its history and can be reactivated.
    Inactive,
}

/// `user` or `admin` in Sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// An ordinary seat.
    User,
    /// Administers the CRM account; the guards never delete one.
    Admin,
}

/// A CRM user (a seat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmUser {
    /// The CRM's id for the seat (what records' `owner_id` points at).
    pub id: i64,
    /// Display name (empty when the CRM has none).
    #[serde(default)]
    pub name: String,
    /// As the CRM stores it (compare case-insensitively).
    pub email: String,
    /// Whether the seat can sign in now.
    pub status: UserStatus,
    /// Admin or ordinary user; policy rules and the admin guard read it.
    pub role: UserRole,
    /// The user's manager in the CRM, if set.
    #[serde(default)]
    pub reports_to: Option<i64>,
    /// The CRM team, if any; policy rules can match on it.
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
