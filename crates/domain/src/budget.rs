//! The request budget of one CRM token, as a trait: the CRM clients wait on it,
//! and the stores that can share it between processes implement it. Living here,
//! it lets `store` and `crm` meet without either importing the other.

use std::{fmt, time::Duration};

use crate::lanes::FairSlot;
use async_trait::async_trait;

/// A shared request budget for one CRM token.
#[async_trait]
pub trait RateBudget: Send + Sync + fmt::Debug {
    /// Waits until one request may be sent. Hold the permit until the response has
    /// been read: it is what bounds the number of requests in flight.
    async fn acquire(&self) -> Permit;
    /// The CRM answered 429. `retry_after` is its hint, when it gave one.
    fn on_throttled(&self, retry_after: Option<Duration>);
    /// The CRM answered without throttling.
    fn on_success(&self);
    /// The CRM said (in headers of a successful answer) that the token's quota is
    /// used up for `wait`: hold new requests back that long without counting it
    /// as throttling. A budget that cannot pause ignores it; the 429 that follows
    /// still slows it down.
    fn pause(&self, wait: Duration) {
        let _ = wait;
    }
}

/// The right to have one request in flight; dropping it frees the slot.
#[derive(Debug)]
#[must_use = "the in-flight slot is released as soon as the permit is dropped"]
pub struct Permit {
    _slot: Slot,
}

/// What a permit holds until it is dropped.
#[derive(Debug)]
enum Slot {
    None,
    Fair(#[allow(dead_code)] FairSlot),
}

impl Permit {
    /// A permit that holds no slot, for budgets that don't bound concurrency.
    pub fn unbounded() -> Self {
        Self { _slot: Slot::None }
    }

    /// A permit holding one slot of a [`FairSlots`](crate::lanes::FairSlots).
    pub(crate) fn from_fair(slot: FairSlot) -> Self {
        Self {
            _slot: Slot::Fair(slot),
        }
    }
}

/// How a [`LocalBudget`] paces.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSettings {
    /// Sustained request rate; 0 is treated as 1.
    pub requests_per_second: u32,
    /// Requests that may go at once (the shared budget's token bucket); the local
    /// budget lets a late caller catch up this many turns less one (and always a
    /// couple of milliseconds). 0 is treated as 1. Keep it small: the CRM's limit
    /// is a rate, and a burst is what trips it.
    pub burst: u32,
    /// Requests in flight at once; 0 is treated as 1.
    pub max_in_flight: usize,
    /// The slowest the adaptive rate goes: `requests_per_second / max_slowdown`.
    pub max_slowdown: u32,
    /// Successes needed (at the reduced rate) to undo one step of slowdown.
    pub recover_after: u32,
    /// A 429 within this long of the last slowdown doesn't slow down again: the
    /// requests already in flight when the first 429 came say nothing new.
    pub cooldown: Duration,
    /// The longest a CRM's `Retry-After` may pause everyone.
    pub max_pause: Duration,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            requests_per_second: 10,
            burst: 1,
            max_in_flight: 8,
            max_slowdown: 8,
            recover_after: 20,
            cooldown: Duration::from_secs(1),
            max_pause: Duration::from_secs(60),
        }
    }
}
