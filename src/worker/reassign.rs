//! Moving the leaver's records to an active owner.
//!
//! Sell filters lists by `owner_id`, so every move shrinks the list: walking pages
//! while moving would skip records. We collect the ids from a full listing, move
//! them (concurrently, within the client's rate budget), then list again until a
//! fresh listing has nothing left to move. After a crash the fresh listing is the
//! truth, so a record is PUT again only if its first PUT did not land.

use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::context::{Ctx, JobError};
use crate::{
    crm::{CrmError, CrmUser, Resource},
    domain::Email,
    policy::{Decision, ReassignTo},
};

/// Records per progress checkpoint.
const CHUNK: usize = 50;
/// Fresh listings per resource before giving up for this attempt.
const MAX_ROUNDS: usize = 5;

/// The active user who receives the records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Target {
    pub id: i64,
    pub email: String,
    /// How it was chosen: `manager_email`, `reports_to`, `fallback_owner`, `user`.
    pub via: String,
}

/// Progress of one resource, checkpointed as `reassign.<resource>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub moved: u64,
    pub skipped: u64,
    /// Records deliberately left (closed deals, completed tasks with `open_only`).
    pub left: u64,
    pub done: bool,
}

const CP_TARGET: &str = "target";

/// Resolves (once) who gets the records; `Err(reason)` means a person must decide.
pub(super) async fn resolve_target(
    ctx: &mut Ctx<'_>,
    decision: &Decision,
    user: &CrmUser,
) -> Result<Result<Target, String>, JobError> {
    if let Some(t) = ctx.checkpoint::<Target>(CP_TARGET) {
        return Ok(Ok(t));
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
            candidates.push((
                "reports_to",
                user.reports_to
                    .map(Candidate::Id)
                    .unwrap_or(Candidate::Missing),
            ));
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
            Candidate::Email(e) => ctx.crm.find_user_by_email(e.as_str()).await?,
            Candidate::Id(id) => ctx.crm.get_user(*id).await?,
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
            json!({ "via": via, "candidate": candidate.describe(), "crm_user_id": found.as_ref().map(|u| u.id), "result": verdict }),
        )
        .await?;
        if let (Some(u), "chosen") = (found, verdict) {
            let target = Target {
                id: u.id,
                email: u.email.clone(),
                via: via.to_owned(),
            };
            ctx.set_checkpoint(CP_TARGET, &target).await?;
            return Ok(Ok(target));
        }
    }
    Ok(Err("no active CRM user can receive the records (manager, reports_to and fallback_owner all unavailable)".into()))
}

enum Candidate {
    Missing,
    Email(Email),
    Id(i64),
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

/// Moves every record the decision covers; `Err(reason)` means a person must decide.
pub(super) async fn reassign_all(
    ctx: &mut Ctx<'_>,
    decision: &Decision,
    leaver: i64,
    target: &mut Target,
) -> Result<Result<(), String>, JobError> {
    for &resource in &decision.reassign {
        let key = format!("reassign.{resource}");
        let mut progress = ctx.checkpoint::<Progress>(&key).unwrap_or_default();
        if progress.done {
            continue;
        }
        let mut rounds = 0;
        loop {
            ctx.check_continue()?;
            rounds += 1;
            let records = ctx.crm.list_owned(resource, leaver).await?;
            let (todo, left): (Vec<_>, Vec<_>) = records
                .into_iter()
                .partition(|r| r.open || !decision.open_only);
            progress.left = left.len() as u64;
            if todo.is_empty() {
                break;
            }
            if rounds > MAX_ROUNDS {
                return Err(JobError::Crm(CrmError::Transient(format!(
                    "{} {resource} still owned after {MAX_ROUNDS} passes",
                    todo.len()
                ))));
            }
            let ids: Vec<i64> = todo.iter().map(|r| r.id).collect();
            for chunk in ids.chunks(CHUNK) {
                ctx.check_continue()?;
                let rejected = move_chunk(ctx, resource, chunk, target.id, &mut progress).await?;
                if !rejected.is_empty() {
                    if let Err(reason) = switch_to_fallback(ctx, decision, target, resource).await?
                    {
                        ctx.set_checkpoint(&key, &progress).await?;
                        return Ok(Err(reason));
                    }
                    let again =
                        move_chunk(ctx, resource, &rejected, target.id, &mut progress).await?;
                    if !again.is_empty() {
                        ctx.set_checkpoint(&key, &progress).await?;
                        return Ok(Err(format!(
                            "the CRM refused the fallback owner for {} {resource}",
                            again.len()
                        )));
                    }
                }
                ctx.set_checkpoint(&key, &progress).await?;
            }
            if ctx.settings.dry_run {
                break;
            }
        }
        progress.done = true;
        ctx.set_checkpoint(&key, &progress).await?;
        tracing::info!(
            resource = resource.as_str(),
            to = target.id,
            moved = progress.moved,
            skipped = progress.skipped,
            "records reassigned"
        );
        ctx.audit(
            "reassign.done",
            json!({ "resource": resource, "to": target.id, "moved": progress.moved, "skipped": progress.skipped, "left": progress.left, "dry_run": ctx.settings.dry_run }),
        )
        .await?;
    }
    Ok(Ok(()))
}

/// PUTs one chunk concurrently; returns the ids the CRM rejected (422).
async fn move_chunk(
    ctx: &Ctx<'_>,
    resource: Resource,
    ids: &[i64],
    owner: i64,
    progress: &mut Progress,
) -> Result<Vec<i64>, JobError> {
    let crm = ctx.crm;
    let lost = &ctx.lost;
    let results: Vec<(i64, Result<(), CrmError>)> = stream::iter(ids.iter().copied())
        .map(|id| async move {
            // A worker that lost its lease must not keep writing for the new holder.
            if lost.is_cancelled() {
                return (id, Err(CrmError::Transient("lease lost".into())));
            }
            (id, crm.reassign(resource, id, owner).await)
        })
        .buffer_unordered(ctx.settings.max_in_flight.max(1))
        .collect()
        .await;
    let mut rejected = Vec::new();
    let mut first_error = None;
    for (id, result) in results {
        match result {
            Ok(()) => {
                progress.moved += 1;
                metrics::counter!("offboard_records_reassigned_total", "kind" => resource.as_str())
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
                rejected.push(id);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(JobError::Crm(e)),
        None => Ok(rejected),
    }
}

/// After a 422 for the chosen owner: use the fallback owner, if it is someone else and active.
async fn switch_to_fallback(
    ctx: &mut Ctx<'_>,
    decision: &Decision,
    target: &mut Target,
    resource: Resource,
) -> Result<Result<(), String>, JobError> {
    let Some(fallback) = decision.fallback_owner.as_ref() else {
        return Ok(Err(format!(
            "the CRM refused owner {} for {resource} and no fallback_owner is set",
            target.email
        )));
    };
    let found = ctx.crm.find_user_by_email(fallback.as_str()).await?;
    match found {
        Some(u) if u.is_active() && u.id != target.id => {
            ctx.audit("target.switched", json!({ "from": target.id, "to": u.id, "reason": format!("CRM refused owner for {resource}") })).await?;
            *target = Target {
                id: u.id,
                email: u.email,
                via: "fallback_owner".into(),
            };
            ctx.set_checkpoint(CP_TARGET, &*target).await?;
            Ok(Ok(()))
        }
        _ => Ok(Err(format!(
            "the CRM refused owner {} for {resource} and fallback owner {fallback} is not an active CRM user",
            target.email
        ))),
    }
}
