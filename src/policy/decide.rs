//! The decision types and `Policy::decide`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crm::{CrmUser, Resource};
use crate::domain::{Email, OffboardingEvent};

/// What happens to the seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Reversible: keeps history and email conversations.
    Deactivate,
    /// Permanent: removes the user's email conversations.
    Delete,
    /// Park the job in `needs_review` for a person.
    Review,
}

impl Action {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deactivate => "deactivate",
            Self::Delete => "delete",
            Self::Review => "review",
        }
    }
}

/// When the seat action happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// At `termination.effective_at` (or now when the event has none).
    Effective,
    /// As soon as the job runs.
    Now,
}

/// Who receives the departing rep's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "email")]
pub enum ReassignTo {
    /// `employee.manager_email`, else the CRM `reports_to`, else the fallback owner.
    Manager,
    /// The policy's `fallback_owner`.
    Fallback,
    /// A fixed person.
    User(Email),
}

/// One hard guard's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardOutcome {
    /// Stable guard name, e.g. `never_delete_admin`.
    pub guard: String,
    /// Whether this guard changed the action.
    pub changed: bool,
    /// Why, in words.
    pub detail: String,
}

/// What the worker knows when it decides. `None` means "could not be fetched";
/// the decision then lists what it assumed.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The termination event.
    pub event: &'a OffboardingEvent,
    /// The CRM user the event's email resolved to.
    pub user: Option<&'a CrmUser>,
    /// Open records the user owns across all resources.
    pub owned_open_records: Option<u64>,
    /// Active CRM users whose `reports_to` is this user.
    pub active_reportees: Option<u64>,
    /// Decision time (schedules are relative to it).
    pub now: DateTime<Utc>,
}

/// The outcome of a policy decision and its explanation. Stored with the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Hash of the policy text the decision was made with.
    pub policy_version: String,
    /// Name of the matching rule.
    pub rule: String,
    /// The rule's own action, before guards.
    pub rule_action: Action,
    /// The final action, after guards.
    pub action: Action,
    /// Timing as written in the rule.
    pub at: Timing,
    /// When the seat step is due (None: now).
    pub run_at: Option<DateTime<Utc>>,
    /// For `delete_after`: when the follow-up delete is due.
    pub delete_at: Option<DateTime<Utc>>,
    /// Who gets the records.
    pub reassign_to: ReassignTo,
    /// The policy's fallback owner.
    pub fallback_owner: Option<Email>,
    /// Which resources to reassign.
    pub reassign: Vec<Resource>,
    /// Leave closed deals and completed tasks with the leaver.
    pub open_only: bool,
    /// Extra people to tell (e-mail addresses); audited, not sent by the CRM.
    pub notify: Vec<String>,
    /// Each hard guard, in order.
    pub guards: Vec<GuardOutcome>,
    /// CRM facts that were missing and what the decision assumed instead.
    pub assumptions: Vec<String>,
    /// Why a person must look at it (action `review`).
    pub review_reason: Option<String>,
}
