//! The queue's decisions, once for both backends: what a run's [`Outcome`] does to
//! a job, how a stored event decides dedupe, which states an operator action applies
//! to, how the hourly caps are checked, and when the schema is ready. Each backend
//! only reads the facts these functions need and writes back what they decide, so
//! "the same semantics" (DESIGN.md §8) is one piece of code, not two kept in step.

use serde_json::Value;

use super::{
    contract::{
        Claimed, ClaimedNotification, DeliveryLease, DeliveryRetry, IngestOutcome, Job, Lease,
        NewEvent, NewNotification, Notification, NotificationState, OperatorAction, Outcome,
        Reservation, ScimUser, ScimWrite, ScimWriteOutcome, StoreError, Via,
    },
    rows::{Columns, ScimFound, duration_ms, from_ms},
};
use crate::domain::JobState;

/// What [`Outcome`] does to a job: the new state, `run_at` (`None`: unchanged), the
/// consecutive-failure count and `last_error` (`None`: unchanged). The lease is
/// always cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transition {
    /// The job's state after the run.
    pub state: JobState,
    /// When it may run next, in Unix ms; `None` keeps the stored value.
    pub run_at: Option<i64>,
    /// Consecutive failed attempts after the run (a success resets them).
    pub failures: i64,
    /// Why it stopped, failed or waits; `None` keeps the stored message.
    pub last_error: Option<String>,
}

/// The transition for `outcome` of a job that had `failures` consecutive failures
/// out of `max_attempts`, at `now` (Unix ms). A retry that uses up the last attempt
/// fails the job, saying so.
pub(crate) fn transition(
    outcome: Outcome,
    failures: i64,
    max_attempts: i64,
    now: i64,
) -> Transition {
    let t = |state, run_at, failures, last_error| Transition {
        state,
        run_at,
        failures,
        last_error,
    };
    let at = super::rows::ms;
    match outcome {
        Outcome::Succeeded => t(JobState::Succeeded, None, 0, None),
        Outcome::Scheduled { run_at, .. } => t(JobState::Scheduled, Some(at(run_at)), 0, None),
        Outcome::Retry { run_at, error } => {
            let failures = failures + 1;
            if failures >= max_attempts {
                let error = format!("gave up after {failures} attempts: {error}");
                t(JobState::Failed, None, failures, Some(error))
            } else {
                t(JobState::Scheduled, Some(at(run_at)), failures, Some(error))
            }
        }
        Outcome::NeedsReview { reason } => t(JobState::NeedsReview, None, failures, Some(reason)),
        Outcome::Failed { error } => t(JobState::Failed, None, failures, Some(error)),
        Outcome::Cancelled { reason } => t(JobState::Cancelled, None, failures, Some(reason)),
        Outcome::Released => t(JobState::Queued, Some(now), failures, None),
    }
}

/// The notifications a run's end writes when it leaves the job in `state`: those
/// without a condition, and those whose `only_if` is that state.
pub(crate) fn notices_for(notices: &[NewNotification], state: JobState) -> Vec<NewNotification> {
    notices
        .iter()
        .filter(|n| n.only_if.is_none_or(|s| s == state))
        .cloned()
        .collect()
}

/// What a failed delivery attempt does to its notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AfterFailure {
    /// `Pending` (tried again at `next_at`) or `Dead` (given up on).
    pub state: NotificationState,
    /// The next attempt's time (Unix ms); for a dead one, unchanged.
    pub next_at: i64,
}

/// The decision after attempt number `attempts` of a notification created at
/// `created_at` failed at `now` (all Unix ms): a failure at or past the give-up
/// time is final; otherwise the next attempt waits `base · 2^(attempts-1)`, at
/// most `max`, plus `jitter` (0..=1) of a quarter more so many failed deliveries
/// don't return in lockstep, and never later than the give-up time, so the last
/// attempt happens at it.
pub(crate) fn after_failed_delivery(
    attempts: i64,
    created_at: i64,
    now: i64,
    retry: &DeliveryRetry,
    jitter: f64,
) -> AfterFailure {
    let give_up_at = created_at.saturating_add(duration_ms(retry.give_up_after));
    if now >= give_up_at {
        return AfterFailure {
            state: NotificationState::Dead,
            next_at: now,
        };
    }
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let base = duration_ms(retry.base).max(1);
    let wait = base
        .saturating_mul(1i64 << doublings)
        .min(duration_ms(retry.max).max(1));
    // A quarter more at most; `jitter` outside 0..=1 is clamped.
    let extra = (wait as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as i64;
    AfterFailure {
        state: NotificationState::Pending,
        next_at: now
            .saturating_add(wait)
            .saturating_add(extra)
            .min(give_up_at),
    }
}

/// A claimed notification with the lease its result is fenced by.
pub(crate) fn claimed_notification(n: Notification, owner: &str) -> ClaimedNotification {
    ClaimedNotification {
        lease: DeliveryLease {
            id: n.id.clone(),
            owner: owner.to_owned(),
            attempt: n.attempts,
        },
        notification: n,
    }
}

/// The audit detail of a notification's step: `notify.queued` when written,
/// `notify.delivered`, `notify.retry` or `notify.dead` after an attempt. Names the
/// id, event, channel and recipient (an address is redacted where output is).
pub(crate) fn notice_audit(
    id: &str,
    event: &str,
    channel: &str,
    target: &str,
    attempt: Option<i64>,
    error: Option<&str>,
    next_at: Option<i64>,
) -> Value {
    let mut v = serde_json::json!({ "id": id, "event": event, "channel": channel, "to": target });
    if let Some(a) = attempt {
        v["attempt"] = a.into();
    }
    if let Some(e) = error {
        v["error"] = e.into();
    }
    if let Some(at) = next_at.and_then(chrono::DateTime::from_timestamp_millis) {
        v["next_at"] = serde_json::json!(at);
    }
    v
}

/// What is stored already under an event's `(source, id)`: its body hash and the
/// first job it created (`None` only if the store lost a job: corruption).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored<'a> {
    /// SHA-256 (hex) of the stored body.
    pub body_sha256: &'a str,
    /// The event's own (not follow-up) job.
    pub job_id: Option<&'a str>,
}

/// Dedupe for one event: `None` when it is new (store it); otherwise the answer.
/// The same id with another body is a conflict, with the same body a duplicate of
/// the job it created.
pub(crate) fn seen_before(ev: &NewEvent, stored: Stored<'_>) -> Result<IngestOutcome, StoreError> {
    let event_id = ev.event.id.clone();
    if stored.body_sha256 != ev.body_sha256 {
        return Ok(IngestOutcome::Conflict { event_id });
    }
    match stored.job_id {
        Some(job_id) => Ok(IngestOutcome::Duplicate {
            event_id,
            job_id: job_id.to_owned(),
        }),
        None => Err(StoreError::Corrupt(format!(
            "event {event_id} is stored without a job"
        ))),
    }
}

/// [`seen_before`] for a row of the stored `body_sha256` and first `job_id`.
pub(crate) fn seen_in(ev: &NewEvent, row: &impl Columns) -> Result<IngestOutcome, StoreError> {
    let (body_sha256, job_id) = (row.text("body_sha256")?, row.opt_text("job_id")?);
    let job_id = job_id.as_deref();
    seen_before(
        ev,
        Stored {
            body_sha256: &body_sha256,
            job_id,
        },
    )
}

/// The event's canonical JSON, as stored in `events.payload`.
pub(crate) fn payload(ev: &NewEvent) -> Result<String, StoreError> {
    serde_json::to_string(&ev.event)
        .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", ev.event.id)))
}

/// A conflict anywhere in one request stores nothing of it.
pub(crate) fn has_conflict(out: &[IngestOutcome]) -> bool {
    out.iter()
        .any(|o| matches!(o, IngestOutcome::Conflict { .. }))
}

/// A claimed job with the lease its writes are fenced by.
pub(crate) fn claimed(job: Job, owner: &str) -> Claimed {
    Claimed {
        lease: Lease {
            job_id: job.id.clone(),
            owner: owner.to_owned(),
            attempt: job.attempt,
        },
        job,
    }
}

/// An operator's action on one job (API, CLI or console), with what only some
/// actions carry (cancel's reason). Which states it applies to is
/// [`OperatorAction::applies_to`]: one table for the store and the console.
#[derive(Debug, Clone, Copy)]
pub enum Operation<'a> {
    /// failed/needs_review/cancelled → queued now, failures reset.
    Retry,
    /// Anything not finished → cancelled, with the operator's reason.
    Cancel(&'a str),
    /// needs_review → queued now, past the guard or cap that stopped it.
    Approve,
}

impl<'a> Operation<'a> {
    /// The verb without its arguments.
    pub fn action(self) -> OperatorAction {
        match self {
            Self::Retry => OperatorAction::Retry,
            Self::Cancel(_) => OperatorAction::Cancel,
            Self::Approve => OperatorAction::Approve,
        }
    }

    /// The verb, as in errors and the audit kind `operator.<verb>`.
    pub fn name(self) -> &'static str {
        self.action().as_str()
    }

    /// The reason to store in `last_error` (only `cancel` has one).
    pub fn reason(self) -> Option<&'a str> {
        match self {
            Self::Cancel(reason) => Some(reason),
            Self::Retry | Self::Approve => None,
        }
    }

    /// The job's stored state (`None`: no such job) if the action applies to it.
    pub fn check(self, id: &str, stored: Option<String>) -> Result<JobState, StoreError> {
        let stored = stored.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        let state = stored
            .parse::<JobState>()
            .map_err(|e| StoreError::Corrupt(format!("job {id} state: {e}")))?;
        if self.action().allowed_in(state) {
            Ok(state)
        } else {
            Err(StoreError::WrongState {
                id: id.to_owned(),
                state,
                op: self.name(),
            })
        }
    }

    /// What the action writes, at `now` (Unix ms). The lease is always cleared: only
    /// `cancel` applies to a running job, and the others' states hold no lease.
    pub fn change(self, now: i64) -> OperatorChange {
        let (state, run_at, last_error) = match self {
            Self::Retry => (JobState::Queued, Some(now), Some(None)),
            Self::Cancel(reason) => (JobState::Cancelled, None, Some(Some(reason.to_owned()))),
            Self::Approve => (JobState::Queued, Some(now), None),
        };
        OperatorChange {
            state,
            run_at,
            reset_failures: matches!(self, Self::Retry),
            last_error,
            approve: matches!(self, Self::Approve),
        }
    }

    /// The audit kind, `operator.<verb>`.
    pub fn audit_kind(self) -> String {
        format!("operator.{}", self.name())
    }

    /// The audit detail: the state it left, where the action came from (`via`:
    /// `api`, `cli` or `console`) and the operator's reason, if any.
    pub fn audit_detail(self, from: JobState, via: Via) -> Value {
        match self.reason() {
            Some(reason) => {
                serde_json::json!({ "from": from.as_str(), "via": via.as_str(), "reason": reason })
            }
            None => serde_json::json!({ "from": from.as_str(), "via": via.as_str() }),
        }
    }
}

/// The columns an operator action sets (besides clearing the lease and `updated_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorChange {
    /// The new state.
    pub state: JobState,
    /// Runnable from (Unix ms); `None` keeps `run_at`.
    pub run_at: Option<i64>,
    /// Consecutive failures start again from zero.
    pub reset_failures: bool,
    /// `Some(text)` replaces `last_error` (`Some(None)` clears it); `None` keeps it.
    pub last_error: Option<Option<String>>,
    /// Sets `approved` (it is never unset).
    pub approve: bool,
}

impl OperatorChange {
    /// Whether `last_error` is rewritten, and with what.
    pub fn last_error(&self) -> (bool, Option<&str>) {
        match &self.last_error {
            Some(text) => (true, text.as_deref()),
            None => (false, None),
        }
    }
}

/// What the hourly caps say about a seat action.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SeatDecision {
    /// The job reserved before (a retried attempt): granted again, nothing new stored.
    AlreadyHeld,
    /// A cap is reached.
    Refused(Reservation),
    /// Store a reservation: it is granted.
    Reserve,
}

/// The caps' answer read from a backend's reservation-facts row (columns `mine`,
/// `same`, `all_actions`): the answer that needs no new row (held already, or over a
/// cap), or `None` when the backend must store the reservation before granting it.
pub(crate) fn settled_seat(
    facts: &impl Columns,
    max_same_action: Option<u32>,
    max_all: Option<u32>,
) -> Result<Option<Reservation>, StoreError> {
    let counts = (facts.int("same")?, facts.int("all_actions")?);
    Ok(
        match seat_decision(facts.flag("mine")?, counts, max_same_action, max_all) {
            SeatDecision::AlreadyHeld => Some(Reservation::Granted),
            SeatDecision::Refused(refused) => Some(refused),
            SeatDecision::Reserve => None,
        },
    )
}

/// The caps' answer for a job (`mine`: it holds a reservation already), given the
/// reservations in the window of its action (`same`) and of every action (`all`).
/// A `None` maximum does not apply; the per-action cap is checked first.
fn seat_decision(
    mine: bool,
    (same, all): (i64, i64),
    max_same_action: Option<u32>,
    max_all: Option<u32>,
) -> SeatDecision {
    if mine {
        return SeatDecision::AlreadyHeld;
    }
    let checks = [
        ("deletions", same, max_same_action),
        ("offboardings", all, max_all),
    ];
    for (cap, count, max) in checks {
        if let Some(max) = max
            && count >= i64::from(max)
        {
            return SeatDecision::Refused(Reservation::OverCap {
                cap,
                count: super::rows::count_u64(count),
                max,
            });
        }
    }
    SeatDecision::Reserve
}

/// Ready when every migration this build knows is applied (`applied`: versions).
pub(crate) fn check_migrated(
    migrator: &sqlx::migrate::Migrator,
    applied: &[i64],
) -> Result<(), StoreError> {
    match migrator.iter().find(|m| !applied.contains(&m.version)) {
        Some(m) => Err(StoreError::Corrupt(format!(
            "migration {} ({}) is pending",
            m.version, m.description
        ))),
        None => Ok(()),
    }
}

/// Whether `write` may go ahead given what is stored: `Some` is the answer that
/// writes nothing. A create needs a free id and a free `userName`; a change or
/// delete needs the user at the version the caller read, and a change a
/// `userName` no other user holds.
pub(crate) fn scim_refusal(write: &ScimWrite, found: &ScimFound) -> Option<ScimWriteOutcome> {
    match (write.expected_version, found.current) {
        (None, Some(_)) => return Some(ScimWriteOutcome::VersionMismatch),
        (Some(_), None) => return Some(ScimWriteOutcome::NotFound),
        (Some(expected), Some((version, _))) if i64::try_from(expected).ok() != Some(version) => {
            return Some(ScimWriteOutcome::VersionMismatch);
        }
        _ => {}
    }
    match (&write.values, &found.name_holder) {
        (Some(_), Some(holder)) if *holder != write.id => Some(ScimWriteOutcome::UserNameTaken),
        _ => None,
    }
}

/// The version a write admitted by [`scim_refusal`] stores.
pub(crate) fn scim_next_version(write: &ScimWrite) -> u64 {
    write.expected_version.map_or(1, |v| v.saturating_add(1))
}

/// The answer to an admitted write once its statements ran: the user as stored and
/// the event's outcome. An event id already stored with another body would be a
/// bug (ids carry the user and version), so it refuses the whole write.
pub(crate) fn scim_written(
    write: &ScimWrite,
    found: &ScimFound,
    event: Option<IngestOutcome>,
    now: i64,
) -> Result<ScimWriteOutcome, StoreError> {
    if let Some(IngestOutcome::Conflict { event_id }) = &event {
        return Err(StoreError::Corrupt(format!(
            "scim user {}: event {event_id} is already stored with another body",
            write.id
        )));
    }
    let what = format!("scim user {}", write.id);
    let user = match &write.values {
        None => None,
        Some(values) => Some(ScimUser {
            id: write.id.clone(),
            user_name: values.user_name.clone(),
            external_id: values.external_id.clone(),
            active: values.active,
            resource: values.resource.clone(),
            version: scim_next_version(write),
            created_at: from_ms(found.current.map_or(now, |(_, created)| created), &what)?,
            updated_at: from_ms(now, &what)?,
        }),
    };
    Ok(ScimWriteOutcome::Written { user, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_delivery_backs_off_doubling_then_gives_up_at_the_deadline() {
        let retry = DeliveryRetry {
            base: std::time::Duration::from_secs(30),
            max: std::time::Duration::from_secs(3600),
            give_up_after: std::time::Duration::from_secs(24 * 3600),
        };
        let t = |s: i64| s * 1000;
        let after = |attempts, now, jitter| after_failed_delivery(attempts, 0, now, &retry, jitter);
        assert_eq!(after(1, t(10), 0.0).next_at, t(40));
        assert_eq!(after(2, t(10), 0.0).next_at, t(70));
        assert_eq!(after(2, t(10), 1.0).next_at, t(10 + 60 + 15));
        assert_eq!(after(20, t(10), 0.0).next_at, t(10 + 3600), "capped at max");
        // Never scheduled past the give-up time, and a failure there is final.
        assert_eq!(after(20, t(24 * 3600 - 5), 0.0).next_at, t(24 * 3600));
        assert_eq!(
            after(20, t(24 * 3600 - 5), 0.0).state,
            NotificationState::Pending
        );
        assert_eq!(after(21, t(24 * 3600), 0.0).state, NotificationState::Dead);
    }

    #[test]
    fn an_operator_entry_says_where_it_came_from_and_why() {
        assert_eq!(
            Operation::Approve.audit_detail(JobState::NeedsReview, Via::Console),
            serde_json::json!({ "from": "needs_review", "via": "console" })
        );
        assert_eq!(
            Operation::Cancel("stop").audit_detail(JobState::Queued, Via::Cli),
            serde_json::json!({ "from": "queued", "via": "cli", "reason": "stop" })
        );
        // The check and the console's question are one table.
        for op in [Operation::Retry, Operation::Cancel("x"), Operation::Approve] {
            for state in JobState::ALL {
                let checked = op.check("j", Some(state.as_str().to_owned())).is_ok();
                assert_eq!(checked, op.action().allowed_in(state), "{op:?} {state}");
            }
        }
    }

    #[test]
    fn the_last_retry_gives_up_and_says_after_how_many() {
        let retry = || Outcome::Retry {
            run_at: chrono::Utc::now(),
            error: "503".into(),
        };
        let t = transition(retry(), 1, 3, 0);
        assert_eq!((t.state, t.failures), (JobState::Scheduled, 2));
        let t = transition(retry(), 2, 3, 0);
        assert_eq!(t.state, JobState::Failed);
        assert_eq!(t.run_at, None);
        assert_eq!(
            t.last_error.as_deref(),
            Some("gave up after 3 attempts: 503")
        );
        let t = transition(Outcome::Released, 2, 3, 42);
        assert_eq!(
            (t.state, t.run_at, t.failures),
            (JobState::Queued, Some(42), 2)
        );
    }
}
