//! What the worker learns from the CRM about a leaver before deciding or acting:
//! the records they own, how many are open, and how many active users report to
//! them. The policy decides on these ([`Gathered::facts`] → `policy::Facts`), and
//! the seat step re-reads them fresh before a deletion ([`open_owned`],
//! [`active_reportees`]). Reads only: nothing here writes to the CRM or the store.

use chrono::{DateTime, Utc};

use super::context::{Ctx, JobError};
use crate::{
    crm::{Capabilities, CrmId, CrmUser, Record, Resource},
    domain::OffboardingEvent,
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

/// Open records `owner` holds in those of `resources` the CRM has, listed fresh.
pub(crate) async fn open_owned(
    ctx: &Ctx<'_>,
    owner: &CrmId,
    resources: &[Resource],
) -> Result<usize, JobError> {
    let mut open = 0;
    for &resource in resources {
        if !ctx.crm.capabilities().has(resource) {
            continue;
        }
        open += ctx
            .crm
            .list_owned(resource, owner)
            .await?
            .iter()
            .filter(|r| r.open)
            .count();
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
