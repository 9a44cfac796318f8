//! [`WorkerSettings`]: what the worker reads from `[worker]`, `[crm]` and
//! `[safety]`, parsed once at start-up by [`WorkerSettings::from_config`].

use std::time::Duration;

use crate::{
    config::{Config, ConfigError, SeatExecutor},
    domain::Email,
};

/// Settings the worker reads from `[worker]`, `[crm]` and `[safety]`.
///
/// Built by `Application::build` (and by tests through it); a running worker
/// never re-reads them, so a config change takes a restart.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This worker's lease owner name (unique per process).
    pub id: String,
    /// How long a claim holds a job (`worker.lease_secs`). The heartbeat renews it
    /// every third of it; a worker that cannot renew stops touching the job, and
    /// the store re-queues the job once the lease has expired.
    pub lease: Duration,
    /// Idle poll interval (a wake-up notification short-circuits it).
    pub poll_interval: Duration,
    /// Jobs run at once by this process.
    pub concurrency: usize,
    /// Time between two checks of the CRM while waiting for an admin to change a
    /// seat (`worker.verify_interval_secs`).
    pub verify_interval: Duration,
    /// How long after `seat_requested_at` the worker keeps checking before the job
    /// goes to `needs_review` (`worker.verify_deadline_hours`).
    pub verify_deadline: Duration,
    /// Concurrent reassignments within one job.
    pub max_in_flight: usize,
    /// Who receives the manual seat-step task.
    pub admin_email: Option<Email>,
    /// Who changes seats (`crm.seat_executor`, resolved for the configured CRM).
    pub seat_executor: SeatExecutor,
    /// Plan and audit, mutate nothing.
    pub dry_run: bool,
    /// Deletions requested in any rolling hour before further ones wait for an
    /// operator's approval (`safety.max_deletions_per_hour`).
    pub max_deletions_per_hour: u32,
    /// Seat actions of any kind requested in any rolling hour before further ones
    /// wait for approval (`safety.max_offboardings_per_hour`).
    pub max_offboardings_per_hour: u32,
}

impl WorkerSettings {
    /// Builds settings from the configuration; a malformed `crm.admin_email` is a
    /// configuration error (exit 2).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let admin_email = match config.crm.admin_email.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(
                Email::parse(raw)
                    .map_err(|e| ConfigError::Invalid(format!("crm.admin_email: {e}")))?,
            ),
        };
        Ok(Self {
            id: format!("worker-{}", uuid::Uuid::now_v7()),
            lease: Duration::from_secs(config.worker.lease_secs),
            poll_interval: Duration::from_millis(config.worker.poll_interval_ms.max(10)),
            concurrency: config.worker.concurrency,
            verify_interval: Duration::from_secs(config.worker.verify_interval_secs),
            verify_deadline: Duration::from_secs(config.worker.verify_deadline_hours * 3600),
            max_in_flight: config.crm.max_in_flight,
            admin_email,
            seat_executor: crate::crm::seat_executor(&config.crm)?,
            dry_run: config.safety.dry_run,
            max_deletions_per_hour: config.safety.max_deletions_per_hour,
            max_offboardings_per_hour: config.safety.max_offboardings_per_hour,
        })
    }
}
