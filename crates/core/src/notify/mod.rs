//! Notifications that arrive (DESIGN.md §13): e-mail over SMTP and signed
//! outbound webhooks, from the store's outbox.
//!
//! The worker asks [`Notifier::compose`] what a step's cause (a decision, records
//! moved, a seat requested or verified, a job ending in review or failure) means
//! for whom, and writes the resulting rows *with* the step: in the same store
//! transaction as the checkpoint, plan or finish that records it
//! (`JobStore::put_checkpoint_with` and friends). Each row's id is derived from
//! the job, the cause and the recipient, so the same cause never makes a second
//! row; the id travels as `webhook-id` and in the `Message-ID`, so a receiver can
//! drop the one repeat a crash between "accepted" and "recorded" may cause.
//! [`Dispatcher`] then claims due rows under a lease, sends them ([`email`],
//! [`webhook`]) and records the answer; the store decides the backoff and when a
//! notification is given up on (`dead`). Delivery never holds up a job.
//!
//! What this module must never do: call back into the worker, the receiver or the
//! CRM (it is downstream of all three), or put an address in a metric label.

mod compose;
mod dispatch;
mod email;
mod settings;
mod webhook;

pub use compose::{Audience, Cause, Notifier};
pub use dispatch::Dispatcher;
pub use email::SendError;
pub use settings::{EVENTS, EmailChannel, Endpoint, Settings, TlsMode};
