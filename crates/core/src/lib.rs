//! offboard: turns an HR system's "this employee is leaving" webhook into an
//! audited, resumable offboarding in the sales CRM.
//!
//! The data flows one way: [`ingest`] (verify, map, dedupe) → [`store`] (durable
//! events and jobs) → [`worker`] (plan, reassign, seat step, verify) → [`policy`]
//! (pure decisions) and [`crm`] (the vendor seam). [`app`] wires them into a
//! running service; [`cli`] is the command line. [`console`] is the ops console
//! people use beside the admin API. See ARCHITECTURE.md.
#![deny(missing_docs)]

pub mod app;
pub mod config;
pub mod console;
pub mod crm;
pub mod error;
pub mod extract;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod worker;

pub use offboard_domain as domain;
pub use offboard_policy as policy;
