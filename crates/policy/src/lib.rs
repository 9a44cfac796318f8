//! The policy engine: `Policy + Facts → Decision`, the same way every time.
//!
//! A policy file (DESIGN.md §7) is an ordered list of rules; the first whose `when`
//! matches decides the action, timing and reassignment. Hard guards run after the
//! rules and can only make the action safer (delete → deactivate or review). The
//! decision carries its own explanation (rule, each guard and whether it changed
//! anything), which `offboard policy explain` prints and the job stores.
//!
//! Code map: `rules.rs` parses and validates the file (every error is
//! `file:line:col: message`); `matcher.rs` evaluates `when`; `decide.rs` holds the
//! rule matching, timing and the guards; `types.rs` the decision's vocabulary that
//! all of them share (so no two modules import each other); `explain.rs` renders a
//! decision as text or JSON.
//!
//! Architecture invariant: nothing in this folder does IO besides reading the
//! policy file in [`Policy::load`]; deciding cannot fail. CRM facts the worker could
//! not fetch are passed as `None` and the decision says what it assumed.
#![deny(missing_docs)]

mod decide;
mod explain;
mod matcher;
mod rules;
mod types;

pub use explain::{explain_json, explain_text};
pub use rules::{Policy, PolicyError};
pub use types::{
    Action, Decision, Facts, GUARD_ADMIN, GUARD_LEGAL_HOLD, GUARD_REPORTEES, GuardOutcome,
    NO_RULE_MATCHED, RUNTIME_GUARDS, ReassignTo, Timing,
};
