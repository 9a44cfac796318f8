//! The steps of an offboarding that tell people (DESIGN.md §13): each writes its
//! notifications in the same store transaction as the checkpoint (or finish) that
//! records the step, so a notification exists exactly when its cause does, and a
//! step repeated after a crash finds its checkpoint and writes nothing again (the
//! ids would make a second write a no-op anyway). Sending is the
//! [`Dispatcher`](crate::notify::Dispatcher)'s, later: it never holds up the job.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{
    checkpoint::{self as cp, Reassigned, Target},
    context::{Ctx, JobError},
    seat,
};
use crate::{
    config::SeatExecutor,
    crm::CrmUser,
    domain::JobState,
    notify::Cause,
    policy::{Action, Decision},
};

/// Records that every resource is with its new owner (checkpoint `reassigned`),
/// with the `records.reassigned` notifications (the new owner's e-mail: what they
/// received, per resource). Once per job.
pub(super) async fn records_reassigned(
    ctx: &mut Ctx<'_>,
    decision: &Decision,
    target: &Target,
) -> Result<(), JobError> {
    if ctx.has_checkpoint(cp::REASSIGNED) {
        return Ok(());
    }
    let moved: BTreeMap<String, u64> = decision
        .reassign
        .iter()
        .filter(|r| ctx.crm.capabilities().has(**r))
        .map(|r| {
            let moved = ctx.checkpoint(cp::reassign(*r)).map_or(0, |p| p.moved);
            (r.as_str().to_owned(), moved)
        })
        .collect();
    let cause = Cause::Reassigned {
        to: target.email.clone(),
        moved: moved.clone(),
        crm: ctx.crm.capabilities().name.to_owned(),
    };
    let notices = ctx.notices(&cause);
    let summary = Reassigned {
        to: target.email.clone(),
        moved,
    };
    ctx.set_checkpoint_with(cp::REASSIGNED, &summary, &notices)
        .await
}

/// Records the seat step (checkpoint `seat_requested_at`, from which only
/// verification is left), with the `seat.requested` notifications: the policy's
/// `notify` addresses, and the CRM admin's e-mail when a person must act.
pub(super) async fn seat_requested(
    ctx: &mut Ctx<'_>,
    action: Action,
    user: &CrmUser,
    decision: &Decision,
    target: &Target,
    at: DateTime<Utc>,
) -> Result<(), JobError> {
    let change = seat::change_for(action);
    let manual = seat::executor_for(ctx, change) == SeatExecutor::Manual;
    let crm = ctx.crm.capabilities();
    let cause = Cause::SeatRequested {
        action: action.as_str().to_owned(),
        executor: if manual { "manual" } else { "api" }.to_owned(),
        crm: crm.name.to_owned(),
        admin_path: crm.seat_admin_path.to_owned(),
        task: manual.then(|| seat::task_content(ctx, action, user, decision, target)),
    };
    let notices = ctx.notices(&cause);
    ctx.set_checkpoint_with(cp::SEAT_REQUESTED, &at, &notices)
        .await
}

/// The `seat.verified` notifications, written by the run's finish when it ends
/// the job `succeeded`.
pub(super) fn seat_verified(ctx: &mut Ctx<'_>, action: Action) {
    let cause = Cause::SeatVerified {
        action: action.as_str().to_owned(),
        crm: ctx.crm.capabilities().name.to_owned(),
    };
    let notices = ctx.notices(&cause).into_iter().map(|mut n| {
        n.only_if = Some(JobState::Succeeded);
        n
    });
    ctx.finish_notices.extend(notices);
}
