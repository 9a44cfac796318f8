//! The policy's vocabulary: what a decision is made of ([`Action`], [`Timing`],
//! [`ReassignTo`]), what it is made from ([`Facts`]), and what comes out
//! ([`Decision`], [`GuardOutcome`]). Every other module of the crate builds on these
//! and none of them depends back on another module, so the crate has no cycle:
//! `matcher` and `rules` read types, `decide` reads all three, `explain` reads types.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use offboard_domain::{Capabilities, CrmUser, Email, OffboardingEvent, Resource};

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

/// The policy-file spelling: `manager`, `fallback` or `user:<email>`.
impl fmt::Display for ReassignTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manager => f.write_str("manager"),
            Self::Fallback => f.write_str("fallback"),
            Self::User(e) => write!(f, "user:{e}"),
        }
    }
}

/// One hard guard's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardOutcome {
    /// Stable guard name, e.g. `never_delete_admin`.
    pub guard: String,
    /// Whether this guard changed the decision: its action, or (for admins and
    /// legal hold) by dropping a `delete_after` follow-up.
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
    /// What the configured CRM can do to a seat (`None`: not known, e.g. an
    /// explain without a config; every action is then taken as possible).
    pub crm: Option<&'a Capabilities>,
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
    /// The rule's own action, before guards (`delete` for a follow-up delete).
    pub rule_action: Action,
    /// The final action, after guards.
    pub action: Action,
    /// Timing as written in the rule (`now` for a follow-up delete).
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
    /// Extra people to tell (e-mail addresses), by e-mail when `[notify.email]` is
    /// configured (DESIGN.md §13).
    pub notify: Vec<String>,
    /// Tell each new owner of moved records what they received. Plans stored
    /// before the field existed say yes, the default.
    #[serde(default = "yes")]
    pub notify_new_owners: bool,
    /// Each hard guard, in order.
    pub guards: Vec<GuardOutcome>,
    /// CRM facts that were missing and what the decision assumed instead.
    pub assumptions: Vec<String>,
    /// Why a person must look at it (action `review`).
    pub review_reason: Option<String>,
    /// This is the follow-up delete of a `delete_after` rule, not the first decision.
    #[serde(default)]
    pub follow_up_delete: bool,
    /// The rule's `seat_first`: the seat changes before any record moves (access
    /// cut first). Never for a delete, which the CRMs allow only once the records
    /// are gone: [`Decision::seat_goes_first`] is the order actually taken.
    #[serde(default)]
    pub seat_first: bool,
    /// The CRM's users have a manager field (Sell's `reports_to`, Salesforce's
    /// `ManagerId`); without one, `manager` means the event's `manager_email`
    /// alone. Plans stored before the field existed, and decisions made without
    /// knowing the CRM, assume one.
    #[serde(default = "crm_has_manager_field")]
    pub crm_manager_field: bool,
}

fn crm_has_manager_field() -> bool {
    true
}

impl Decision {
    /// Whether the seat step runs before the records move, when `action` is the
    /// action finally carried out (a review approved runs as a deactivate).
    pub fn seat_goes_first(&self, action: Action) -> bool {
        self.seat_first && action != Action::Delete
    }
}

fn yes() -> bool {
    true
}

/// Rule name a decision carries when no rule matched.
pub const NO_RULE_MATCHED: &str = "no rule matched";

/// Guard names, in the order they run.
pub const GUARD_ADMIN: &str = "never_delete_admin";
/// See [`GUARD_ADMIN`].
pub const GUARD_LEGAL_HOLD: &str = "never_delete_under_legal_hold";
/// See [`GUARD_ADMIN`].
pub const GUARD_REPORTEES: &str = "never_delete_manager_with_reportees";
/// Runs first, and only for a CRM that has no way to delete users (Pipedrive):
/// a delete becomes a deactivate there, said out loud rather than silently.
pub const GUARD_CRM_CANNOT_DELETE: &str = "crm_cannot_delete";

/// Guards the worker applies when it acts, with fresh facts; `explain` lists them so
/// a reader knows the decision is not the last word.
pub const RUNTIME_GUARDS: [&str; 6] = [
    "the CRM user's active reportees are counted before deciding (any → a delete waits in needs_review)",
    "right before the seat changes, the user (role, status), the open records, the reportees and the newest event for the employee are read again and audited, in a dry run too",
    "delete only if that fresh read shows no open records still owned, no active reportees, not an admin and no legal hold (a hold that arrived later wins)",
    "reassign only to an active user (else the fallback owner, else needs_review)",
    "a rehire or cancelled termination before the seat changes leaves the seat as it is",
    "over max_deletions_per_hour / max_offboardings_per_hour, the job waits for approval",
];
