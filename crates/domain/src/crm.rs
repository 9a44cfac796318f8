//! The CRM vocabulary every stage shares: the seats (users) and kinds of records a
//! rep owns. The vendor seam (`offboard_core::crm`) and the policy both speak it;
//! neither owns it.

use std::{fmt, str::FromStr};

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
