//! The [`JobStore`] contract, implemented once for every backend that provides its
//! [`Statements`]. A backend's statements are SQL and bindings only, each one
//! transaction: they answer facts ("the fence no longer holds", "these rows") and
//! this module turns them into the trait's answers (`LeaseLost`, leases, queue lag,
//! operator results), so both stores behave the same by construction.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offboard_domain::{
    SharedClock,
    budget::{BudgetSettings, RateBudget},
};
use serde_json::Value;

use super::{
    contract::{
        Channel, Claimed, ClaimedNotification, DeliveryLease, DeliveryRetry, IngestOutcome, Job,
        JobDetail, JobFilter, JobStore, Lease, NewEvent, NewNotification, Notification,
        NotificationState, Outcome, Reservation, ScimUser, ScimUserPage, ScimUserQuery, ScimWrite,
        ScimWriteOutcome, SeatWait, StoreError, Via,
    },
    rows::{self, duration_ms, ms},
    rules::{self, Operation},
};
use crate::domain::{JobKind, JobState};

/// A store call's result.
pub(crate) type StoreResult<T> = Result<T, StoreError>;

/// One claim: up to `n` due jobs for `owner`, leased until `until` (Unix ms), at `now`.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    /// The worker claiming.
    pub owner: &'a str,
    /// At most this many jobs.
    pub n: usize,
    /// When the leases lapse unless heartbeated (Unix ms).
    pub until: i64,
    /// Jobs due at or before this instant are runnable (Unix ms).
    pub now: i64,
}

/// A seat-action reservation, as [`JobStore::reserve_seat_action`] describes it.
#[derive(Debug, Clone, Copy)]
pub struct SeatRequest<'a> {
    /// The fence.
    pub lease: &'a Lease,
    /// `deactivate` or `delete`.
    pub action: &'a str,
    /// The caps' window starts here (Unix ms).
    pub since: i64,
    /// The cap on reservations of `action`.
    pub max_same_action: Option<u32>,
    /// The cap on every action together.
    pub max_all: Option<u32>,
}

/// What a job-cancelling sweep for one employee needs.
#[derive(Debug, Clone, Copy)]
pub struct Sweep<'a> {
    /// The employee.
    pub email: &'a str,
    /// The job doing the sweep, which stays.
    pub except: &'a str,
    /// Stored as `last_error` and in the audit trail.
    pub reason: &'a str,
}

/// One backend's statements. "Now" is always [`Statements::now`], read from the
/// store's clock. A `false`/`None` answer from a fenced statement means the lease no
/// longer holds (nothing was written).
#[async_trait]
pub trait Statements: Send + Sync + 'static {
    /// Where "now" comes from.
    fn clock(&self) -> &SharedClock;
    /// "Now" as stored (Unix ms).
    fn now(&self) -> i64 {
        ms(self.clock().now())
    }
    /// The migrations this build knows.
    fn migrator(&self) -> &'static sqlx::migrate::Migrator;
    /// Applies pending migrations.
    async fn run_migrations(&self) -> StoreResult<()>;
    /// Versions of the migrations applied successfully.
    async fn applied_migrations(&self) -> StoreResult<Vec<i64>>;
    /// Stores one request's events, atomically (a conflict stores none of them).
    async fn insert_events(&self, events: Vec<NewEvent>) -> StoreResult<Vec<IngestOutcome>>;
    /// Leases due jobs, one per employee with nothing running, oldest due first.
    async fn claim_due(&self, round: Round<'_>) -> StoreResult<Vec<Job>>;
    /// Moves the lease's end to `until` (Unix ms).
    async fn extend_lease(&self, lease: &Lease, until: i64) -> StoreResult<bool>;
    /// Ends the run as `outcome` decides (see [`rules::transition`]), writing the
    /// notices [`rules::notices_for`] the new state keeps, in one transaction.
    async fn end_run(
        &self,
        lease: &Lease,
        outcome: Outcome,
        notices: &[NewNotification],
    ) -> StoreResult<bool>;
    /// Requeues (and audits) running jobs whose lease lapsed; how many.
    async fn requeue_lapsed(&self) -> StoreResult<u64>;
    /// Saves the plan and final action, and `notices` with them.
    async fn write_plan(
        &self,
        lease: &Lease,
        action: &str,
        plan: &Value,
        notices: &[NewNotification],
    ) -> StoreResult<bool>;
    /// Saves one checkpoint, and `notices` with it.
    async fn write_checkpoint(
        &self,
        lease: &Lease,
        key: &str,
        v: &Value,
        notices: &[NewNotification],
    ) -> StoreResult<bool>;
    /// Leases up to `n` due notifications to `owner` until `until`, counting the
    /// attempt, oldest due first (Unix ms; `now` decides what is due).
    async fn claim_due_notifications(
        &self,
        owner: &str,
        n: usize,
        until: i64,
        now: i64,
    ) -> StoreResult<Vec<Notification>>;
    /// Marks the leased notification delivered and audits it; `false` when the
    /// lease no longer holds.
    async fn mark_delivered(&self, lease: &DeliveryLease) -> StoreResult<bool>;
    /// In one transaction: reads under the lease what [`rules::after_failed_delivery`]
    /// needs, writes what it decides with `error`, audits it; `None` when the lease
    /// no longer holds.
    async fn mark_failed(
        &self,
        lease: &DeliveryLease,
        error: &str,
        retry: &DeliveryRetry,
    ) -> StoreResult<Option<NotificationState>>;
    /// Notifications pending or sending, per channel.
    async fn count_notifications_pending(&self) -> StoreResult<BTreeMap<Channel, u64>>;
    /// Appends audit entries in order, all or none.
    async fn append_audit(&self, job_id: &str, entries: &[(String, Value)]) -> StoreResult<()>;
    /// The follow-up job of `kind` (created if missing, due `at`, Unix ms);
    /// `LeaseLost` when the fence no longer holds.
    async fn follow_up(&self, lease: &Lease, kind: JobKind, at: i64) -> StoreResult<String>;
    /// Cancels the employee's other active, not-running jobs; their ids, any order.
    async fn cancel_others(&self, sweep: Sweep<'_>) -> StoreResult<Vec<String>>;
    /// The employee's jobs in `states`, newest first.
    async fn select_for(&self, email: &str, states: &[JobState]) -> StoreResult<Vec<Job>>;
    /// Reserves against the caps, serialised with every other reservation.
    async fn reserve(&self, req: SeatRequest<'_>) -> StoreResult<Option<Reservation>>;
    /// Jobs matching `filter`, newest first.
    async fn select_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>>;
    /// One job with its checkpoints and audit trail, from one snapshot.
    async fn select_detail(&self, id: &str) -> StoreResult<Option<JobDetail>>;
    /// Applies an operator action the job's state allows (see [`Operation::check`])
    /// and audits it with `via` ([`Operation::audit_detail`]), in one transaction.
    async fn operate(&self, id: &str, op: Operation<'_>, via: Via) -> StoreResult<Job>;
    /// Jobs per state.
    async fn count_states(&self) -> StoreResult<BTreeMap<JobState, u64>>;
    /// `run_at` of the oldest due job (Unix ms).
    async fn oldest_due(&self, now: i64) -> StoreResult<Option<i64>>;
    /// Requested, unverified seat changes per action.
    async fn count_seats_pending(&self) -> StoreResult<BTreeMap<String, u64>>;
    /// Those seat changes' jobs with their request time, oldest job first.
    async fn select_seat_waits(&self, limit: u32) -> StoreResult<Vec<SeatWait>>;
    /// Folds job-count deltas ([`JobStore::compact_job_counts`]); nothing to fold
    /// by default.
    async fn compact_counts(&self) -> StoreResult<()> {
        Ok(())
    }
    /// Deletes up to `limit` finished jobs last written before `before` (Unix ms),
    /// as [`JobStore::prune_finished`] says, in one transaction; how many.
    async fn prune_batch(&self, before: i64, limit: u32) -> StoreResult<u64>;
    /// One SCIM user by id.
    async fn scim_select(&self, id: &str) -> StoreResult<Option<ScimUser>>;
    /// The page and total count [`ScimUserQuery`] asks for.
    async fn scim_select_page(&self, query: &ScimUserQuery) -> StoreResult<ScimUserPage>;
    /// One transaction: read what [`rules::scim_refusal`] needs (locking the user's
    /// row), write the user and the event it carries if admitted, commit, and
    /// answer [`rules::scim_written`].
    async fn scim_apply(&self, write: &ScimWrite) -> StoreResult<ScimWriteOutcome>;
    /// See [`JobStore::wait_for_work`]: a store that hears no one polls.
    async fn wait(&self, max: Duration) -> bool {
        tokio::time::sleep(max).await;
        false
    }
    /// See [`JobStore::shared_crm_budget`]: a one-process store shares nothing.
    fn budget(&self, _key: &str, _settings: &BudgetSettings) -> Option<Arc<dyn RateBudget>> {
        None
    }
}

/// `Ok(())` when a fenced statement wrote, `LeaseLost` when the fence no longer held.
fn fenced(held: bool, lease: &Lease) -> StoreResult<()> {
    if held {
        Ok(())
    } else {
        Err(StoreError::LeaseLost(lease.job_id.clone()))
    }
}

#[async_trait]
impl<S: Statements> JobStore for S {
    async fn migrate(&self) -> StoreResult<()> {
        self.run_migrations().await
    }

    async fn ready(&self) -> StoreResult<()> {
        rules::check_migrated(self.migrator(), &self.applied_migrations().await?)
    }

    async fn ingest(&self, events: Vec<NewEvent>) -> StoreResult<Vec<IngestOutcome>> {
        self.insert_events(events).await
    }

    async fn claim(&self, owner: &str, n: usize, lease: Duration) -> StoreResult<Vec<Claimed>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let until = now.saturating_add(duration_ms(lease));
        let jobs = self
            .claim_due(Round {
                owner,
                n,
                until,
                now,
            })
            .await?;
        Ok(jobs.into_iter().map(|j| rules::claimed(j, owner)).collect())
    }

    async fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> StoreResult<()> {
        let until = self.now().saturating_add(duration_ms(lease_for));
        fenced(self.extend_lease(lease, until).await?, lease)
    }

    async fn finish_with(
        &self,
        lease: &Lease,
        outcome: Outcome,
        notices: &[NewNotification],
    ) -> StoreResult<()> {
        fenced(self.end_run(lease, outcome, notices).await?, lease)
    }

    async fn requeue_expired(&self) -> StoreResult<u64> {
        self.requeue_lapsed().await
    }

    async fn set_plan_with(
        &self,
        lease: &Lease,
        action: &str,
        plan: &Value,
        notices: &[NewNotification],
    ) -> StoreResult<()> {
        fenced(self.write_plan(lease, action, plan, notices).await?, lease)
    }

    async fn put_checkpoint_with(
        &self,
        lease: &Lease,
        key: &str,
        value: &Value,
        notices: &[NewNotification],
    ) -> StoreResult<()> {
        fenced(
            self.write_checkpoint(lease, key, value, notices).await?,
            lease,
        )
    }

    async fn audit(&self, job_id: &str, entries: &[(String, Value)]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.append_audit(job_id, entries).await
    }

    async fn enqueue_follow_up(
        &self,
        lease: &Lease,
        kind: JobKind,
        run_at: DateTime<Utc>,
    ) -> StoreResult<String> {
        self.follow_up(lease, kind, ms(run_at)).await
    }

    async fn cancel_pending_for(
        &self,
        email: &str,
        except: &str,
        reason: &str,
    ) -> StoreResult<Vec<String>> {
        let mut ids = self
            .cancel_others(Sweep {
                email,
                except,
                reason,
            })
            .await?;
        ids.sort();
        Ok(ids)
    }

    async fn jobs_for(&self, email: &str, states: &[JobState]) -> StoreResult<Vec<Job>> {
        self.select_for(email, states).await
    }

    async fn reserve_seat_action(
        &self,
        lease: &Lease,
        action: &str,
        since: DateTime<Utc>,
        max_same_action: Option<u32>,
        max_all: Option<u32>,
    ) -> StoreResult<Reservation> {
        let request = SeatRequest {
            lease,
            action,
            since: ms(since),
            max_same_action,
            max_all,
        };
        self.reserve(request)
            .await?
            .ok_or_else(|| StoreError::LeaseLost(lease.job_id.clone()))
    }

    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        self.select_jobs(filter).await
    }

    async fn get_job(&self, id: &str) -> StoreResult<Option<JobDetail>> {
        self.select_detail(id).await
    }

    async fn retry(&self, id: &str, via: Via) -> StoreResult<Job> {
        self.operate(id, Operation::Retry, via).await
    }

    async fn cancel(&self, id: &str, reason: &str, via: Via) -> StoreResult<Job> {
        self.operate(id, Operation::Cancel(reason), via).await
    }

    async fn approve(&self, id: &str, via: Via) -> StoreResult<Job> {
        self.operate(id, Operation::Approve, via).await
    }

    async fn count_by_state(&self) -> StoreResult<BTreeMap<JobState, u64>> {
        self.count_states().await
    }

    async fn oldest_runnable_age(&self) -> StoreResult<Option<Duration>> {
        let now = self.now();
        Ok(rows::age(now, self.oldest_due(now).await?))
    }

    async fn seats_pending(&self) -> StoreResult<BTreeMap<String, u64>> {
        self.count_seats_pending().await
    }

    async fn seat_waits(&self, limit: u32) -> StoreResult<Vec<SeatWait>> {
        self.select_seat_waits(limit).await
    }

    async fn compact_job_counts(&self) -> StoreResult<()> {
        self.compact_counts().await
    }

    async fn prune_finished(&self, keep: Duration, batch: u32) -> StoreResult<u64> {
        if batch == 0 {
            return Ok(0);
        }
        let before = self.now().saturating_sub(duration_ms(keep));
        self.prune_batch(before, batch).await
    }

    async fn scim_user(&self, id: &str) -> StoreResult<Option<ScimUser>> {
        self.scim_select(id).await
    }

    async fn scim_users(&self, query: &ScimUserQuery) -> StoreResult<ScimUserPage> {
        self.scim_select_page(query).await
    }

    async fn scim_write(&self, write: ScimWrite) -> StoreResult<ScimWriteOutcome> {
        self.scim_apply(&write).await
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        n: usize,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedNotification>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let until = now.saturating_add(duration_ms(lease));
        let claimed = self.claim_due_notifications(owner, n, until, now).await?;
        Ok(claimed
            .into_iter()
            .map(|n| rules::claimed_notification(n, owner))
            .collect())
    }

    async fn notification_delivered(&self, lease: &DeliveryLease) -> StoreResult<bool> {
        self.mark_delivered(lease).await
    }

    async fn notification_failed(
        &self,
        lease: &DeliveryLease,
        error: &str,
        retry: &DeliveryRetry,
    ) -> StoreResult<Option<NotificationState>> {
        self.mark_failed(lease, error, retry).await
    }

    async fn notifications_pending(&self) -> StoreResult<BTreeMap<Channel, u64>> {
        self.count_notifications_pending().await
    }

    async fn wait_for_work(&self, max: Duration) -> bool {
        self.wait(max).await
    }

    fn shared_crm_budget(
        &self,
        key: &str,
        settings: &BudgetSettings,
    ) -> Option<Arc<dyn RateBudget>> {
        self.budget(key, settings)
    }
}
