//! The vocabulary every stage shares: the canonical offboarding event, e-mail
//! addresses, identifiers and job states.
//!
//! These types are parsed once at the edge (`ingest/`, or when a row is read back
//! from the store) and are valid by construction afterwards. Nothing here does IO.

mod email;
mod event;
mod job;

pub use email::{Email, EmailError};
pub use event::{
    Employee, EventError, EventType, OffboardingEvent, Termination, TerminationKind, json_kind,
};
pub use job::{JobKind, JobState, ParseStateError};
