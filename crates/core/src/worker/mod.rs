//! The worker: claims jobs from the store under a lease and runs them to their
//! next resting state (done, scheduled, needs_review, failed).
//!
//! [`Worker::run`] is the loop (requeue expired leases, claim, run, sleep or wake),
//! in [`runner`]; this file only declares the modules and re-exports. Each claimed job runs in its own task with a heartbeat that renews the lease and
//! a sink that turns every CRM call into an audit row, and [`gate`] admits each CRM
//! write only with its intent on record and the lease covering it. What a job does lives in
//! [`offboard`] (terminations and the delete-after follow-up) and [`reverse`]
//! (rehires and cancelled terminations); [`reassign`] and [`seat`] are their steps,
//! [`facts`] what they read from the CRM to decide. Each step ends in a
//! [`step::Step`] (done, or a named reason for review) or a [`JobError`], and
//! records its progress under the typed keys of [`checkpoint`].
//!
//! Architecture invariants:
//! - every write for a job is fenced by its lease; a step that cannot prove it
//!   still holds the lease stops without touching the CRM again;
//! - no CRM write leaves without its intent in the audit trail and a lease that
//!   outlasts it ([`gate`]), and every answer is recorded before the run ends;
//! - "now" comes only from the worker's [`SharedClock`](crate::domain::SharedClock) (the store's clock too,
//!   when `Application` builds both); sleeps use tokio's timers;
//! - the modules form a tree of imports: [`runner`] imports the jobs, steps import
//!   [`context`], [`checkpoint`], [`step`] and [`facts`], never each other in both
//!   directions, and none imports this file.

mod checkpoint;
mod context;
mod current_policy;
mod dry_run;
mod facts;
mod gate;
mod notices;
mod offboard;
mod reassign;
mod reverse;
mod runner;
mod seat;
mod settings;
mod step;

pub use context::JobError;
pub use current_policy::CurrentPolicy;
pub use runner::Worker;
pub use settings::WorkerSettings;
