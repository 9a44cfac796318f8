//! The `manual` seat executor. Sell's users API is read-only, so after the records
//! are moved offboard asks a person: it creates ONE task for the configured admin
//! saying exactly what to do in Settings › Manage › Users, then polls the user
//! until the CRM shows the result (or a deadline passes → `needs_review`).
//!
//! At most one task per job, even across a crash between "task created" and "we
//! recorded it": a pending marker is checkpointed before the POST, and a run that
//! finds the marker without a task id looks the task up by that marker first.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{
    context::{Ctx, JobError},
    offboard::active_reportees,
    reassign::Target,
};
use crate::{
    crm::{CrmError, CrmUser, NewTask, Resource, UserRole},
    policy::{Action, Decision},
    store::Outcome,
};

const CP_ADMIN: &str = "admin_user_id";
const CP_TASK_PENDING: &str = "admin_task_pending";
const CP_TASK: &str = "admin_task_id";
/// When the seat change was requested (verification deadline counts from it).
pub(super) const CP_SEAT_REQUESTED: &str = "seat_requested_at";

/// The marker that identifies this job's task in the CRM.
pub(super) fn marker(job_id: &str) -> String {
    format!("[offboard job {job_id}]")
}

/// Runs the last safety checks and asks the admin to act. `Err(reason)` → review.
pub(super) async fn request(
    ctx: &mut Ctx<'_>,
    action: Action,
    user: &CrmUser,
    decision: &Decision,
    target: &Target,
) -> Result<Result<(), String>, JobError> {
    if action == Action::Delete {
        if let Err(reason) = delete_preconditions(ctx, user).await? {
            ctx.audit(
                "guard.runtime",
                json!({ "guard": "delete_preconditions", "changed": true, "detail": reason }),
            )
            .await?;
            return Ok(Err(reason));
        }
        ctx.audit("guard.runtime", json!({ "guard": "delete_preconditions", "changed": false, "detail": "no open records, no active reportees, not an admin" })).await?;
    }
    let content = task_content(ctx, action, user, decision, target);
    if let Err(reason) = ensure_task(ctx, "seat", content).await? {
        return Ok(Err(reason));
    }
    for who in &decision.notify {
        ctx.audit("notify", json!({ "to": who, "what": format!("{} requested for CRM user {}", action.as_str(), user.id), "delivery": "recorded in the audit trail" })).await?;
    }
    Ok(Ok(()))
}

/// A deletion is permanent: re-check, fresh from the CRM, what DESIGN.md §7 demands.
async fn delete_preconditions(
    ctx: &Ctx<'_>,
    user: &CrmUser,
) -> Result<Result<(), String>, JobError> {
    if user.role == UserRole::Admin {
        return Ok(Err("refusing to delete a CRM admin".into()));
    }
    if ctx.job.event.legal_hold {
        return Ok(Err("refusing to delete under legal hold".into()));
    }
    if ctx.settings.dry_run {
        return Ok(Ok(()));
    }
    let mut open = 0;
    for resource in [Resource::Leads, Resource::Contacts, Resource::Deals] {
        open += ctx
            .crm
            .list_owned(resource, user.id)
            .await?
            .iter()
            .filter(|r| r.open)
            .count();
    }
    if open > 0 {
        return Ok(Err(format!(
            "{open} open leads/contacts/deals are still owned by the user; deletion needs zero"
        )));
    }
    let reportees = active_reportees(ctx, user.id).await?;
    if reportees > 0 {
        return Ok(Err(format!(
            "the user manages {reportees} active reportees; reassign them before deleting"
        )));
    }
    Ok(Ok(()))
}

fn task_content(
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
    format!(
        "offboard: please {what} the Sell user {name} <{email}> (id {id}) in Settings › Manage › Users. \
         Why: {why}; policy rule {rule:?} decided {action}. Their open records were reassigned to {to}. \
         {consequence} offboard re-checks the user and closes this job once Sell shows the change. {marker}",
        name = user.name,
        email = user.email,
        id = user.id,
        rule = decision.rule,
        action = action.as_str(),
        to = target.email,
        marker = marker(&ctx.job.id),
    )
}

/// Creates the admin task once per job (idempotent across crashes).
pub(super) async fn ensure_task(
    ctx: &mut Ctx<'_>,
    purpose: &str,
    content: String,
) -> Result<Result<(), String>, JobError> {
    if ctx.checkpoint::<i64>(CP_TASK).is_some() {
        return Ok(Ok(()));
    }
    let admin_id = match resolve_admin(ctx).await? {
        Ok(id) => id,
        Err(reason) => return Ok(Err(reason)),
    };
    let marker = marker(&ctx.job.id);
    if ctx.checkpoints.contains_key(CP_TASK_PENDING) {
        // A previous run may have created it and died before recording the id.
        if let Some(id) = ctx.crm.find_task(admin_id, &marker).await? {
            ctx.audit(
                "seat.task_found",
                json!({ "task_id": id, "purpose": purpose }),
            )
            .await?;
            ctx.set_checkpoint(CP_TASK, &id).await?;
            return Ok(Ok(()));
        }
    }
    ctx.set_checkpoint(
        CP_TASK_PENDING,
        &json!({ "marker": marker, "at": Utc::now() }),
    )
    .await?;
    let due = (Utc::now() + chrono::Duration::hours(24)).to_rfc3339();
    let task = NewTask {
        content: content.clone(),
        owner_id: admin_id,
        due_date: Some(due),
    };
    let id = match ctx.crm.create_task(&task).await {
        Ok(id) => id,
        // The POST may have landed; the next run looks it up by marker before creating.
        Err(e @ CrmError::Transient(_)) => return Err(JobError::Crm(e)),
        Err(e) => return Err(JobError::Crm(e)),
    };
    ctx.set_checkpoint(CP_TASK, &id).await?;
    ctx.audit(
        "seat.task_created",
        json!({ "task_id": id, "admin_user_id": admin_id, "purpose": purpose, "content": content }),
    )
    .await?;
    Ok(Ok(()))
}

async fn resolve_admin(ctx: &mut Ctx<'_>) -> Result<Result<i64, String>, JobError> {
    if let Some(id) = ctx.checkpoint::<i64>(CP_ADMIN) {
        return Ok(Ok(id));
    }
    let Some(email) = ctx.settings.admin_email.clone() else {
        return Ok(Err(
            "crm.admin_email is not set: nobody can be asked to change the seat".into(),
        ));
    };
    match ctx.crm.find_user_by_email(email.as_str()).await? {
        Some(u) if u.is_active() => {
            ctx.set_checkpoint(CP_ADMIN, &u.id).await?;
            Ok(Ok(u.id))
        }
        Some(_) => Ok(Err(format!(
            "crm.admin_email {email} is not an active CRM user"
        ))),
        None => Ok(Err(format!("crm.admin_email {email} is not a CRM user"))),
    }
}

/// The result of one verification poll.
pub(super) enum Verified {
    Done,
    Waiting(Outcome),
}

/// A change only an admin can make in Sell's UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SeatChange {
    Deactivate,
    Delete,
    Reactivate,
}

impl SeatChange {
    pub(super) fn from_action(action: Action) -> Self {
        match action {
            Action::Delete => Self::Delete,
            _ => Self::Deactivate,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Deactivate => "deactivate",
            Self::Delete => "delete",
            Self::Reactivate => "reactivate",
        }
    }
}

/// Checks whether the CRM shows the requested state yet.
pub(super) async fn verify(
    ctx: &mut Ctx<'_>,
    change: SeatChange,
    user_id: i64,
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
    let requested: DateTime<Utc> = ctx.checkpoint(CP_SEAT_REQUESTED).unwrap_or_else(Utc::now);
    let deadline = requested
        + chrono::Duration::from_std(ctx.settings.verify_deadline)
            .unwrap_or(chrono::Duration::hours(72));
    if Utc::now() >= deadline {
        return Ok(Verified::Waiting(Outcome::NeedsReview {
            reason: format!(
                "the CRM still shows the user as {shown} after the verification deadline ({deadline}); has the admin acted?"
            ),
        }));
    }
    let next = Utc::now()
        + chrono::Duration::from_std(ctx.settings.verify_interval)
            .unwrap_or(chrono::Duration::minutes(5));
    Ok(Verified::Waiting(Outcome::Scheduled {
        run_at: next.min(deadline),
        reason: format!(
            "waiting for an admin to {} the user in Sell (CRM shows {shown})",
            change.as_str()
        ),
    }))
}
