//! [`LeaseGate`]: the run's promise that it never writes to the CRM blind.
//!
//! Before each write (every attempt of it) the transport asks the gate, which
//! 1. checks that the lease, as last renewed, outlasts the whole attempt — the
//!    attempt is given a deadline of at most a third of the lease and abandoned
//!    when it has no answer by then, so another worker can only take the job over
//!    (after the lease lapses) once this one's call is over;
//! 2. records the write's intent (`crm.intent`: method and path) in the job's audit
//!    trail, so a write that reaches the CRM is on record even if its answer never
//!    is (the answer follows as `crm.call`).
//!
//! While the store is unreachable neither can be done: the gate waits (the
//! heartbeat keeps trying to renew), and the write waits with it. Once the lease
//! may have lapsed it refuses for good and marks the run's lease lost: the job is
//! then another worker's, after the lease's expiry, and this run writes nothing more.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    crm::calls::WriteGate,
    store::{Lease, SharedStore},
};

/// How often a waiting write looks again at the store and the lease.
const RECHECK: Duration = Duration::from_millis(200);

/// The gate of one run of one job.
pub struct LeaseGate {
    store: SharedStore,
    job_id: String,
    /// Which worker and attempt the intents are written by, so the trail shows
    /// that two runs never wrote at the same time.
    owner: String,
    attempt: u32,
    lease: Duration,
    /// Until when the lease is known to be held (monotonic): the start of the last
    /// renewal that succeeded, plus the lease.
    held_until: Mutex<Instant>,
    renewed: Notify,
    lost: CancellationToken,
    stop: CancellationToken,
}

impl LeaseGate {
    /// The gate of the run that holds `held`, a lease of length `lease` granted at `granted`.
    pub fn new(
        store: SharedStore,
        held: &Lease,
        lease: Duration,
        granted: Instant,
        lost: CancellationToken,
        stop: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            job_id: held.job_id.clone(),
            owner: held.owner.clone(),
            attempt: held.attempt,
            lease,
            held_until: Mutex::new(granted + lease),
            renewed: Notify::new(),
            lost,
            stop,
        })
    }

    /// How often the heartbeat renews the lease: often enough that a write never
    /// waits for a renewal while the store is up.
    pub fn renew_every(lease: Duration) -> Duration {
        lease / 6
    }

    /// A renewal that was sent at `sent` succeeded.
    pub fn renewed(&self, sent: Instant) {
        let mut held = self.held_until.lock().unwrap_or_else(|p| p.into_inner());
        *held = (*held).max(sent + self.lease);
        drop(held);
        self.renewed.notify_waiters();
    }

    fn held_until(&self) -> Instant {
        *self.held_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The longest an attempt may take: what the client wants, at most a third of
    /// the lease (so renewals every sixth of it keep writes flowing).
    fn window(&self, wanted: Duration) -> Duration {
        wanted.min(self.lease / 3)
    }

    /// Waits for a renewal, a recheck, or the run's end; `Err` when the run ended.
    async fn pause(&self) -> Result<(), String> {
        tokio::select! {
            _ = self.renewed.notified() => Ok(()),
            _ = tokio::time::sleep(RECHECK) => Ok(()),
            _ = self.lost.cancelled() => Err("the lease is lost".to_owned()),
            _ = self.stop.cancelled() => Err("shutting down".to_owned()),
        }
    }
}

#[async_trait]
impl WriteGate for LeaseGate {
    async fn admit(&self, method: &str, path: &str, wanted: Duration) -> Result<Duration, String> {
        let window = self.window(wanted);
        let mut warned = false;
        loop {
            if self.lost.is_cancelled() {
                return Err("the lease is lost".to_owned());
            }
            if self.stop.is_cancelled() {
                return Err("shutting down".to_owned());
            }
            if Instant::now() >= self.held_until() {
                // Unrenewed past its length: the store may have expired it and
                // handed the job to another worker. This run is over.
                tracing::warn!(
                    "the lease may have lapsed while it could not be renewed: no more CRM writes in this run"
                );
                self.lost.cancel();
                return Err("the lease may have lapsed while the store was unreachable".to_owned());
            }
            if !self.covers(window) {
                self.pause().await?;
                continue;
            }
            let intent = json!({
                "method": method,
                "path": path,
                "worker": self.owner,
                "attempt": self.attempt,
            });
            // In a task of its own: the write then finishes (and gives the store's
            // connection back) even while the caller is not being polled — a step
            // that drives several calls in a FuturesUnordered writes checkpoints
            // between polls of them, and SQLite has one writer connection.
            let (store, job_id) = (self.store.clone(), self.job_id.clone());
            let recorded = tokio::spawn(async move {
                store
                    .audit(&job_id, &[("crm.intent".to_owned(), intent)])
                    .await
            })
            .await
            .unwrap_or_else(|e| {
                Err(crate::store::StoreError::Corrupt(format!(
                    "intent task: {e}"
                )))
            });
            match recorded {
                Ok(()) => return Ok(window),
                Err(e) if !warned => {
                    tracing::warn!(error = %e, "cannot record a CRM write's intent: holding CRM writes until the store answers");
                    warned = true;
                }
                Err(_) => {}
            }
            self.pause().await?;
        }
    }

    fn covers(&self, within: Duration) -> bool {
        // A tenth of the lease to spare for clock steps and the renewal's own trip.
        Instant::now() + within + self.lease / 10 <= self.held_until()
    }
}
