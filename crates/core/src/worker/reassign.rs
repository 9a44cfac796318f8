//! Moving the leaver's records to an active owner.
//!
//! CRMs filter lists by owner, so every move shrinks the list: walking pages
//! while moving would skip records. We collect the ids from a full listing, move
//! them in write calls of as many records as the CRM takes (concurrently, within
//! the client's rate budget), then list again until a fresh listing has nothing
//! left to move. After a crash the fresh listing is the truth, so a record is
//! written again only if its first write did not land; the records of calls
//! that were in flight are checkpointed before each call, so the audit trail
//! says which of them landed unrecorded and which are sent again.

use std::collections::HashSet;

use futures::{StreamExt, stream::FuturesUnordered};
use serde_json::json;

use super::{
    checkpoint::{self as cp, Progress, Target},
    context::{Ctx, JobError},
    step::{Review, Step},
};
use crate::{
    crm::{CrmError, CrmId, CrmUser, Record, RecordRef, Resource, WriteOutcome},
    domain::{
        Capabilities, Email,
        lanes::{self, Lane},
    },
    policy::{Decision, ReassignTo},
};

/// Fresh listings per resource before giving up for this attempt.
const MAX_ROUNDS: usize = 5;

/// Resolves (once: the choice is checkpointed) who gets the records, trying the
/// candidates of DESIGN.md §7 in order and auditing each verdict.
/// [`Review::NoTarget`] when none is an active CRM user other than the leaver.
pub(super) async fn resolve_target(
    ctx: &mut Ctx<'_>,
    decision: &Decision,
    user: &CrmUser,
) -> Result<Step<Target>, JobError> {
    if let Some(t) = ctx.checkpoint(cp::TARGET) {
        return Ok(Step::Done(t));
    }
    let event = &ctx.job.event;
    let mut candidates: Vec<(&str, Candidate)> = Vec::new();
    match &decision.reassign_to {
        ReassignTo::Manager => {
            candidates.push((
                "manager_email",
                event
                    .employee
                    .manager_email
                    .clone()
                    .map(Candidate::Email)
                    .unwrap_or(Candidate::Missing),
            ));
            // A CRM without a manager field has no `reports_to` to try.
            if ctx.crm.capabilities().manager_field {
                candidates.push((
                    "reports_to",
                    user.reports_to
                        .clone()
                        .map(Candidate::Id)
                        .unwrap_or(Candidate::Missing),
                ));
            }
        }
        ReassignTo::User(email) => candidates.push(("user", Candidate::Email(email.clone()))),
        ReassignTo::Fallback => {}
    }
    candidates.push((
        "fallback_owner",
        decision
            .fallback_owner
            .clone()
            .map(Candidate::Email)
            .unwrap_or(Candidate::Missing),
    ));
    for (via, candidate) in candidates {
        let found = match &candidate {
            Candidate::Missing => None,
            Candidate::Email(e) => ctx.find_user_by_email(e).await?,
            Candidate::Id(id) => ctx.get_user(id).await?,
        };
        let verdict = match &found {
            _ if matches!(candidate, Candidate::Missing) => "not given",
            None => "not found in the CRM",
            Some(u) if u.id == user.id => "is the leaver",
            Some(u) if !u.is_active() => "not active",
            Some(_) => "chosen",
        };
        ctx.audit(
            "target.candidate",
            json!({ "via": via, "candidate": candidate.describe(), "crm_user_id": found.as_ref().map(|u| &u.id), "result": verdict }),
        )
        .await?;
        if let (Some(u), "chosen") = (found, verdict) {
            let target = Target {
                id: u.id,
                email: u.email.clone(),
                via: via.to_owned(),
            };
            ctx.set_checkpoint(cp::TARGET, &target).await?;
            return Ok(Step::Done(target));
        }
    }
    Ok(Step::NeedsReview(Review::NoTarget))
}

enum Candidate {
    Missing,
    Email(Email),
    Id(CrmId),
}

impl Candidate {
    fn describe(&self) -> String {
        match self {
            Self::Missing => "-".into(),
            Self::Email(e) => e.to_string(),
            Self::Id(id) => format!("user {id}"),
        }
    }
}

/// Moves every record the decision covers to `target` (which may switch to the
/// fallback owner when the CRM refuses it; the switch is checkpointed). Needs
/// review when neither owner is accepted; a CRM error after [`MAX_ROUNDS`] fresh
/// listings still showing records is transient, so the job retries later.
pub(super) async fn reassign_all(
    ctx: &mut Ctx<'_>,
    decision: &Decision,
    leaver: &CrmId,
    target: &mut Target,
) -> Result<Step<()>, JobError> {
    let mut pending: Vec<(Resource, Progress)> = Vec::new();
    for &resource in &decision.reassign {
        let progress: Progress = ctx.checkpoint(cp::reassign(resource)).unwrap_or_default();
        if progress.done {
            continue;
        }
        if ctx.crm.capabilities().has(resource) {
            pending.push((resource, progress));
        } else {
            not_applicable(ctx, resource).await?;
        }
    }
    let mut rounds = 0;
    while !pending.is_empty() {
        ctx.check_continue()?;
        rounds += 1;
        // Every pending resource is listed at once: the confirming listings after a
        // pass cost one round of latency instead of one per resource.
        let reused: Vec<bool> = pending
            .iter()
            .map(|(r, _)| ctx.fresh_listings.contains_key(r))
            .collect();
        let listings = list_pending(ctx, &pending, leaver).await?;
        ctx.listed_after_writes.clear();
        // Listed now, after every write so far (not the decision's listings).
        for (((resource, _), records), reused) in pending.iter().zip(&listings).zip(reused) {
            if !reused {
                let open = records.iter().filter(|r| r.open).count();
                ctx.listed_after_writes.insert(*resource, open);
            }
        }
        let mut writing: Vec<(Resource, Progress)> = Vec::new();
        let mut todo: Vec<RecordRef> = Vec::new();
        for ((resource, mut progress), records) in pending.into_iter().zip(listings) {
            if !progress.sending.is_empty() {
                account_for_interrupted(ctx, resource, &mut progress, &records).await?;
            }
            let (open, left): (Vec<_>, Vec<_>) = records
                .into_iter()
                .partition(|r| r.open || !decision.open_only);
            progress.left = left.len() as u64;
            if open.is_empty() {
                finish_resource(ctx, resource, &mut progress, target).await?;
                continue;
            }
            if rounds > MAX_ROUNDS {
                return Err(JobError::Crm(CrmError::Transient(format!(
                    "{} {resource} still owned after {MAX_ROUNDS} passes",
                    open.len()
                ))));
            }
            todo.extend(open.into_iter().map(|r| RecordRef { resource, id: r.id }));
            writing.push((resource, progress));
        }
        // All resources' records in one stream of write calls, so the budget does
        // not idle between resources and, where the CRM takes it, one call
        // carries several resources.
        if !todo.is_empty() {
            ctx.listed_after_writes.clear();
        }
        let owner = target.id.clone();
        let rejected = move_records(ctx, &todo, &owner, &mut writing).await?;
        if let Some(first) = rejected.first() {
            if let Step::NeedsReview(review) =
                switch_to_fallback(ctx, decision, target, first.resource).await?
            {
                return Ok(Step::NeedsReview(review));
            }
            let owner = target.id.clone();
            let again = move_records(ctx, &rejected, &owner, &mut writing).await?;
            if let Some(first) = again.first() {
                // Named by the first refused resource; each refused record has
                // its own `reassign.rejected` audit line.
                return Ok(Step::NeedsReview(Review::FallbackRefused {
                    count: again
                        .iter()
                        .filter(|r| r.resource == first.resource)
                        .count(),
                    resource: first.resource,
                }));
            }
        }
        if ctx.settings.dry_run {
            // Nothing really moved, so a fresh listing would show the same records.
            for (resource, progress) in &mut writing {
                finish_resource(ctx, *resource, progress, target).await?;
            }
            writing.clear();
        }
        pending = writing;
    }
    Ok(Step::Done(()))
}

/// The first pass uses the decision step's listings when it made them this run.
async fn list_pending(
    ctx: &mut Ctx<'_>,
    pending: &[(Resource, Progress)],
    leaver: &CrmId,
) -> Result<Vec<Vec<Record>>, JobError> {
    let crm = ctx.crm;
    let cached: Vec<Option<Vec<Record>>> = pending
        .iter()
        .map(|(r, _)| ctx.fresh_listings.remove(r))
        .collect();
    let lists = pending
        .iter()
        .zip(cached)
        .map(|((resource, _), cached)| async move {
            match cached {
                Some(records) => Ok(records),
                None => {
                    lanes::in_lane(
                        Lane::for_resource(*resource),
                        crm.list_owned(*resource, leaver),
                    )
                    .await
                }
            }
        });
    Ok(futures::future::try_join_all(lists).await?)
}

async fn finish_resource(
    ctx: &mut Ctx<'_>,
    resource: Resource,
    progress: &mut Progress,
    target: &Target,
) -> Result<(), JobError> {
    progress.done = true;
    ctx.set_checkpoint(cp::reassign(resource), &*progress)
        .await?;
    tracing::info!(
        resource = resource.as_str(),
        to = %target.id,
        moved = progress.moved,
        skipped = progress.skipped,
        "records reassigned"
    );
    ctx.audit(
        "reassign.done",
        json!({ "resource": resource, "to": &target.id, "moved": progress.moved, "skipped": progress.skipped, "left": progress.left, "dry_run": ctx.settings.dry_run }),
    )
    .await
}

/// The previous run stopped (a crash, a lost lease) with write calls in flight:
/// those of their records the leaver no longer owns landed without their outcome
/// being recorded (counted as moved); those still owned are about to be sent
/// again. Both are audited, then the interrupted calls are forgotten.
async fn account_for_interrupted(
    ctx: &mut Ctx<'_>,
    resource: Resource,
    progress: &mut Progress,
    listing: &[Record],
) -> Result<(), JobError> {
    let still_owned: HashSet<&CrmId> = listing.iter().map(|r| &r.id).collect();
    let (resending, landed): (Vec<CrmId>, Vec<CrmId>) = std::mem::take(&mut progress.sending)
        .into_iter()
        .partition(|id| still_owned.contains(id));
    progress.moved += landed.len() as u64;
    ctx.audit(
        "reassign.resumed",
        json!({
            "resource": resource,
            "interrupted": resending.len() + landed.len(),
            "landed_unrecorded": landed.len(),
            "resending": resending.len(),
            "resent_ids": resending,
        }),
    )
    .await?;
    ctx.set_checkpoint(cp::reassign(resource), &*progress).await
}

/// Not the CRM's: recorded once (done, nothing moved) with the reason.
async fn not_applicable(ctx: &mut Ctx<'_>, resource: Resource) -> Result<(), JobError> {
    let crm = ctx.crm.capabilities().name;
    ctx.audit(
        "reassign.not_applicable",
        json!({ "resource": resource, "reason": format!("{crm} has no {resource} object") }),
    )
    .await?;
    let done = Progress {
        done: true,
        ..Progress::default()
    };
    ctx.set_checkpoint(cp::reassign(resource), &done).await
}

/// Writes records concurrently (up to `max_in_flight` calls, paced by the client's
/// budget), each call carrying as many records as the CRM takes (of one resource
/// unless the CRM takes several), launching the next call as soon as one
/// returns, so the rate budget never idles at a batch boundary. Before each call
/// its records join their resource's `sending` in the checkpoint (what a crash
/// would leave unaccounted for); they leave it with their outcome. `progress`
/// holds every resource among `records`. Returns the records the CRM rejected.
/// On shutdown or a lost lease it stops launching calls.
async fn move_records(
    ctx: &mut Ctx<'_>,
    records: &[RecordRef],
    owner: &CrmId,
    progress: &mut [(Resource, Progress)],
) -> Result<Vec<RecordRef>, JobError> {
    let crm = ctx.crm;
    let max_in_flight = ctx.settings.max_in_flight.max(1);
    let mut batches = write_calls(records, crm.capabilities()).into_iter();
    let mut in_flight = FuturesUnordered::new();
    let mut rejected = Vec::new();
    let mut first_error = None;
    // A store error ends the run, but only once the calls already sent have
    // answered: dropping them would leave writes the CRM received without their
    // result in the audit trail.
    let mut stopped: Option<JobError> = None;
    'calls: loop {
        // A stopping worker, or one that lost its lease, sends nothing more.
        while in_flight.len() < max_in_flight
            && stopped.is_none()
            && !ctx.stop.is_cancelled()
            && !ctx.lost.is_cancelled()
        {
            let Some(batch) = batches.next() else { break };
            for run in batch.chunk_by(|a, b| a.resource == b.resource) {
                let Some(resource) = run.first().map(|r| r.resource) else {
                    continue;
                };
                let marked = match progress_of(progress, resource) {
                    Ok(p) => {
                        p.sending.extend(run.iter().map(|r| r.id.clone()));
                        ctx.set_checkpoint(cp::reassign(resource), &*p).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = marked {
                    stopped = Some(e);
                    continue 'calls;
                }
            }
            let owner = owner.clone();
            // A call carrying several resources queues in the most urgent one's lane.
            let lane = batch
                .iter()
                .map(|r| Lane::for_resource(r.resource))
                .min()
                .unwrap_or(Lane::Records);
            in_flight.push(lanes::in_lane(lane, async move {
                let result = crm.reassign_records(&batch, &owner).await;
                (batch, result)
            }));
        }
        let Some((batch, call)) = in_flight.next().await else {
            break;
        };
        for (resource, p) in progress.iter_mut() {
            let answered: HashSet<&CrmId> = batch
                .iter()
                .filter(|r| r.resource == *resource)
                .map(|r| &r.id)
                .collect();
            p.sending.retain(|id| !answered.contains(id));
        }
        let outcomes = match call {
            Ok(outcomes) => outcomes,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        for (resource, outcome) in outcomes {
            if stopped.is_some() {
                break;
            }
            let recorded = match progress_of(progress, resource) {
                Ok(p) => {
                    record_outcome(
                        ctx,
                        resource,
                        owner,
                        outcome,
                        p,
                        &mut rejected,
                        &mut first_error,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = recorded {
                stopped = Some(e);
            }
        }
    }
    if let Some(e) = stopped {
        return Err(e);
    }
    for (resource, p) in progress.iter() {
        ctx.set_checkpoint(cp::reassign(*resource), p).await?;
    }
    ctx.check_continue()?;
    match first_error {
        Some(e) => Err(JobError::Crm(e)),
        None => Ok(rejected),
    }
}

/// Splits `records` into write calls of at most `records_per_write`, one
/// resource per call unless the CRM takes mixed calls. Records are grouped by
/// resource first (by lane, so open deals go before the rest, then in the order
/// resources first appear; rejected records come back interleaved), so a mixed
/// call holds one run per resource.
fn write_calls(records: &[RecordRef], crm: &Capabilities) -> Vec<Vec<RecordRef>> {
    let mut order: Vec<Resource> = Vec::new();
    for r in records {
        if !order.contains(&r.resource) {
            order.push(r.resource);
        }
    }
    // Stable: resources of one lane keep their order.
    order.sort_by_key(|&resource| Lane::for_resource(resource));
    let grouped: Vec<RecordRef> = order
        .iter()
        .flat_map(|&resource| records.iter().filter(move |r| r.resource == resource))
        .cloned()
        .collect();
    let per_call = crm.records_per_write.max(1);
    if crm.mixed_writes {
        grouped
            .chunks(per_call)
            .map(<[RecordRef]>::to_vec)
            .collect()
    } else {
        grouped
            .chunk_by(|a, b| a.resource == b.resource)
            .flat_map(|run| run.chunks(per_call))
            .map(<[RecordRef]>::to_vec)
            .collect()
    }
}

/// The progress of `resource`, which the caller put in `progress`; a CRM that
/// answers for a resource it was not sent is answering something else.
fn progress_of(
    progress: &mut [(Resource, Progress)],
    resource: Resource,
) -> Result<&mut Progress, JobError> {
    progress
        .iter_mut()
        .find(|(r, _)| *r == resource)
        .map(|(_, p)| p)
        .ok_or_else(|| {
            JobError::Crm(CrmError::Permanent {
                status: 0,
                code: "unexpected_outcome".to_owned(),
                message: format!("the CRM answered for {resource} records it was not sent"),
            })
        })
}

/// Counts and audits what one write did to one record.
async fn record_outcome(
    ctx: &mut Ctx<'_>,
    resource: Resource,
    owner: &CrmId,
    outcome: WriteOutcome,
    progress: &mut Progress,
    rejected: &mut Vec<RecordRef>,
    first_error: &mut Option<CrmError>,
) -> Result<(), JobError> {
    let WriteOutcome { id, result } = outcome;
    match result {
        Ok(()) => {
            progress.moved += 1;
            metrics::counter!(crate::metrics::RECORDS_REASSIGNED_TOTAL, "kind" => resource.as_str())
                .increment(1);
        }
        Err(CrmError::NotFound(_)) => {
            progress.skipped += 1;
            ctx.audit(
                "reassign.skipped",
                json!({ "resource": resource, "id": id, "reason": "record no longer exists" }),
            )
            .await?;
        }
        Err(CrmError::Rejected { message, .. }) => {
            ctx.audit(
                "reassign.rejected",
                json!({ "resource": resource, "id": id, "owner": owner, "message": message }),
            )
            .await?;
            rejected.push(RecordRef { resource, id });
        }
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
    Ok(())
}

/// After the CRM refused the chosen owner: use the fallback owner, if it is someone else and active.
async fn switch_to_fallback(
    ctx: &mut Ctx<'_>,
    decision: &Decision,
    target: &mut Target,
    resource: Resource,
) -> Result<Step<()>, JobError> {
    let Some(fallback) = decision.fallback_owner.as_ref() else {
        return Ok(Step::NeedsReview(Review::OwnerRefusedNoFallback {
            owner: target.email.clone(),
            resource,
        }));
    };
    let found = ctx.crm.find_user_by_email(fallback.as_str()).await?;
    match found {
        Some(u) if u.is_active() && u.id != target.id => {
            ctx.audit("target.switched", json!({ "from": &target.id, "to": &u.id, "reason": format!("CRM refused owner for {resource}") })).await?;
            *target = Target {
                id: u.id,
                email: u.email,
                via: "fallback_owner".into(),
            };
            ctx.set_checkpoint(cp::TARGET, &*target).await?;
            Ok(Step::Done(()))
        }
        _ => Ok(Step::NeedsReview(Review::OwnerRefusedFallbackUnusable {
            owner: target.email.clone(),
            resource,
            fallback: fallback.clone(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::{hubspot, salesforce};

    fn refs(resource: Resource, n: usize) -> Vec<RecordRef> {
        (0..n)
            .map(|i| RecordRef {
                resource,
                id: CrmId::from(format!("{resource}-{i}")),
            })
            .collect()
    }

    fn shape(calls: &[Vec<RecordRef>]) -> Vec<Vec<(Resource, usize)>> {
        calls
            .iter()
            .map(|call| {
                call.chunk_by(|a, b| a.resource == b.resource)
                    .map(|run| (run[0].resource, run.len()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_crm_with_mixed_writes_fills_every_call_across_resources_deals_first() {
        let mut records = refs(Resource::Leads, 150);
        records.extend(refs(Resource::Deals, 130));
        records.extend(refs(Resource::Tickets, 20));
        let calls = write_calls(&records, &salesforce::CAPABILITIES);
        assert_eq!(
            shape(&calls),
            vec![
                vec![(Resource::Deals, 130), (Resource::Leads, 70)],
                vec![(Resource::Leads, 80), (Resource::Tickets, 20)],
            ]
        );
    }

    #[test]
    fn other_crms_get_one_resource_per_call_deals_first() {
        let mut records = refs(Resource::Contacts, 150);
        records.extend(refs(Resource::Deals, 30));
        let calls = write_calls(&records, &hubspot::CAPABILITIES);
        assert_eq!(
            shape(&calls),
            vec![
                vec![(Resource::Deals, 30)],
                vec![(Resource::Contacts, 100)],
                vec![(Resource::Contacts, 50)],
            ]
        );
    }

    #[test]
    fn interleaved_records_are_grouped_so_a_call_holds_one_run_per_resource() {
        let leads = refs(Resource::Leads, 4);
        let deals = refs(Resource::Deals, 4);
        let interleaved: Vec<RecordRef> = leads
            .iter()
            .zip(&deals)
            .flat_map(|(l, d)| [l.clone(), d.clone()])
            .collect();
        let calls = write_calls(&interleaved, &salesforce::CAPABILITIES);
        assert_eq!(
            shape(&calls),
            vec![vec![(Resource::Deals, 4), (Resource::Leads, 4)]]
        );
        assert_eq!(calls[0][..4], deals[..]);
        assert_eq!(calls[0][4..], leads[..]);
    }
}
