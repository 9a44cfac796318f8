//! Benchmarks that run from the product binary (`offboard bench …`), so anyone can
//! reproduce the numbers in BENCHMARKS.md on their own machine. Each benchmark
//! reports ratios against a baseline measured in the same run, never absolute
//! thresholds; the soak checks promises instead (nothing lost, nothing stuck).
//!
//! - [`ingest`]: webhook ingest throughput and latency against a bare axum route,
//!   before and after group commit, with a zero-lost-events check, RSS and start-up.
//! - [`pacing`]: does one offboarding use the CRM's whole request budget, against a
//!   sequential one-call-at-a-time client, and what a moved record costs in calls
//!   on each CRM.
//! - [`layoff`]: many leavers in one burst on one token: how soon every seat is
//!   cut and every open deal moved, with seat-first lanes, records first and a
//!   sequential client, against the calls needed at the CRM's rate.
//! - [`scaling`]: jobs per second with 1, 2, 3 worker processes on PostgreSQL and
//!   1 on SQLite, and the cost of a permit from the shared CRM budget.
//! - [`store`]: claim, list, job detail and the `/metrics` reads on a store of a
//!   million finished jobs against an empty one, the statements' plans, and what
//!   retention does to the SQLite file.
//! - [`soak`]: a bounded soak (`offboard bench soak`): webhooks at a steady rate
//!   with hostile ones among them, a faulty CRM sandbox, the worker SIGKILLed and
//!   restarted, policy reloads; then checks that nothing accepted was lost and
//!   every job is where it should be, RSS drift and panics (RELIABILITY.md).
//! - [`fleet`]: the pieces it runs (a leavers org, a fleet config, `offboard serve`
//!   child processes, a Sell admin); `tests/replicas.rs` uses them too.

#![deny(missing_docs)]

pub mod fleet;
pub mod ingest;
pub mod layoff;
pub mod pacing;
pub mod scaling;
pub mod soak;
pub mod store;
