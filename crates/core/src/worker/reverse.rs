//! Rehires and cancelled terminations. They cancel every pending job for the
//! employee (a scheduled deactivation, a `delete_after` follow-up, one waiting for
//! review) and, when offboard had already deactivated the seat, reactivate it
//! (through the API where the CRM can, e.g. Pipedrive; else by asking an admin,
//! as Sell needs) and verify the user is active again.

use serde_json::json;

use super::{
    checkpoint as cp,
    context::{Ctx, JobError},
    seat,
    step::Step,
};
use crate::{
    config::SeatExecutor,
    crm::{CrmId, SeatChange},
    domain::{JobKind, JobState},
    store::Outcome,
};

/// Runs a `reverse` job (rehire or cancelled termination) to its next resting
/// state (called by the worker for each claim of such a job).
pub(super) async fn run(ctx: &mut Ctx<'_>) -> Result<Outcome, JobError> {
    let email = ctx.job.event.employee.email.clone();
    let why = ctx.job.event.event_type.as_str();
    if ctx.checkpoint(cp::CANCELLED_JOBS).is_none() {
        let cancelled = ctx
            .store
            .cancel_pending_for(
                email.as_str(),
                &ctx.job.id,
                &format!("{why} received (event {})", ctx.job.event.id),
            )
            .await?;
        ctx.audit(
            "reverse.cancelled_jobs",
            json!({ "jobs": cancelled, "because": why }),
        )
        .await?;
        ctx.set_checkpoint(cp::CANCELLED_JOBS, &cancelled).await?;
    }

    // Set only once the reactivation was requested: what is left is verifying it.
    if let Some(user_id) = ctx.checkpoint(cp::CRM_USER) {
        return verify(ctx, &user_id).await;
    }

    // Did offboard deactivate this seat earlier?
    let earlier = ctx
        .store
        .jobs_for(email.as_str(), &[JobState::Succeeded])
        .await?;
    let deactivated = earlier
        .iter()
        .any(|j| j.kind == JobKind::Offboard && j.action.as_deref() == Some("deactivate"));
    let Some(user) = ctx.crm.find_user_by_email(email.as_str()).await? else {
        ctx.audit(
            "outcome",
            json!({ "result": "no CRM user; nothing to reactivate" }),
        )
        .await?;
        return Ok(Outcome::Succeeded);
    };
    if user.is_deleted() {
        ctx.audit(
            "outcome",
            json!({ "result": format!("the seat was deleted; invite the person again in {}", ctx.crm.capabilities().name) }),
        )
        .await?;
        return Ok(Outcome::Succeeded);
    }
    if user.is_active() || !deactivated {
        let result = if user.is_active() {
            "seat is active; nothing to reactivate"
        } else {
            "seat is inactive but offboard did not deactivate it; left alone"
        };
        ctx.audit("outcome", json!({ "result": result })).await?;
        return Ok(Outcome::Succeeded);
    }
    ctx.store
        .set_plan(
            ctx.lease,
            "reactivate",
            &json!({ "action": "reactivate", "crm_user_id": user.id }),
        )
        .await?;
    match seat::executor_for(ctx, SeatChange::Reactivate) {
        SeatExecutor::Api => seat::change_by_api(ctx, SeatChange::Reactivate, &user.id).await?,
        SeatExecutor::Manual => {
            let crm = ctx.crm.capabilities();
            let content = format!(
                "offboard: please REACTIVATE the {vendor} user {} <{}> (id {}) in {path}: {why}. \
                 offboard deactivated this seat earlier; it re-checks the user and closes this job once {vendor} shows them active. {}",
                user.name,
                user.email,
                user.id,
                seat::marker(&ctx.job.id),
                vendor = crm.name,
                path = crm.seat_admin_path,
            );
            if let Step::NeedsReview(review) = seat::ensure_task(ctx, "reactivate", content).await?
            {
                return Ok(review.into());
            }
        }
    }
    ctx.set_checkpoint(cp::CRM_USER, &user.id).await?;
    let requested_at = ctx.now();
    ctx.set_checkpoint(cp::SEAT_REQUESTED, &requested_at)
        .await?;
    verify(ctx, &user.id).await
}

async fn verify(ctx: &mut Ctx<'_>, user_id: &CrmId) -> Result<Outcome, JobError> {
    match seat::verify(ctx, SeatChange::Reactivate, user_id).await? {
        seat::Verified::Done => {
            ctx.audit("outcome", json!({ "result": "reactivated" }))
                .await?;
            Ok(Outcome::Succeeded)
        }
        seat::Verified::Waiting(outcome) => Ok(outcome),
    }
}
