//! The vocabulary every stage shares: the canonical offboarding event, e-mail
//! addresses, job states, the CRM's users and kinds of records, and the trait of a
//! CRM request budget.
//!
//! These types are parsed once at the edge (`ingest/`, or when a row is read back
//! from the store) and are valid by construction afterwards. Nothing here does IO.
#![deny(missing_docs)]

pub mod budget;
mod clock;
mod crm;
mod email;
mod event;
mod job;
pub mod lanes;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use crm::{
    Capabilities, CrmId, CrmUser, Resource, SeatAbility, SeatChange, UnknownResource, UserRole,
    UserStatus,
};
pub use email::{Email, EmailError};
pub use event::{
    Employee, EventError, EventType, OffboardingEvent, Termination, TerminationKind, json_kind,
};
pub use job::{JobKind, JobState, ParseStateError};
