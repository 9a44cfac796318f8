//! The seat step, by either executor. Where `crm.seat_executor = "api"` and the
//! CRM's API can make the change (Pipedrive's `active_flag`), offboard makes it
//! itself and verifies it by reading the user back. Otherwise (Sell's users API is
//! read-only) offboard asks a person: it creates ONE task for the configured admin
//! saying exactly what to do in the CRM's user settings, then polls the user
//! until the CRM shows the result (or a deadline passes → `needs_review`).
//!
//! offboard never changes the seat its own API token acts as: that is refused
//! before the job writes anything ([`guard_own_seat`]).
//!
//! At most one task per job, even across a crash between "task created" and "we
//! recorded it": a pending marker is checkpointed before the POST, and a run that
//! finds the marker without a task id looks the task up by that marker first.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{
    checkpoint::{self as cp, Target, TaskPending},
    context::{Ctx, JobError},
    facts,
    step::{DeleteRefusal, Review, Step},
};
use crate::{
    config::SeatExecutor,
    crm::{CrmId, CrmUser, NewTask, SeatAbility, SeatChange, UserRole},
    policy::{Action, Decision},
    store::Outcome,
};

/// How long the admin has to act on the task, as the task's due date says.
const TASK_DUE: chrono::Duration = chrono::Duration::hours(24);

/// The marker that identifies this job's task in the CRM.
pub(super) fn marker(job_id: &str) -> String {
    format!("[offboard job {job_id}]")
}

/// Who carries out `change` here: offboard through the API when so configured and
/// the CRM's API can, else a person.
pub(super) fn executor_for(ctx: &Ctx<'_>, change: SeatChange) -> SeatExecutor {
    let can = ctx.crm.capabilities().ability(change) == SeatAbility::Api;
    match ctx.settings.seat_executor {
        SeatExecutor::Api if can => SeatExecutor::Api,
        _ => SeatExecutor::Manual,
    }
}

/// Refuses, before anything is written, to let offboard change the seat its own
/// API token acts as: the token would stop working halfway, and the company would
/// lose the user offboard works through. Only where the change goes by API.
pub(super) async fn guard_own_seat(
    ctx: &mut Ctx<'_>,
    change: SeatChange,
    user: &CrmUser,
) -> Result<Step<()>, JobError> {
    if executor_for(ctx, change) != SeatExecutor::Api {
        return Ok(Step::Done(()));
    }
    let own = ctx.crm.token_user().await?;
    if own.as_ref() == Some(&user.id) {
        ctx.audit(
            "guard.runtime",
            json!({ "guard": "own_token_seat", "changed": true, "detail": format!("the CRM API token belongs to user {}", user.id) }),
        )
        .await?;
        return Ok(Step::NeedsReview(Review::OwnTokenSeat {
            id: user.id.clone(),
            email: user.email.clone(),
        }));
    }
    Ok(Step::Done(()))
}

/// Runs the last safety checks and changes the seat, or asks the admin to
/// (called by the offboard step once the records are moved). Everything the
/// change rests on is read again first and put in the audit trail (in a dry run
/// too: reads are allowed). Needs review when a newer event called the leaving
/// off, when a deletion's fresh preconditions fail, or when nobody can be asked.
pub(super) async fn request(
    ctx: &mut Ctx<'_>,
    action: Action,
    user: &CrmUser,
    decision: &Decision,
    target: &Target,
) -> Result<Step<()>, JobError> {
    let fresh = facts::before_seat_change(ctx, &user.id, &decision.reassign).await?;
    ctx.audit(
        "facts.fresh",
        json!({ "before": change_for(action).as_str(), "read": fresh.audit_json(ctx.settings.dry_run) }),
    )
    .await?;
    if let Some(newer) = fresh.called_off() {
        let review = Review::CalledOff {
            event_type: newer.event.event_type.as_str(),
            job_id: newer.job_id.clone(),
        };
        runtime_guard(ctx, "newer_event", true, review.to_string()).await?;
        return Ok(Step::NeedsReview(review));
    }
    let Some(now_user) = fresh.user.as_ref() else {
        ctx.audit(
            "seat.skipped",
            json!({ "reason": "the CRM user no longer exists", "crm_user_id": user.id }),
        )
        .await?;
        return Ok(Step::Done(()));
    };
    if action == Action::Delete {
        if let Some(refusal) = delete_refusal(&fresh, now_user, &ctx.job.event) {
            runtime_guard(ctx, "delete_preconditions", true, refusal.to_string()).await?;
            return Ok(Step::NeedsReview(Review::DeleteRefused(refusal)));
        }
        runtime_guard(
            ctx,
            "delete_preconditions",
            false,
            "read fresh: no open records, no active reportees, not an admin, no legal hold"
                .to_owned(),
        )
        .await?;
    }
    let change = change_for(action);
    match executor_for(ctx, change) {
        SeatExecutor::Api => change_by_api(ctx, change, &user.id).await?,
        SeatExecutor::Manual => {
            let content = task_content(ctx, action, user, decision, target);
            if let Step::NeedsReview(review) = ensure_task(ctx, "seat", content).await? {
                return Ok(Step::NeedsReview(review));
            }
        }
    }
    // The policy's `notify` addresses (and the admin, by e-mail) are told with the
    // `seat_requested_at` checkpoint that records this step (`notices.rs`).
    Ok(Step::Done(()))
}

async fn runtime_guard(
    ctx: &Ctx<'_>,
    guard: &str,
    changed: bool,
    detail: String,
) -> Result<(), JobError> {
    ctx.audit(
        "guard.runtime",
        json!({ "guard": guard, "changed": changed, "detail": detail }),
    )
    .await
}

/// Makes the change through the CRM's API (repeating it after a crash is
/// harmless: the seat simply is in that state already). The call itself is in
/// the audit trail as a CRM call; verification reads the user back next.
pub(super) async fn change_by_api(
    ctx: &mut Ctx<'_>,
    change: SeatChange,
    user: &CrmId,
) -> Result<(), JobError> {
    ctx.crm.change_seat(user, change).await?;
    ctx.audit(
        "seat.changed",
        json!({ "change": change.as_str(), "via": "api", "crm_user_id": user, "dry_run": ctx.settings.dry_run }),
    )
    .await
}

/// A deletion is permanent: what DESIGN.md §7 demands, on the facts just read.
fn delete_refusal(
    fresh: &facts::Fresh,
    user: &CrmUser,
    event: &crate::domain::OffboardingEvent,
) -> Option<DeleteRefusal> {
    if user.role == UserRole::Admin {
        Some(DeleteRefusal::Admin)
    } else if fresh.legal_hold(event) {
        Some(DeleteRefusal::LegalHold)
    } else if fresh.open > 0 {
        Some(DeleteRefusal::OpenRecords(fresh.open))
    } else if fresh.reportees > 0 {
        Some(DeleteRefusal::ActiveReportees(fresh.reportees))
    } else {
        None
    }
}

/// The admin task's text (also quoted in the admin's e-mail).
pub(super) fn task_content(
    ctx: &Ctx<'_>,
    action: Action,
    user: &CrmUser,
    decision: &Decision,
    target: &Target,
) -> String {
    let event = &ctx.job.event;
    let why = match event.kind() {
        Some(kind) => format!("{} ({})", event.event_type.as_str(), kind.as_str()),
        None => event.event_type.as_str().to_owned(),
    };
    let what = match action {
        Action::Delete => "DELETE".to_owned(),
        _ => "DEACTIVATE".to_owned(),
    };
    let consequence = match action {
        Action::Delete => {
            "Deletion is permanent and removes their email conversations; closed deals stay with the deleted user."
        }
        _ => "Deactivation is reversible and keeps their history and email conversations.",
    };
    let crm = ctx.crm.capabilities();
    format!(
        "offboard: please {what} the {vendor} user {name} <{email}> (id {id}) in {path}. \
         Why: {why}; policy rule {rule:?} decided {action}. {records} \
         {consequence} offboard re-checks the user and closes this job once {vendor} shows the change. {marker}",
        vendor = crm.name,
        path = crm.seat_admin_path,
        name = user.name,
        email = user.email,
        id = user.id,
        rule = decision.rule,
        action = action.as_str(),
        records = if decision.seat_goes_first(action) {
            format!(
                "Their open records are being reassigned to {} now: access is cut first.",
                target.email
            )
        } else {
            format!("Their open records were reassigned to {}.", target.email)
        },
        marker = marker(&ctx.job.id),
    )
}

/// Creates the admin task once per job (idempotent across crashes: see the
/// module's front page). `purpose` (`seat`, `reactivate`) goes to the audit trail.
/// Needs review when `crm.admin_email` can't be resolved to an active user.
pub(super) async fn ensure_task(
    ctx: &mut Ctx<'_>,
    purpose: &str,
    content: String,
) -> Result<Step<()>, JobError> {
    if ctx.checkpoint(cp::ADMIN_TASK).is_some() {
        return Ok(Step::Done(()));
    }
    let admin_id = match resolve_admin(ctx).await? {
        Step::Done(id) => id,
        Step::NeedsReview(review) => return Ok(Step::NeedsReview(review)),
    };
    let admin_id = &admin_id;
    let marker = marker(&ctx.job.id);
    if ctx.has_checkpoint(cp::ADMIN_TASK_PENDING) {
        // A previous run may have created it and died before recording the id.
        if let Some(id) = ctx.crm.find_task(admin_id, &marker).await? {
            ctx.audit(
                "seat.task_found",
                json!({ "task_id": id, "purpose": purpose }),
            )
            .await?;
            ctx.set_checkpoint(cp::ADMIN_TASK, &id).await?;
            return Ok(Step::Done(()));
        }
    }
    let now = ctx.now();
    ctx.set_checkpoint(cp::ADMIN_TASK_PENDING, &TaskPending { marker, at: now })
        .await?;
    let task = NewTask {
        content: content.clone(),
        owner_id: admin_id.clone(),
        due_date: Some((now + TASK_DUE).to_rfc3339()),
    };
    // On any error the POST may still have landed: the pending marker makes the
    // next run look the task up before creating one.
    let id = ctx.crm.create_task(&task).await?;
    ctx.set_checkpoint(cp::ADMIN_TASK, &id).await?;
    ctx.audit(
        "seat.task_created",
        json!({ "task_id": id, "admin_user_id": admin_id, "purpose": purpose, "content": content }),
    )
    .await?;
    Ok(Step::Done(()))
}

async fn resolve_admin(ctx: &mut Ctx<'_>) -> Result<Step<CrmId>, JobError> {
    if let Some(id) = ctx.checkpoint(cp::ADMIN_USER) {
        return Ok(Step::Done(id));
    }
    let Some(email) = ctx.settings.admin_email.clone() else {
        return Ok(Step::NeedsReview(Review::NoAdminEmail));
    };
    match ctx.find_user_by_email(&email).await? {
        Some(u) if u.is_active() => {
            ctx.set_checkpoint(cp::ADMIN_USER, &u.id).await?;
            Ok(Step::Done(u.id))
        }
        Some(_) => Ok(Step::NeedsReview(Review::AdminInactive(email))),
        None => Ok(Step::NeedsReview(Review::AdminUnknown(email))),
    }
}

/// The result of one verification poll.
pub(super) enum Verified {
    /// The CRM shows the requested state (or this is a dry run).
    Done,
    /// Not yet: the job rests in this outcome (the next poll, or review once the
    /// deadline has passed).
    Waiting(Outcome),
}

/// The change a (final) policy action asks for.
pub(super) fn change_for(action: Action) -> SeatChange {
    match action {
        Action::Delete => SeatChange::Delete,
        _ => SeatChange::Deactivate,
    }
}

/// Checks whether the CRM shows the requested state yet; called on every run
/// after [`cp::SEAT_REQUESTED`] is recorded. While waiting, the next poll is
/// `verify_interval` from now, never later than the deadline
/// (`seat_requested_at` + `verify_deadline`), after which the job needs review.
pub(super) async fn verify(
    ctx: &mut Ctx<'_>,
    change: SeatChange,
    user_id: &CrmId,
) -> Result<Verified, JobError> {
    if ctx.settings.dry_run {
        ctx.audit("seat.verify", json!({ "result": "skipped (dry run)" }))
            .await?;
        return Ok(Verified::Done);
    }
    let user = ctx.crm.get_user(user_id).await?;
    let reached = match (change, &user) {
        (SeatChange::Reactivate, None) => false,
        (SeatChange::Reactivate, Some(u)) => u.is_active(),
        (_, None) => true,
        (SeatChange::Delete, Some(u)) => u.is_deleted(),
        (SeatChange::Deactivate, Some(u)) => !u.is_active(),
    };
    let shown = match &user {
        None => "gone".to_owned(),
        Some(u) if u.is_deleted() => "deleted".to_owned(),
        Some(u) => format!("{:?}", u.status).to_lowercase(),
    };
    if reached {
        ctx.audit(
            "seat.verified",
            json!({ "change": change.as_str(), "crm_shows": shown }),
        )
        .await?;
        return Ok(Verified::Done);
    }
    let now = ctx.now();
    // Recorded before the first poll; should it be unreadable, counting from now
    // errs on the side of waiting longer, not of giving up early.
    let requested: DateTime<Utc> = ctx.checkpoint(cp::SEAT_REQUESTED).unwrap_or(now);
    let deadline = requested
        + chrono::Duration::from_std(ctx.settings.verify_deadline)
            .unwrap_or(chrono::Duration::hours(72));
    if now >= deadline {
        return Ok(Verified::Waiting(
            Review::VerifyDeadline { shown, deadline }.into(),
        ));
    }
    let next = now
        + chrono::Duration::from_std(ctx.settings.verify_interval)
            .unwrap_or(chrono::Duration::minutes(5));
    let vendor = ctx.crm.capabilities().name;
    let reason = match executor_for(ctx, change) {
        SeatExecutor::Api => format!(
            "waiting for {vendor} to show the {} made through its API (CRM shows {shown})",
            change.as_str()
        ),
        SeatExecutor::Manual => format!(
            "waiting for an admin to {} the user in {vendor} (CRM shows {shown})",
            change.as_str()
        ),
    };
    Ok(Verified::Waiting(Outcome::Scheduled {
        run_at: next.min(deadline),
        reason,
    }))
}
