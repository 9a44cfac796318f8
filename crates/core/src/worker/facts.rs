//! What the worker learns about a leaver before deciding or acting: the records
//! they own, how many are open, and how many active users report to them. The
//! policy decides on these ([`Gathered::facts`] → `policy::Facts`). Right before
//! the seat changes — the one step that cannot be taken back — the seat step reads
//! everything it rests on again ([`before_seat_change`]): the user, the open
//! records, the reportees, and the newest event stored for the employee, since a
//! decision made hundreds of writes earlier may rest on facts that changed since.
//! Reads only: nothing here writes to the CRM or the store.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::context::{Ctx, JobError};
use crate::{
    crm::{Capabilities, CrmId, CrmUser, Record, Resource},
    domain::{EventType, JobState, OffboardingEvent},
    policy::Facts,
};

/// The CRM's answers for one leaver, fetched together.
pub(crate) struct Gathered {
    /// Every record the leaver owns, per resource the CRM has (open and closed).
    pub listings: Vec<(Resource, Vec<Record>)>,
    /// Open records across all resources.
    pub open: u64,
    /// Active users whose `reports_to` is the leaver (0 where the CRM has no
    /// manager field: nobody reports to anybody there).
    pub reportees: u64,
}

impl Gathered {
    /// The policy's view of these answers about `user` in a CRM that can do what
    /// `crm` says, decided at `now`.
    pub fn facts<'a>(
        &self,
        event: &'a OffboardingEvent,
        user: &'a CrmUser,
        crm: &'a Capabilities,
        now: DateTime<Utc>,
    ) -> Facts<'a> {
        Facts {
            event,
            user: Some(user),
            owned_open_records: Some(self.open),
            active_reportees: Some(self.reportees),
            crm: Some(crm),
            now,
        }
    }
}

/// Lists everything `user` owns and counts their active reportees. The listings
/// and the user list are independent, so they are fetched concurrently (one round
/// of latency instead of one per resource).
pub(crate) async fn gather(ctx: &Ctx<'_>, user: &CrmUser) -> Result<Gathered, JobError> {
    let crm = ctx.crm;
    let lists: Vec<_> = crm
        .capabilities()
        .resources
        .iter()
        .copied()
        .map(|r| async move {
            crm.list_owned(r, &user.id)
                .await
                .map(|l| (r, l))
                .map_err(JobError::from)
        })
        .collect();
    let listings = futures::future::try_join_all(lists);
    let (listings, reportees) =
        futures::future::try_join(listings, active_reportees(ctx, &user.id)).await?;
    let open = listings
        .iter()
        .map(|(_, l)| l.iter().filter(|r| r.open).count() as u64)
        .sum();
    Ok(Gathered {
        listings,
        open,
        reportees,
    })
}

/// Open records `owner` holds in those of `resources` the CRM has, listed fresh
/// (all at once), except where the reassignment's last pass listed them after
/// its last write a moment ago ([`Ctx::listed_after_writes`]).
pub(crate) async fn open_owned(
    ctx: &Ctx<'_>,
    owner: &CrmId,
    resources: &[Resource],
) -> Result<usize, JobError> {
    let mut open = 0;
    let mut to_list = Vec::new();
    for &resource in resources {
        if !ctx.crm.capabilities().has(resource) {
            continue;
        }
        match ctx.listed_after_writes.get(&resource) {
            Some(n) => open += n,
            None => to_list.push(resource),
        }
    }
    let lists = to_list
        .into_iter()
        .map(|resource| ctx.crm.list_owned(resource, owner));
    for listing in futures::future::try_join_all(lists).await? {
        open += listing.iter().filter(|r| r.open).count();
    }
    Ok(open)
}

/// Active CRM users who report to `user_id`; without a manager field in the CRM
/// there are none, and no user list is fetched.
pub(crate) async fn active_reportees(ctx: &Ctx<'_>, user_id: &CrmId) -> Result<u64, JobError> {
    if !ctx.crm.capabilities().manager_field {
        return Ok(0);
    }
    let users = ctx.crm.list_users().await?;
    Ok(users
        .iter()
        .filter(|u| u.reports_to.as_ref() == Some(user_id) && u.is_active())
        .count() as u64)
}

/// The resources whose open records a deletion forbids (closed deals may stay
/// with a deleted user, and tasks go with the seat).
pub(crate) const DELETE_FORBIDS_OPEN: [Resource; 4] = [
    Resource::Leads,
    Resource::Contacts,
    Resource::Organizations,
    Resource::Deals,
];

/// An event for the same employee stored after the one the job acts on.
#[derive(Debug, Clone)]
pub(crate) struct NewerEvent {
    /// The job that event made.
    pub job_id: String,
    /// Its event.
    pub event: OffboardingEvent,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
}

/// What was read fresh right before a seat change.
#[derive(Debug, Clone)]
pub(crate) struct Fresh {
    /// The user as the CRM shows them now (`None`: gone).
    pub user: Option<CrmUser>,
    /// Open leads, contacts, organizations and deals the user still owns. In a dry
    /// run nothing really moved, so only resources the plan does not move count.
    pub open: usize,
    /// Active users who report to them.
    pub reportees: u64,
    /// The newest event for the employee stored since this job's, if any.
    pub newer_event: Option<NewerEvent>,
}

impl Fresh {
    /// Whether a legal hold applies: the job's own event's, or a newer one's (a
    /// hold that arrived later wins).
    pub fn legal_hold(&self, event: &OffboardingEvent) -> bool {
        event.legal_hold
            || self
                .newer_event
                .as_ref()
                .is_some_and(|n| n.event.legal_hold)
    }

    /// A newer event that calls the leaving off (a rehire, a cancelled
    /// termination): the seat is then left as it is.
    pub fn called_off(&self) -> Option<&NewerEvent> {
        self.newer_event.as_ref().filter(|n| {
            matches!(
                n.event.event_type,
                EventType::Rehired | EventType::TerminationCancelled
            )
        })
    }

    /// The audit entry's `read` part: everything the step is about to rely on.
    pub fn audit_json(&self, dry_run: bool) -> Value {
        json!({
            "user": self.user.as_ref().map(|u| json!({ "id": u.id, "role": u.role, "status": u.status, "deleted": u.is_deleted() })),
            "open_records": self.open,
            "open_records_counted": if dry_run { "resources the plan does not move (dry run: nothing really moved)" } else { "leads, contacts, organizations and deals, listed now or by the reassignment's last pass, after its last write" },
            "active_reportees": self.reportees,
            "newer_event": self.newer_event.as_ref().map(|n| json!({
                "job_id": n.job_id,
                "event_id": n.event.id,
                "type": n.event.event_type.as_str(),
                "legal_hold": n.event.legal_hold,
                "stored_at": n.stored_at,
            })),
        })
    }
}

/// Reads, fresh, what a seat change rests on: the user, their open records and
/// reportees from the CRM (concurrently), and the newest event the store holds
/// for the employee. `moves` is what the plan reassigns (used in a dry run only,
/// where nothing really moved).
pub(crate) async fn before_seat_change(
    ctx: &Ctx<'_>,
    user_id: &CrmId,
    moves: &[Resource],
) -> Result<Fresh, JobError> {
    let counted: Vec<Resource> = DELETE_FORBIDS_OPEN
        .into_iter()
        .filter(|r| !(ctx.settings.dry_run && moves.contains(r)))
        .collect();
    let user = async { ctx.crm.get_user(user_id).await.map_err(JobError::from) };
    let (user, open, reportees) = futures::future::try_join3(
        user,
        open_owned(ctx, user_id, &counted),
        active_reportees(ctx, user_id),
    )
    .await?;
    let newer_event = ctx
        .store
        .jobs_for(ctx.job.employee_email.as_str(), &JobState::ALL)
        .await?
        .into_iter()
        // Stored at or after this job (the same instant counts: a hold or a
        // rehire whose order against this event is unknown wins), its own event
        // and follow-ups of it excepted.
        .filter(|j| {
            j.created_at >= ctx.job.created_at
                && (&j.source, &j.event_id) != (&ctx.job.source, &ctx.job.event_id)
        })
        .max_by_key(|j| j.created_at)
        .map(|j| NewerEvent {
            job_id: j.id,
            event: j.event,
            stored_at: j.created_at,
        });
    Ok(Fresh {
        user,
        open,
        reportees,
        newer_event,
    })
}
