//! How a step of a job ends when nothing failed: it is [`Step::Done`] and the job
//! goes on, or a person must decide ([`Step::NeedsReview`]) and the job stops in
//! `needs_review` with a [`Review`] saying why. Failures (CRM, store, lease,
//! shutdown) are [`JobError`](super::JobError)s instead, so a step's signature
//! `Result<Step<T>, JobError>` names all three ways out.
//!
//! The text of each [`Review`] is what operators read as the job's `last_error`
//! (API, console, `jobs show`): it is part of the contract, so a variant's message
//! changes only on purpose.

use chrono::{DateTime, Utc};

use crate::{
    crm::{CrmId, Resource},
    domain::Email,
    store::Outcome,
};

/// The result of a step that did not fail. `R` is why a person must decide:
/// a [`Review`] for the job, or a narrower reason a caller wraps into one.
#[derive(Debug)]
#[must_use]
pub(crate) enum Step<T, R = Review> {
    /// The step did its work; `T` is what the next step needs.
    Done(T),
    /// The job cannot safely go on without a person.
    NeedsReview(R),
}

/// Why a job waits for a person (shown as its `last_error`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum Review {
    /// The policy decided `review` (its rule, or a guard that made it so).
    #[error("{0}")]
    Policy(String),
    /// An hourly cap of `[safety]` is reached; approving the job lets it pass.
    #[error("{cap} cap reached: {count} in the last hour (max {max}); approve this job to proceed")]
    OverCap {
        /// `deletions` or `offboardings`.
        cap: &'static str,
        /// Actions counted in the last hour.
        count: u64,
        /// The configured maximum.
        max: u32,
    },
    /// Manager, `reports_to` and `fallback_owner` are all missing or inactive.
    #[error(
        "no active CRM user can receive the records (manager, reports_to and fallback_owner all unavailable)"
    )]
    NoTarget,
    /// The CRM refused the chosen owner (422) and the policy has no fallback.
    #[error("the CRM refused owner {owner} for {resource} and no fallback_owner is set")]
    OwnerRefusedNoFallback {
        /// The refused owner's e-mail.
        owner: String,
        /// What was being moved.
        resource: Resource,
    },
    /// The CRM refused the chosen owner and the fallback can't take over.
    #[error(
        "the CRM refused owner {owner} for {resource} and fallback owner {fallback} is not an active CRM user"
    )]
    OwnerRefusedFallbackUnusable {
        /// The refused owner's e-mail.
        owner: String,
        /// What was being moved.
        resource: Resource,
        /// The policy's `fallback_owner`.
        fallback: Email,
    },
    /// The CRM refused the fallback owner too.
    #[error("the CRM refused the fallback owner for {count} {resource}")]
    FallbackRefused {
        /// Records refused.
        count: usize,
        /// What was being moved.
        resource: Resource,
    },
    /// A guard of DESIGN.md §7, re-checked fresh just before asking for a deletion.
    #[error("{0}")]
    DeleteRefused(DeleteRefusal),
    /// Read fresh before the seat change: a newer event for the employee (a
    /// rehire, a cancelled termination) calls the leaving off.
    #[error(
        "{event_type} arrived for this employee after this job was created (job {job_id}): the seat is left as it is, and that event's job cancels this one when it runs"
    )]
    CalledOff {
        /// The newer event's type.
        event_type: &'static str,
        /// The job it made.
        job_id: String,
    },
    /// `crm.admin_email` is not configured.
    #[error("crm.admin_email is not set: nobody can be asked to change the seat")]
    NoAdminEmail,
    /// `crm.admin_email` is a CRM user, but not an active one.
    #[error("crm.admin_email {0} is not an active CRM user")]
    AdminInactive(Email),
    /// `crm.admin_email` is not a CRM user at all.
    #[error("crm.admin_email {0} is not a CRM user")]
    AdminUnknown(Email),
    /// The leaver is the user the CRM API token acts as: changing that seat would
    /// cut offboard off mid-job, so it is never done by API.
    #[error(
        "the CRM API token belongs to the leaver {email} (user {id}): offboard will not change the seat its own token acts as; configure the token of a user who is not leaving (e.g. a sales-ops admin) and retry"
    )]
    OwnTokenSeat {
        /// The leaver's CRM user id.
        id: CrmId,
        /// The leaver's CRM e-mail.
        email: String,
    },
    /// The verification deadline passed and the CRM still shows the old state.
    #[error(
        "the CRM still shows the user as {shown} after the verification deadline ({deadline}); has the admin acted?"
    )]
    VerifyDeadline {
        /// What the CRM shows (`active`, `inactive`, `deleted`, `gone`).
        shown: String,
        /// `seat_requested_at` + `verify_deadline`.
        deadline: DateTime<Utc>,
    },
}

/// Why a deletion was refused at the last moment.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum DeleteRefusal {
    /// Never delete a CRM admin.
    #[error("refusing to delete a CRM admin")]
    Admin,
    /// Never delete under legal hold.
    #[error("refusing to delete under legal hold")]
    LegalHold,
    /// Deletion needs zero open leads, contacts and deals.
    #[error("{0} open leads/contacts/deals are still owned by the user; deletion needs zero")]
    OpenRecords(usize),
    /// A manager with active reportees can't be deleted.
    #[error("the user manages {0} active reportees; reassign them before deleting")]
    ActiveReportees(u64),
}

impl From<Review> for Outcome {
    fn from(review: Review) -> Self {
        Outcome::NeedsReview {
            reason: review.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_texts_are_the_ones_operators_already_read() {
        let email = Email::parse("ops@example.com").unwrap();
        let cases = [
            (
                Review::OverCap {
                    cap: "deletions",
                    count: 2,
                    max: 2,
                },
                "deletions cap reached: 2 in the last hour (max 2); approve this job to proceed",
            ),
            (
                Review::OwnerRefusedFallbackUnusable {
                    owner: "max@example.com".into(),
                    resource: Resource::Deals,
                    fallback: email.clone(),
                },
                "the CRM refused owner max@example.com for deals and fallback owner ops@example.com is not an active CRM user",
            ),
            (
                Review::DeleteRefused(DeleteRefusal::OpenRecords(3)),
                "3 open leads/contacts/deals are still owned by the user; deletion needs zero",
            ),
            (
                Review::AdminInactive(email),
                "crm.admin_email ops@example.com is not an active CRM user",
            ),
        ];
        for (review, text) in cases {
            assert_eq!(review.to_string(), text);
        }
    }
}
