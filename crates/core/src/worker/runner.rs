//! [`Worker`]: the claim loop, and one run of one claimed job (heartbeat, CRM call
//! audit, the job's steps, the fenced finish, the backoff of a failed attempt).
//! It composes the steps; no step imports it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    context::{Ctx, JobError},
    current_policy::CurrentPolicy,
    dry_run,
    gate::LeaseGate,
    offboard, reverse,
    settings::WorkerSettings,
};
use crate::{
    crm::{Crm, CrmError, calls},
    domain::{JobKind, SharedClock, SystemClock, lanes},
    notify::{Cause, Dispatcher, Notifier},
    store::{Claimed, Outcome, SharedStore, StoreError},
};

/// The number a job's budget tickets carry: any stable one per job will do.
fn lane_key(job_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    job_id.hash(&mut hasher);
    hasher.finish()
}

/// How soon a failed renewal or audit write is tried again.
const RENEW_RETRY: Duration = Duration::from_secs(1);

/// Runs jobs. Clones share everything (store, CRM client, policy, clock, waker),
/// so one clone runs the loop while another hands out its [`waker`](Self::waker).
#[derive(Clone)]
pub struct Worker {
    store: SharedStore,
    crm: Arc<dyn Crm>,
    policy: Arc<CurrentPolicy>,
    settings: Arc<WorkerSettings>,
    clock: SharedClock,
    wake: Arc<Notify>,
    notifier: Arc<Notifier>,
}

impl Worker {
    /// A worker over the given store and CRM, on the system clock (see
    /// [`with_clock`](Self::with_clock)). With `settings.dry_run` the CRM is wrapped
    /// so that no write reaches it.
    pub fn new(
        store: SharedStore,
        crm: Arc<dyn Crm>,
        policy: Arc<CurrentPolicy>,
        settings: WorkerSettings,
    ) -> Self {
        let crm: Arc<dyn Crm> = if settings.dry_run {
            Arc::new(dry_run::DryRunCrm::new(crm))
        } else {
            crm
        };
        Self {
            store,
            crm,
            policy,
            settings: Arc::new(settings),
            clock: SystemClock::shared(),
            wake: Arc::new(Notify::new()),
            notifier: Arc::new(Notifier::disabled()),
        }
    }

    /// The same worker telling people by the channels `notifier` has (DESIGN.md
    /// §13): its steps write notifications with the step, and it delivers them.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = Arc::new(notifier);
        self
    }

    /// The delivery side of the outbox, on this worker's store, clock and id.
    pub fn dispatcher(&self) -> Dispatcher {
        Dispatcher::new(
            self.store.clone(),
            self.notifier.clone(),
            self.clock.clone(),
            self.settings.id.clone(),
        )
    }

    /// Tries every notification that is due now once (a failed one waits for its
    /// backoff); how many were tried. Tests and the demo drive delivery with this.
    pub async fn deliver_notifications(&self) -> usize {
        self.dispatcher().drain().await
    }

    /// The same worker reading "now" from `clock`: effective dates, verification
    /// polls and deadlines, the caps' hour, backoff. Give it the store's clock, or
    /// the two disagree about when a scheduled job is due.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// A handle that wakes an idle worker at once (e.g. after an ingest).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Claims and runs jobs until `shutdown` is cancelled, then lets running jobs
    /// reach a checkpoint (bounded by the lease) and releases their leases.
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.settings.concurrency));
        let jobs_token = CancellationToken::new();
        let mut running = tokio::task::JoinSet::new();
        // Delivery runs beside the jobs, never inside one: a notification that
        // cannot be sent holds up nothing.
        let delivery = self.notifier.settings.enabled().then(|| {
            tokio::spawn(
                self.dispatcher()
                    .run(shutdown.clone(), self.settings.poll_interval),
            )
        });
        tracing::info!(worker = %self.settings.id, "worker started");
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if let Err(e) = self.store.requeue_expired().await {
                tracing::warn!(error = %e, "could not requeue expired leases");
            }
            let free = slots.available_permits();
            let mut claimed_any = false;
            if free > 0 {
                let claimed_at = Instant::now();
                match self
                    .store
                    .claim(&self.settings.id, free, self.settings.lease)
                    .await
                {
                    Ok(claimed) => {
                        for c in claimed {
                            claimed_any = true;
                            let Ok(permit) = slots.clone().acquire_owned().await else {
                                break;
                            };
                            let me = self.clone();
                            let token = jobs_token.child_token();
                            running.spawn(async move {
                                me.run_claimed(c, token, claimed_at).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claim failed"),
                }
            }
            while running.try_join_next().is_some() {}
            if claimed_any && slots.available_permits() > 0 {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {},
                // PostgreSQL returns at once on another replica's NOTIFY; SQLite sleeps.
                _ = self.store.wait_for_work(self.settings.poll_interval) => {},
                Some(_) = running.join_next(), if !running.is_empty() => {},
            }
        }
        tracing::info!(worker = %self.settings.id, running = running.len(), "worker stopping: finishing in-flight work");
        jobs_token.cancel();
        let drain = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(self.settings.lease, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                "in-flight jobs did not stop within the lease; their leases will expire"
            );
        }
        if let Some(delivery) = delivery
            && tokio::time::timeout(self.settings.lease, delivery)
                .await
                .is_err()
        {
            tracing::warn!(
                "notification delivery did not stop within the lease; its claims will lapse"
            );
        }
    }

    /// Runs every job that is runnable now, one claim round at a time, until none is
    /// left, then tries every notification that is due (tests and the demo drive
    /// the worker deterministically with this). Returns the number of job runs.
    pub async fn run_until_idle(&self) -> usize {
        let ran = self.run_jobs_until_idle().await;
        if self.notifier.settings.enabled() {
            self.deliver_notifications().await;
        }
        ran
    }

    async fn run_jobs_until_idle(&self) -> usize {
        let mut ran = 0;
        loop {
            if let Err(e) = self.store.requeue_expired().await {
                // Claiming still runs what is due; expired leases wait for the next round.
                tracing::warn!(error = %e, "could not requeue expired leases");
            }
            let claimed_at = Instant::now();
            let claimed = match self
                .store
                .claim(
                    &self.settings.id,
                    self.settings.concurrency,
                    self.settings.lease,
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claim failed");
                    return ran;
                }
            };
            if claimed.is_empty() {
                return ran;
            }
            ran += claimed.len();
            let mut set = tokio::task::JoinSet::new();
            for c in claimed {
                let me = self.clone();
                set.spawn(async move {
                    me.run_claimed(c, CancellationToken::new(), claimed_at)
                        .await
                });
            }
            while set.join_next().await.is_some() {}
        }
    }

    /// One run of one claimed job: heartbeat, call audit, steps, fenced finish.
    async fn run_claimed(&self, claimed: Claimed, stop: CancellationToken, claimed_at: Instant) {
        let Claimed { job, lease } = claimed;
        let span = tracing::info_span!("job", job_id = %job.id, kind = job.kind.as_str(), attempt = lease.attempt, employee = %job.employee_email);
        async move {
            let lost = CancellationToken::new();
            let gate = LeaseGate::new(
                self.store.clone(),
                &lease,
                self.settings.lease,
                // The claim was sent before this instant: the lease runs from then at the latest.
                claimed_at,
                lost.clone(),
                stop.clone(),
            );
            let heartbeat = {
                let store = self.store.clone();
                let lease = lease.clone();
                let lost = lost.clone();
                let gate = gate.clone();
                let every = LeaseGate::renew_every(self.settings.lease);
                let lease_for = self.settings.lease;
                tokio::spawn(async move {
                    let mut wait = every;
                    loop {
                        tokio::time::sleep(wait).await;
                        let sent = Instant::now();
                        match store.heartbeat(&lease, lease_for).await {
                            Ok(()) => {
                                gate.renewed(sent);
                                wait = every;
                            }
                            Err(StoreError::LeaseLost(_)) => {
                                tracing::warn!("lease lost; stopping this run");
                                lost.cancel();
                                return;
                            }
                            Err(e) => {
                                // Try again soon: CRM writes wait for a renewal.
                                tracing::warn!(error = %e, "heartbeat failed");
                                wait = RENEW_RETRY.min(every);
                            }
                        }
                    }
                }.in_current_span())
            };
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<calls::CallRecord>();
            let audit_calls = {
                let store = self.store.clone();
                let job_id = job.id.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while rx.recv_many(&mut buf, 256).await > 0 {
                        let entries: Vec<(String, serde_json::Value)> = buf
                            .drain(..)
                            .map(|c| ("crm.call".to_owned(), serde_json::to_value(c).unwrap_or_default()))
                            .collect();
                        // A call that reached the CRM is recorded, however long the store
                        // is away: the run does not end before its calls are on record.
                        let mut warned = false;
                        while let Err(e) = store.audit(&job_id, &entries).await {
                            if !warned {
                                tracing::warn!(error = %e, "could not store CRM call audit; retrying until the store answers");
                                warned = true;
                            }
                            tokio::time::sleep(RENEW_RETRY).await;
                        }
                    }
                }.in_current_span())
            };
            let checkpoints = match self.store.get_job(&job.id).await {
                Ok(Some(detail)) => detail.checkpoints,
                Ok(None) => Default::default(),
                Err(e) => {
                    tracing::warn!(error = %e, "could not load checkpoints; retrying the job later");
                    heartbeat.abort();
                    let outcome = retry_outcome(job.failures, e.to_string(), self.clock.now());
                    if let Err(e) = self.store.finish(&lease, outcome).await {
                        tracing::error!(error = %e, "could not schedule the retry either; the lease will expire and the job will be retried");
                    }
                    return;
                }
            };
            let mut ctx = Ctx::new(
                self.store.as_ref(),
                self.crm.as_ref(),
                self.policy.get(),
                &self.settings,
                self.clock.as_ref(),
                &job,
                &lease,
                checkpoints,
                stop.clone(),
                lost.clone(),
                self.notifier.as_ref(),
            );
            // The job's CRM requests queue for the shared budget under its own
            // ticket, so leavers take turns (lanes::).
            let result = calls::record_gated_calls(tx, gate, lanes::for_job(lane_key(&job.id), async {
                match job.kind {
                    JobKind::Offboard | JobKind::DeleteAfterRetention => offboard::run(&mut ctx).await,
                    JobKind::Reverse => reverse::run(&mut ctx).await,
                }
            }))
            .await;
            // The sender went with the job's future, so this ends once the calls are stored.
            if let Err(e) = audit_calls.await {
                tracing::warn!(error = %e, "the CRM call audit task failed; some crm.call rows may be missing");
            }
            heartbeat.abort();
            let outcome = match result {
                Ok(outcome) => outcome,
                // However the steps reported it, a run whose lease went writes no result.
                Err(_) if lost.is_cancelled() => {
                    tracing::warn!("lease lost: leaving the job to its new holder");
                    return;
                }
                Err(JobError::Crm(CrmError::Interrupted(_))) if stop.is_cancelled() => Outcome::Released,
                Err(JobError::LeaseLost) => {
                    tracing::warn!("lease lost: leaving the job to its new holder");
                    return;
                }
                Err(JobError::Stopping) => Outcome::Released,
                Err(JobError::Crm(e)) if e.is_transient() => retry_outcome(job.failures, e.to_string(), self.clock.now()),
                Err(JobError::Crm(e)) => Outcome::Failed { error: e.to_string() },
                Err(JobError::Store(e)) => retry_outcome(job.failures, format!("store: {e}"), self.clock.now()),
            };
            let label = outcome_label(&outcome);
            let detail = serde_json::json!({ "outcome": label, "detail": outcome_detail(&outcome) });
            if let Err(e) = self.store.audit(&job.id, &[("run.ended".to_owned(), detail)]).await {
                tracing::warn!(error = %e, "could not audit run end");
            }
            metrics::counter!(crate::metrics::JOB_TRANSITIONS_TOTAL, "to" => label).increment(1);
            // The run's end is a cause too: written with the finish, in its transaction.
            let mut notices = std::mem::take(&mut ctx.finish_notices);
            match &outcome {
                Outcome::NeedsReview { reason } => {
                    notices.extend(ctx.notices(&Cause::NeedsReview { reason: reason.clone() }));
                }
                Outcome::Failed { error } => {
                    notices.extend(ctx.notices(&Cause::Failed { error: error.clone() }));
                }
                // Written only if this retry is the last one (the finish decides).
                Outcome::Retry { error, .. } => {
                    let error = format!("gave up after {} attempts: {error}", job.failures.saturating_add(1));
                    notices.extend(ctx.notices(&Cause::Failed { error }));
                }
                _ => {}
            }
            match self.store.finish_with(&lease, outcome, &notices).await {
                Ok(()) => tracing::info!(outcome = label, "run ended"),
                Err(StoreError::LeaseLost(_)) => tracing::warn!("finished after losing the lease; result discarded"),
                Err(e) => tracing::error!(error = %e, "could not record the run's outcome; the lease will expire and the job will be retried"),
            }
        }
        .instrument(span)
        .await
    }
}

/// Backoff for a failed attempt, from `now`: 30 s doubling per consecutive
/// failure, capped at one hour, plus up to a quarter more of jitter so many failed
/// jobs don't return in lockstep.
fn retry_outcome(failures: u32, error: String, now: DateTime<Utc>) -> Outcome {
    let base = 30u64.saturating_mul(1u64 << failures.min(7)).min(3600);
    let jitter = rand::random_range(0..=base / 4);
    Outcome::Retry {
        run_at: now + chrono::Duration::seconds((base + jitter) as i64),
        error,
    }
}

fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Scheduled { .. } => "scheduled",
        Outcome::Retry { .. } => "retry",
        Outcome::NeedsReview { .. } => "needs_review",
        Outcome::Failed { .. } => "failed",
        Outcome::Cancelled { .. } => "cancelled",
        Outcome::Released => "released",
    }
}

fn outcome_detail(o: &Outcome) -> serde_json::Value {
    match o {
        Outcome::Scheduled { run_at, reason } => {
            serde_json::json!({ "run_at": run_at, "reason": reason })
        }
        Outcome::Retry { run_at, error } => serde_json::json!({ "run_at": run_at, "error": error }),
        Outcome::NeedsReview { reason } | Outcome::Cancelled { reason } => {
            serde_json::json!({ "reason": reason })
        }
        Outcome::Failed { error } => serde_json::json!({ "error": error }),
        Outcome::Succeeded | Outcome::Released => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_counts_from_the_given_now_doubles_and_is_capped() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for (failures, base) in [(0, 30), (1, 60), (3, 240), (7, 3600), (20, 3600)] {
            let Outcome::Retry { run_at, error } = retry_outcome(failures, "x".into(), now) else {
                panic!("not a retry");
            };
            assert_eq!(error, "x");
            let wait = (run_at - now).num_seconds();
            assert!(
                (base..=base + base / 4).contains(&wait),
                "failures {failures}: waited {wait}s, expected {base}s plus up to a quarter"
            );
        }
    }
}
