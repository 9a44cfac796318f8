//! What one run of one job can touch: the store (fenced by its lease), the CRM,
//! the policy in force, the clock, and the job's checkpoints. Steps read
//! checkpoints to skip work already done and write one after each side effect that
//! matters.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{checkpoint::Key, settings::WorkerSettings};
use crate::{
    crm::{Crm, CrmError, CrmId, CrmUser},
    domain::{Clock, Email},
    notify::{Audience, Cause, Notifier},
    policy::Policy,
    store::{Job, JobStore, Lease, NewNotification, StoreError},
};

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Another worker holds the job now (or an operator cancelled it).
    #[error("lease lost")]
    LeaseLost,
    /// The process is shutting down; the job goes back to the queue.
    #[error("shutting down")]
    Stopping,
    /// A CRM call failed after the client's own retries.
    #[error(transparent)]
    Crm(#[from] CrmError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeaseLost(_) => Self::LeaseLost,
            other => Self::Store(other),
        }
    }
}

/// One run's view of its job. Built by `Worker::run_claimed` for one claim and
/// dropped when the run ends; nothing in it outlives the lease.
pub(crate) struct Ctx<'a> {
    pub store: &'a dyn JobStore,
    pub crm: &'a dyn Crm,
    pub policy: Arc<Policy>,
    pub settings: &'a WorkerSettings,
    /// The process's clock, the one the store reads too: a step's "now" and the
    /// store's `run_at` comparisons agree, and tests can move it.
    pub clock: &'a dyn Clock,
    pub job: &'a Job,
    pub lease: &'a Lease,
    /// As loaded at the start of the run, plus what this run has written since.
    /// Read and written only through [`Ctx::checkpoint`] and friends.
    checkpoints: BTreeMap<String, Value>,
    /// Cancelled on shutdown: stop at the next checkpoint.
    pub stop: CancellationToken,
    /// Cancelled when the heartbeat finds the lease gone.
    pub lost: CancellationToken,
    /// Listings made moments ago in this run (by the decision step), which the
    /// reassignment's first pass may use instead of listing again.
    pub fresh_listings: std::collections::HashMap<crate::crm::Resource, Vec<crate::crm::Record>>,
    /// Open records per resource in listings made after this run's last record
    /// write (the reassignment's last pass, which found nothing left to move):
    /// the seat step's fresh reads use them instead of listing again a moment
    /// later.
    pub listed_after_writes: HashMap<crate::crm::Resource, usize>,
    /// Users looked up while the decision step listed records, for the owner and
    /// admin lookups that follow it (see [`Ctx::find_user_by_email`]), by
    /// [`Lookup`] key.
    pub looked_ahead: HashMap<String, Option<CrmUser>>,
    /// Composes the notifications a step's cause makes (DESIGN.md §13).
    pub notifier: &'a Notifier,
    /// Who the decision says to tell, once decided in this run (else read from
    /// the stored plan).
    pub audience: Option<Audience>,
    /// Notifications the run's finish writes with its outcome (`seat.verified`).
    pub finish_notices: Vec<NewNotification>,
}

impl<'a> Ctx<'a> {
    /// A run's context over the checkpoints loaded for its job; `stop` is the
    /// shutdown signal, `lost` the heartbeat's "lease gone" signal.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &'a dyn JobStore,
        crm: &'a dyn Crm,
        policy: Arc<Policy>,
        settings: &'a WorkerSettings,
        clock: &'a dyn Clock,
        job: &'a Job,
        lease: &'a Lease,
        checkpoints: BTreeMap<String, Value>,
        stop: CancellationToken,
        lost: CancellationToken,
        notifier: &'a Notifier,
    ) -> Self {
        Self {
            notifier,
            audience: None,
            finish_notices: Vec::new(),
            store,
            crm,
            policy,
            settings,
            clock,
            job,
            lease,
            checkpoints,
            stop,
            lost,
            fresh_listings: Default::default(),
            listed_after_writes: HashMap::new(),
            looked_ahead: HashMap::new(),
        }
    }

    /// The current time, from the process's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Appends one audit entry.
    pub async fn audit(&self, kind: &str, detail: Value) -> Result<(), JobError> {
        self.store
            .audit(&self.job.id, &[(kind.to_owned(), detail)])
            .await?;
        Ok(())
    }

    /// A checkpoint, if recorded and still readable.
    pub fn checkpoint<T: Serialize + DeserializeOwned>(&self, key: Key<T>) -> Option<T> {
        self.checkpoints.get(key.name()).and_then(|v| key.decode(v))
    }

    /// Whether a checkpoint was recorded at all, readable or not.
    pub fn has_checkpoint<T: Serialize + DeserializeOwned>(&self, key: Key<T>) -> bool {
        self.checkpoints.contains_key(key.name())
    }

    /// Records a checkpoint (fenced by the lease: a run that lost its lease gets
    /// [`JobError::LeaseLost`] and writes nothing).
    pub async fn set_checkpoint<T: Serialize + DeserializeOwned>(
        &mut self,
        key: Key<T>,
        value: &T,
    ) -> Result<(), JobError> {
        let value = key
            .encode(value)
            .map_err(|e| JobError::Store(StoreError::Corrupt(e.to_string())))?;
        self.store
            .put_checkpoint(self.lease, key.name(), &value)
            .await?;
        self.checkpoints.insert(key.name().to_owned(), value);
        Ok(())
    }

    /// The notifications `cause` makes for this job, to be written with the step
    /// that records it; none in a dry run (nothing really happened).
    pub fn notices(&self, cause: &Cause) -> Vec<NewNotification> {
        if self.settings.dry_run {
            return Vec::new();
        }
        let audience = self.audience.clone().unwrap_or_else(|| {
            self.job
                .plan
                .as_ref()
                .map(Audience::from_plan)
                .unwrap_or_default()
        });
        self.notifier
            .compose(self.job, &audience, cause, self.now())
    }

    /// [`Ctx::set_checkpoint`] and `notices` in one store transaction: the
    /// notifications exist exactly when the step they tell of is recorded.
    pub async fn set_checkpoint_with<T: Serialize + DeserializeOwned>(
        &mut self,
        key: Key<T>,
        value: &T,
        notices: &[NewNotification],
    ) -> Result<(), JobError> {
        let value = key
            .encode(value)
            .map_err(|e| JobError::Store(StoreError::Corrupt(e.to_string())))?;
        self.store
            .put_checkpoint_with(self.lease, key.name(), &value, notices)
            .await?;
        self.checkpoints.insert(key.name().to_owned(), value);
        Ok(())
    }

    /// The CRM user with this e-mail: the answer looked up ahead in this run if
    /// there is one (each is used once, seconds after it was read), else asked now.
    pub async fn find_user_by_email(&mut self, email: &Email) -> Result<Option<CrmUser>, JobError> {
        if let Some(found) = self
            .looked_ahead
            .remove(&Lookup::Email(email.clone()).key())
        {
            return Ok(found);
        }
        Ok(self.crm.find_user_by_email(email.as_str()).await?)
    }

    /// The CRM user with this id, looked up ahead or now (as
    /// [`Ctx::find_user_by_email`]).
    pub async fn get_user(&mut self, id: &CrmId) -> Result<Option<CrmUser>, JobError> {
        if let Some(found) = self.looked_ahead.remove(&Lookup::Id(id.clone()).key()) {
            return Ok(found);
        }
        Ok(self.crm.get_user(id).await?)
    }

    /// Errors out when the run must stop (shutdown or a lost lease).
    pub fn check_continue(&self) -> Result<(), JobError> {
        if self.lost.is_cancelled() {
            return Err(JobError::LeaseLost);
        }
        if self.stop.is_cancelled() {
            return Err(JobError::Stopping);
        }
        Ok(())
    }
}

/// A user the steps after the decision will likely ask the CRM for.
#[derive(Debug, Clone)]
pub(crate) enum Lookup {
    /// By e-mail (owner candidates, the admin).
    Email(Email),
    /// By id (the leaver's `reports_to`).
    Id(CrmId),
}

impl Lookup {
    /// E-mail addresses match case-insensitively in every CRM offboard talks to.
    fn key(&self) -> String {
        match self {
            Self::Email(e) => format!("email:{}", e.as_str().to_lowercase()),
            Self::Id(id) => format!("id:{id}"),
        }
    }
}

/// Makes `lookups` at once; one that fails is left out (the step that needs it
/// asks again and handles the error there).
pub(crate) async fn look_ahead(
    crm: &dyn Crm,
    lookups: Vec<Lookup>,
) -> HashMap<String, Option<CrmUser>> {
    let mut unique: Vec<(String, Lookup)> = Vec::new();
    for lookup in lookups {
        let key = lookup.key();
        if !unique.iter().any(|(k, _)| *k == key) {
            unique.push((key, lookup));
        }
    }
    let calls = unique.into_iter().map(|(key, lookup)| async move {
        let found = match &lookup {
            Lookup::Email(e) => crm.find_user_by_email(e.as_str()).await,
            Lookup::Id(id) => crm.get_user(id).await,
        };
        found.ok().map(|found| (key, found))
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect()
}
