//! An offboarding, step by step: find the CRM user, decide (once), wait for the
//! effective time, pass the caps, reassign open records, request the seat action,
//! verify it, schedule the retention follow-up. Each step records a checkpoint, so
//! a run that starts over (crash, retry, next poll) skips what is done.
//!
//! The `delete_after` follow-up job runs the same steps with a decision made by
//! `Policy::decide_follow_up_delete`, so it passes the guards again at its time.

use chrono::Duration as ChronoDuration;
use serde_json::json;

use super::{
    checkpoint as cp,
    context::{self, Ctx, JobError, Lookup},
    facts, notices, reassign, seat,
    step::{Review, Step},
};
use crate::{
    config::SeatExecutor,
    crm::{CrmId, CrmUser, SeatChange},
    domain::JobKind,
    policy::{Action, Decision},
    store::{Outcome, Reservation, StoreError},
};

/// Runs an `offboard` or `delete_after_retention` job to its next resting state
/// (called by the worker for each claim of such a job).
pub(super) async fn run(ctx: &mut Ctx<'_>) -> Result<Outcome, JobError> {
    let email = ctx.job.event.employee.email.clone();

    // 1. Who is this in the CRM? (`found`: as this run just read them.)
    let (user_id, found) = match ctx.checkpoint(cp::CRM_USER) {
        Some(id) => (id, None),
        None => match ctx.crm.find_user_by_email(email.as_str()).await? {
            Some(u) => {
                tracing::info!(crm_user_id = %u.id, "CRM user found");
                ctx.audit(
                    "crm.user_found",
                    json!({ "id": u.id, "status": u.status, "role": u.role }),
                )
                .await?;
                ctx.set_checkpoint(cp::CRM_USER, &u.id).await?;
                (u.id.clone(), Some(u))
            }
            None => {
                tracing::info!("no CRM user has this e-mail: nothing to do");
                ctx.audit(
                    "outcome",
                    json!({ "result": "no CRM user", "email": email.as_str() }),
                )
                .await?;
                return Ok(Outcome::Succeeded);
            }
        },
    };

    // A requested seat action only needs verifying.
    if ctx.has_checkpoint(cp::SEAT_REQUESTED) {
        let decision = stored_decision(ctx)?;
        let action = final_action(ctx, &decision);
        return finish_with_verify(ctx, &decision, action, &user_id).await;
    }

    // Read once per run: a run resuming from the checkpoint reads the user again.
    let user = match found {
        Some(u) => Some(u),
        None => ctx.crm.get_user(&user_id).await?,
    };
    let Some(user) = user else {
        ctx.audit(
            "outcome",
            json!({ "result": "CRM user no longer exists", "id": user_id }),
        )
        .await?;
        return Ok(Outcome::Succeeded);
    };

    // 2. Decide once; later runs use the stored decision.
    let decision = match ctx.job.plan.as_ref() {
        Some(_) => stored_decision(ctx)?,
        None => decide(ctx, &user).await?,
    };

    // 3. Not before the effective time.
    if let Some(run_at) = decision.run_at
        && run_at > ctx.now()
    {
        return Ok(Outcome::Scheduled {
            run_at,
            reason: format!("waiting for the effective time {run_at}"),
        });
    }

    // 4. Review decisions wait for a person; approval proceeds with the reversible action.
    let action = final_action(ctx, &decision);
    if decision.action == Action::Review && !ctx.job.approved {
        let reason = decision
            .review_reason
            .clone()
            .unwrap_or_else(|| format!("rule {:?} asks for review", decision.rule));
        return Ok(Review::Policy(reason).into());
    }

    // Never the seat offboard's own token acts as (before anything is written).
    if let Step::NeedsReview(review) =
        seat::guard_own_seat(ctx, seat::change_for(action), &user).await?
    {
        return Ok(review.into());
    }

    // 5. Blast radius.
    if let Some(outcome) = reserve_against_caps(ctx, action).await? {
        return Ok(outcome);
    }

    // 6. Records go to an active owner; with `seat_first` (never for a delete)
    // the seat is changed, or the admin asked, before the first record moves.
    // Asking again after a crash is harmless: an API change finds the seat
    // already in that state, and the admin task is created once per job.
    let mut target = match reassign::resolve_target(ctx, &decision, &user).await? {
        Step::Done(t) => t,
        Step::NeedsReview(review) => return Ok(review.into()),
    };
    let seat_first = decision.seat_goes_first(action);
    ctx.audit(
        "order",
        json!({ "seat_first": seat_first, "steps": if seat_first { ["seat", "records"] } else { ["records", "seat"] } }),
    )
    .await?;
    if seat_first
        && let Step::NeedsReview(review) =
            seat::request(ctx, action, &user, &decision, &target).await?
    {
        return Ok(review.into());
    }
    if let Step::NeedsReview(review) =
        reassign::reassign_all(ctx, &decision, &user.id, &mut target).await?
    {
        return Ok(review.into());
    }
    notices::records_reassigned(ctx, &decision, &target).await?;
    ctx.check_continue()?;

    // 7. The seat, when it did not go first.
    if !seat_first
        && let Step::NeedsReview(review) =
            seat::request(ctx, action, &user, &decision, &target).await?
    {
        return Ok(review.into());
    }
    let requested_at = ctx.now();
    notices::seat_requested(ctx, action, &user, &decision, &target, requested_at).await?;
    let by = match seat::executor_for(ctx, seat::change_for(action)) {
        SeatExecutor::Api => "made through the CRM's API",
        SeatExecutor::Manual => "requested from the CRM admin",
    };
    tracing::info!(action = action.as_str(), "seat change {by}");
    metrics::counter!(crate::metrics::SEATS_TOTAL, "action" => action.as_str(), "state" => "requested")
        .increment(1);

    // 8. Verify (usually: not yet; poll later).
    finish_with_verify(ctx, &decision, action, &user.id).await
}

/// The action that will actually be carried out.
fn final_action(ctx: &Ctx<'_>, decision: &Decision) -> Action {
    match decision.action {
        Action::Review if ctx.job.approved => Action::Deactivate,
        other => other,
    }
}

/// The decision an earlier run stored as the job's plan. A plan that no longer
/// parses is a corrupt row, not a reason to decide again: the first decision is
/// the one the audit trail explains.
fn stored_decision(ctx: &Ctx<'_>) -> Result<Decision, JobError> {
    let plan = ctx.job.plan.clone().unwrap_or_default();
    serde_json::from_value(plan)
        .map_err(|e| JobError::Store(StoreError::Corrupt(format!("stored plan: {e}"))))
}

/// Gathers CRM facts, asks the policy, stores the decision with its explanation.
async fn decide(ctx: &mut Ctx<'_>, user: &CrmUser) -> Result<Decision, JobError> {
    // The owner candidates and the admin don't depend on the listings, which take
    // a round of latency per page: looking them up meanwhile spares the steps
    // after the decision a round each.
    let ahead = context::look_ahead(ctx.crm, lookups_worth_making(ctx, user));
    let (gathered, looked_ahead) = futures::future::join(facts::gather(ctx, user), ahead).await;
    let gathered = gathered?;
    ctx.looked_ahead = looked_ahead;
    let seen = gathered.facts(&ctx.job.event, user, ctx.crm.capabilities(), ctx.now());
    let decision = match ctx.job.kind {
        JobKind::DeleteAfterRetention => ctx.policy.decide_follow_up_delete(&seen),
        _ => ctx.policy.decide(&seen),
    };
    let facts::Gathered {
        listings,
        open,
        reportees,
    } = gathered;
    // The reassignment's first pass can use these instead of listing again.
    ctx.fresh_listings = listings.into_iter().collect();
    let plan = serde_json::to_value(&decision)
        .map_err(|e| JobError::Store(StoreError::Corrupt(e.to_string())))?;
    ctx.audience = Some(crate::notify::Audience {
        notify: decision.notify.clone(),
        new_owners: decision.notify_new_owners,
    });
    let decided = ctx.notices(&crate::notify::Cause::Decided {
        rule: decision.rule.clone(),
        action: decision.action.as_str().to_owned(),
        run_at: decision.run_at,
    });
    ctx.store
        .set_plan_with(ctx.lease, decision.action.as_str(), &plan, &decided)
        .await?;
    tracing::info!(
        rule = %decision.rule,
        action = decision.action.as_str(),
        "decided"
    );
    ctx.audit(
        "decision",
        json!({
            "rule": decision.rule,
            "rule_action": decision.rule_action,
            "action": decision.action,
            "guards": decision.guards,
            "assumptions": decision.assumptions,
            "policy_version": decision.policy_version,
            "facts": { "owned_open_records": open, "active_reportees": reportees, "crm_role": user.role },
        }),
    )
    .await?;
    Ok(decision)
}

/// The users the steps after the decision most likely look up: the manager (by
/// e-mail, then the leaver's `reports_to`) and the fallback owner, the usual
/// owner candidates, and, when a seat change would be asked of a person, the admin.
fn lookups_worth_making(ctx: &Ctx<'_>, user: &CrmUser) -> Vec<Lookup> {
    let mut lookups: Vec<Lookup> = Vec::new();
    lookups.extend(
        ctx.job
            .event
            .employee
            .manager_email
            .clone()
            .map(Lookup::Email),
    );
    if ctx.crm.capabilities().manager_field {
        lookups.extend(user.reports_to.clone().map(Lookup::Id));
    }
    lookups.extend(ctx.policy.fallback_owner().cloned().map(Lookup::Email));
    let manual = [SeatChange::Deactivate, SeatChange::Delete]
        .into_iter()
        .any(|change| seat::executor_for(ctx, change) == SeatExecutor::Manual);
    if manual && !ctx.has_checkpoint(cp::ADMIN_USER) {
        lookups.extend(ctx.settings.admin_email.clone().map(Lookup::Email));
    }
    lookups
}

/// Reserves the seat action against the hourly caps (a rolling hour back from
/// now) unless an operator approved. `Some(outcome)` when the job must wait.
async fn reserve_against_caps(
    ctx: &mut Ctx<'_>,
    action: Action,
) -> Result<Option<Outcome>, JobError> {
    // An approved job passes the caps but is still counted against them.
    let s = ctx.settings;
    let capped = !ctx.job.approved;
    let max_deletions = (capped && action == Action::Delete).then_some(s.max_deletions_per_hour);
    let max_offboardings = capped.then_some(s.max_offboardings_per_hour);
    let since = ctx.now() - ChronoDuration::hours(1);
    match ctx
        .store
        .reserve_seat_action(
            ctx.lease,
            action.as_str(),
            since,
            max_deletions,
            max_offboardings,
        )
        .await?
    {
        Reservation::Granted => Ok(None),
        Reservation::OverCap { cap, count, max } => {
            ctx.audit(
                "guard.cap",
                json!({ "cap": cap, "count": count, "max": max }),
            )
            .await?;
            Ok(Some(Review::OverCap { cap, count, max }.into()))
        }
    }
}

/// Verifies the seat change and, once the CRM shows it, schedules the
/// `delete_after` follow-up (first offboardings that deactivated only) and ends.
async fn finish_with_verify(
    ctx: &mut Ctx<'_>,
    decision: &Decision,
    action: Action,
    user_id: &CrmId,
) -> Result<Outcome, JobError> {
    match seat::verify(ctx, seat::change_for(action), user_id).await? {
        seat::Verified::Done => {}
        seat::Verified::Waiting(outcome) => return Ok(outcome),
    }
    metrics::counter!(crate::metrics::SEATS_TOTAL, "action" => action.as_str(), "state" => "verified")
        .increment(1);
    notices::seat_verified(ctx, action);
    tracing::info!(action = action.as_str(), "seat change verified in the CRM");
    if let (Some(delete_at), Action::Deactivate, JobKind::Offboard) =
        (decision.delete_at, action, ctx.job.kind)
        && !ctx.settings.dry_run
    {
        let id = ctx
            .store
            .enqueue_follow_up(ctx.lease, JobKind::DeleteAfterRetention, delete_at)
            .await?;
        ctx.audit(
            "follow_up.scheduled",
            json!({ "job_id": id, "kind": "delete_after_retention", "run_at": delete_at }),
        )
        .await?;
    }
    ctx.audit(
        "outcome",
        json!({ "result": "done", "action": action, "dry_run": ctx.settings.dry_run }),
    )
    .await?;
    Ok(Outcome::Succeeded)
}
