//! Every checkpoint a job can record, each defined once: its stored key and the
//! type of its value. Steps name a checkpoint by its constant ([`CRM_USER`],
//! [`reassign`], …), never by a string, so a key cannot be misspelt or read back
//! as another type.
//!
//! Compatibility invariant: the key strings and the JSON shape of every value are
//! what earlier versions stored. A job checkpointed by an older process resumes
//! with a newer one, so renaming a key or a field here is a migration, not a
//! refactor.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::crm::{CrmId, Resource};

/// A checkpoint key and the type of the value stored under it.
#[derive(Debug)]
pub(crate) struct Key<T> {
    name: &'static str,
    value: PhantomData<fn() -> T>,
}

// Derived `Clone`/`Copy` would demand `T: Copy`; a key is copyable whatever it holds.
impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Key<T> {}

impl<T: Serialize + DeserializeOwned> Key<T> {
    const fn new(name: &'static str) -> Self {
        Self {
            name,
            value: PhantomData,
        }
    }

    /// The key as stored (the `checkpoints` object of `GET /api/v1/jobs/{id}`).
    pub(crate) fn name(self) -> &'static str {
        self.name
    }

    /// Reads a stored value; `None` when it no longer parses as `T`, so the step
    /// redoes its (idempotent) work instead of trusting a value it can't read.
    pub(crate) fn decode(self, stored: &Value) -> Option<T> {
        T::deserialize(stored).ok()
    }

    /// The value as it is stored.
    pub(crate) fn encode(self, value: &T) -> Result<Value, serde_json::Error> {
        serde_json::to_value(value)
    }
}

/// The leaver's CRM user id (offboard), or the user asked to be reactivated
/// (reverse). Once set, the job never looks the user up by e-mail again.
pub(crate) const CRM_USER: Key<CrmId> = Key::new("crm_user_id");

/// Who receives the leaver's records (see [`Target`]).
pub(crate) const TARGET: Key<Target> = Key::new("target");

/// The CRM user id of `crm.admin_email`, the person asked to change the seat.
pub(crate) const ADMIN_USER: Key<CrmId> = Key::new("admin_user_id");

/// Written just before the admin task's POST: a run that finds it without
/// [`ADMIN_TASK`] looks the task up by its marker instead of creating a second one.
pub(crate) const ADMIN_TASK_PENDING: Key<TaskPending> = Key::new("admin_task_pending");

/// The admin task's CRM id, once the task exists.
pub(crate) const ADMIN_TASK: Key<CrmId> = Key::new("admin_task_id");

/// When the seat change was requested; the verification deadline counts from it,
/// and its presence means only verification is left to do.
pub(crate) const SEAT_REQUESTED: Key<DateTime<Utc>> = Key::new("seat_requested_at");

/// Every resource's records are with their new owner: who, and how many moved per
/// resource. Written once, with the `records.reassigned` notifications.
pub(crate) const REASSIGNED: Key<Reassigned> = Key::new("reassigned");

/// The value of [`REASSIGNED`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reassigned {
    /// The new owner's e-mail.
    pub to: String,
    /// Records moved, by resource name.
    pub moved: std::collections::BTreeMap<String, u64>,
}

/// The jobs a reversal cancelled (their ids), so a rerun does not cancel again.
pub(crate) const CANCELLED_JOBS: Key<Vec<String>> = Key::new("cancelled_jobs");

/// Progress of reassigning one resource, stored as `reassign.<resource>`.
pub(crate) fn reassign(resource: Resource) -> Key<Progress> {
    // One literal per resource keeps the key `'static` and visibly byte-identical
    // to `format!("reassign.{resource}")`, which older versions wrote.
    Key::new(match resource {
        Resource::Leads => "reassign.leads",
        Resource::Contacts => "reassign.contacts",
        Resource::Organizations => "reassign.organizations",
        Resource::Deals => "reassign.deals",
        Resource::Tasks => "reassign.tasks",
        Resource::Tickets => "reassign.tickets",
    })
}

/// The active user who receives the records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Target {
    /// CRM user id, the `owner_id` every write sends.
    pub id: CrmId,
    /// For the admin task's text and the audit trail.
    pub email: String,
    /// How it was chosen: `manager_email`, `reports_to`, `fallback_owner`, `user`.
    pub via: String,
}

/// Progress of one resource's reassignment (counts of records, this job only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Records whose PUT landed.
    pub moved: u64,
    /// Records that vanished (404) before they could be moved.
    pub skipped: u64,
    /// Records deliberately left (closed deals, completed tasks with `open_only`).
    pub left: u64,
    /// A fresh listing showed nothing left to move.
    pub done: bool,
    /// Records in write calls launched but whose outcome is not yet recorded:
    /// checkpointed before each call, so after a crash the next run knows which
    /// writes may have landed unrecorded and says what it sends again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sending: Vec<CrmId>,
}

/// The value of [`ADMIN_TASK_PENDING`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskPending {
    /// The text the task carries, which identifies it in the CRM.
    pub marker: String,
    /// When the POST was about to be sent.
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_are_the_ones_earlier_versions_wrote() {
        assert_eq!(CRM_USER.name(), "crm_user_id");
        assert_eq!(TARGET.name(), "target");
        assert_eq!(ADMIN_USER.name(), "admin_user_id");
        assert_eq!(ADMIN_TASK_PENDING.name(), "admin_task_pending");
        assert_eq!(ADMIN_TASK.name(), "admin_task_id");
        assert_eq!(SEAT_REQUESTED.name(), "seat_requested_at");
        assert_eq!(CANCELLED_JOBS.name(), "cancelled_jobs");
        assert_eq!(REASSIGNED.name(), "reassigned");
        for r in Resource::ALL {
            assert_eq!(reassign(r).name(), format!("reassign.{r}"));
        }
    }

    #[test]
    fn values_keep_their_stored_shape() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let pending = TaskPending {
            marker: "[offboard job j1]".into(),
            at,
        };
        assert_eq!(
            ADMIN_TASK_PENDING.encode(&pending).unwrap(),
            serde_json::json!({ "marker": "[offboard job j1]", "at": at })
        );
        let progress = serde_json::json!({ "moved": 3, "skipped": 1, "left": 2, "done": true });
        let read = reassign(Resource::Deals).decode(&progress).unwrap();
        assert_eq!(
            (read.moved, read.skipped, read.left, read.done),
            (3, 1, 2, true)
        );
        // Ids are opaque: a number (as older versions stored) or text reads; a
        // value that is neither does not.
        assert_eq!(CRM_USER.decode(&serde_json::json!(101)), Some(101.into()));
        assert_eq!(
            CRM_USER.decode(&serde_json::json!("adf21080-0e10")),
            Some("adf21080-0e10".into())
        );
        assert!(CRM_USER.decode(&serde_json::json!({ "id": 1 })).is_none());
    }
}
