//! The CRM seam: what offboard needs from a sales CRM, independent of any vendor.
//!
//! [`Crm`] is the trait the worker talks to; [`sell`] implements it for Zendesk Sell
//! over HTTP, and [`sandbox`] is a Sell-compatible server for demos, rehearsals and
//! benchmarks. Only this folder knows Sell's JSON envelopes. Every HTTP call a
//! client makes is reported to the [`calls`] sink of the current task, so the
//! worker can store it in the job's audit trail without the trait carrying it.
//! [`pacing`] holds the per-token request budget that every client call waits on.
//! The trait and its types live in the private leaf `contract`, re-exported here, so
//! the clients import that leaf and this file stays declarations and re-exports.
//!
//! A CRM never decides anything: it lists, reassigns and creates tasks when told to.

pub mod calls;
mod contract;
pub mod pacing;
pub mod sell;

pub use contract::{Crm, CrmError, NewTask, Record};
pub use offboard_domain::{CrmUser, Resource, UserRole, UserStatus};
