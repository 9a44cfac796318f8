//! The policy engine: `Policy + Facts → Decision`, the same way every time.
//!
//! A policy file (DESIGN.md §7) is an ordered list of rules; the first whose `when`
//! matches decides the action, timing and reassignment. Hard guards run after the
//! rules and can only make the action safer (delete → deactivate or review). The
//! decision carries its own explanation (rule, each guard and whether it changed
//! anything), which `offboard policy explain` prints and the job stores.
//!
//! Architecture invariant: nothing in this folder does IO besides reading the
//! policy file in [`Policy::load`]; deciding cannot fail. CRM facts the worker could
//! not fetch are passed as `None` and the decision says what it assumed.

mod decide;
mod rules;

pub use decide::{Action, Decision, Facts, GuardOutcome, ReassignTo, Timing};
pub use rules::{Policy, PolicyError};
