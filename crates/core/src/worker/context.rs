//! What one run of one job can touch: the store (fenced by its lease), the CRM,
//! the policy in force, and the job's checkpoints. Steps read checkpoints to skip
//! work already done and write one after each side effect that matters.

use std::{collections::BTreeMap, sync::Arc};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::WorkerSettings;
use crate::{
    crm::{Crm, CrmError},
    policy::Policy,
    store::{Job, JobStore, Lease, StoreError},
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

/// One run's view of its job.
pub(crate) struct Ctx<'a> {
    pub store: &'a dyn JobStore,
    pub crm: &'a dyn Crm,
    pub policy: Arc<Policy>,
    pub settings: &'a WorkerSettings,
    pub job: &'a Job,
    pub lease: &'a Lease,
    pub checkpoints: BTreeMap<String, Value>,
    /// Cancelled on shutdown: stop at the next checkpoint.
    pub stop: CancellationToken,
    /// Cancelled when the heartbeat finds the lease gone.
    pub lost: CancellationToken,
    /// Listings made moments ago in this run (by the decision step), which the
    /// reassignment's first pass may use instead of listing again.
    pub fresh_listings: std::collections::HashMap<crate::crm::Resource, Vec<crate::crm::Record>>,
}

impl Ctx<'_> {
    /// Appends one audit entry.
    pub async fn audit(&self, kind: &str, detail: Value) -> Result<(), JobError> {
        self.store
            .audit(&self.job.id, &[(kind.to_owned(), detail)])
            .await?;
        Ok(())
    }

    /// A checkpoint, if recorded and still readable.
    pub fn checkpoint<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.checkpoints
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Records a checkpoint (fenced by the lease).
    pub async fn set_checkpoint<T: Serialize>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), JobError> {
        let value = serde_json::to_value(value)
            .map_err(|e| JobError::Store(StoreError::Corrupt(e.to_string())))?;
        self.store.put_checkpoint(self.lease, key, &value).await?;
        self.checkpoints.insert(key.to_owned(), value);
        Ok(())
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
