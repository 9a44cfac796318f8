//! The CRM vocabulary every stage shares: the seats (users) and kinds of records a
//! rep owns, the opaque ids that name them, and what a CRM can do to a seat
//! ([`Capabilities`]). The vendor seam (`offboard_core::crm`) and the policy both
//! speak it; neither owns it.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A kind of record a rep can own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Prospects not yet converted (Sell `/v2/leads`); always open.
    Leads,
    /// People (Sell `/v2/contacts`, which holds companies too; Pipedrive persons); always open.
    Contacts,
    /// Companies (Pipedrive organizations; in Sell they are contacts); always open.
    Organizations,
    /// Opportunities (Sell `/v2/deals`); open unless in a won or lost stage.
    Deals,
    /// To-dos (Sell `/v2/tasks`); open until completed.
    Tasks,
    /// Support tickets (HubSpot tickets, Salesforce Cases); open until closed.
    /// Sell and Pipedrive have none.
    Tickets,
}

impl Resource {
    /// All resources, in the order offboard reassigns them.
    pub const ALL: [Resource; 6] = [
        Self::Leads,
        Self::Contacts,
        Self::Organizations,
        Self::Deals,
        Self::Tasks,
        Self::Tickets,
    ];

    /// The API path segment and policy name (`leads`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leads => "leads",
            Self::Contacts => "contacts",
            Self::Organizations => "organizations",
            Self::Deals => "deals",
            Self::Tasks => "tasks",
            Self::Tickets => "tickets",
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
#[error(
    "unknown resource {0:?} (expected leads, contacts, deals or tasks; organizations and tickets too, where the CRM has them)"
)]
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
    pub id: CrmId,
    /// Display name (empty when the CRM has none).
    #[serde(default)]
    pub name: String,
    /// As the CRM stores it (compare case-insensitively).
    pub email: String,
    /// Whether the seat can sign in now.
    pub status: UserStatus,
    /// Admin or ordinary user; policy rules and the admin guard read it.
    pub role: UserRole,
    /// The user's manager in the CRM, if set (and if the CRM has the notion).
    #[serde(default)]
    pub reports_to: Option<CrmId>,
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

/// A CRM's id for a user, record or task: opaque to offboard. Sell and Pipedrive
/// number their users and most records, Pipedrive leads are UUIDs, Salesforce ids
/// are 18 characters. A numeric id is written as a JSON number, so audit trails
/// and checkpoints written before ids became opaque read (and compare) the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CrmId(String);

impl CrmId {
    /// The id as the CRM spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a number, when it is one (Sell's and Pipedrive's user ids).
    pub fn as_i64(&self) -> Option<i64> {
        self.0
            .parse::<i64>()
            .ok()
            .filter(|n| n.to_string() == self.0)
    }
}

impl PartialEq<i64> for CrmId {
    fn eq(&self, other: &i64) -> bool {
        self.as_i64() == Some(*other)
    }
}

impl From<i64> for CrmId {
    fn from(n: i64) -> Self {
        Self(n.to_string())
    }
}

impl From<&str> for CrmId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for CrmId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for CrmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CrmId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_i64() {
            Some(n) => s.serialize_i64(n),
            None => s.serialize_str(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for CrmId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(n.into()),
            Raw::Text(s) if s.is_empty() => Err(serde::de::Error::custom("an empty CRM id")),
            Raw::Text(s) => Ok(s.into()),
        }
    }
}

/// A change to a seat: what the policy's action, or a rehire, asks of the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatChange {
    /// The user can no longer sign in; history and ownership stay.
    Deactivate,
    /// The user is removed (permanent where the CRM has it).
    Delete,
    /// A deactivated user may sign in again (a rehire).
    Reactivate,
}

impl SeatChange {
    /// `deactivate`, `delete`, `reactivate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deactivate => "deactivate",
            Self::Delete => "delete",
            Self::Reactivate => "reactivate",
        }
    }
}

/// Who can carry out a [`SeatChange`] in a CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatAbility {
    /// offboard can, through the CRM's API.
    Api,
    /// Only a person in the CRM's admin UI can (offboard asks them with a task).
    Manual,
    /// Nobody can: the CRM has no such thing (Pipedrive cannot delete users).
    Impossible,
}

/// What a CRM can do, as far as the worker and `policy explain` care. The worker
/// asks the adapter for these, never the vendor's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// The vendor's name as people know it (`Zendesk Sell`, `Pipedrive`): used in
    /// audit lines, explanations and the admin's task.
    pub name: &'static str,
    /// Where in the CRM's UI an admin changes a seat.
    pub seat_admin_path: &'static str,
    /// Deactivating a user.
    pub deactivate: SeatAbility,
    /// Deleting a user.
    pub delete: SeatAbility,
    /// Reactivating a deactivated user.
    pub reactivate: SeatAbility,
    /// Most records one write call can reassign (1 for Sell and Pipedrive).
    pub records_per_write: usize,
    /// One write call may carry records of several resources (Salesforce's
    /// sObject Collections); otherwise each call holds one resource's records.
    pub mixed_writes: bool,
    /// The HTTP method of a record write (`PUT` for Sell, `PATCH` for Pipedrive),
    /// as a dry run reports the writes it did not send.
    pub write_verb: &'static str,
    /// Users have a manager field (Sell's `reports_to`); without it nobody reports
    /// to anybody in the CRM and the manager comes from the event alone.
    pub manager_field: bool,
    /// The resources this CRM has, in the order offboard reassigns them.
    pub resources: &'static [Resource],
}

impl Capabilities {
    /// Who can carry out `change`.
    pub fn ability(&self, change: SeatChange) -> SeatAbility {
        match change {
            SeatChange::Deactivate => self.deactivate,
            SeatChange::Delete => self.delete,
            SeatChange::Reactivate => self.reactivate,
        }
    }

    /// Whether the CRM has an object for `resource`.
    pub fn has(&self, resource: Resource) -> bool {
        self.resources.contains(&resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_stay_json_numbers_and_others_are_strings() {
        assert_eq!(serde_json::to_string(&CrmId::from(101)).unwrap(), "101");
        let uuid = CrmId::from("adf21080-0e10-11eb-879b-05d71fb426ec");
        assert_eq!(
            serde_json::to_string(&uuid).unwrap(),
            "\"adf21080-0e10-11eb-879b-05d71fb426ec\""
        );
        // Not canonical as a number (a leading zero), so it stays text.
        assert_eq!(
            serde_json::to_string(&CrmId::from("007")).unwrap(),
            "\"007\""
        );
    }

    #[test]
    fn ids_read_from_numbers_and_strings_alike() {
        let a: CrmId = serde_json::from_str("101").unwrap();
        let b: CrmId = serde_json::from_str("\"101\"").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_i64(), Some(101));
        assert!(serde_json::from_str::<CrmId>("\"\"").is_err());
        assert!(serde_json::from_str::<CrmId>("1.5").is_err());
    }
}
