//! Who goes first when many offboardings share one CRM token's budget.
//!
//! In a mass layoff hundreds of jobs wait on the same few request slots. Taking
//! them first come, first served would let the first leaver's hundreds of leads
//! hold back the last leaver's seat change, so the last rep keeps CRM access for
//! the whole layoff. Instead every request carries a [`Ticket`]: its [`Lane`]
//! (cutting access, then open deals, then every other record) and the job it
//! belongs to. [`FairSlots`] hands its slots out by lane first and, within a
//! lane, round-robin over jobs (start-time fair queueing), so no leaver waits
//! behind another leaver's whole book, and a job that arrives late gets its turn
//! at once rather than after everyone's backlog.
//!
//! The worker sets the ticket with [`for_job`] and [`in_lane`]; the budgets read it
//! with [`current`]. A ticket is task-local, so code between them (the CRM
//! clients) carries nothing extra.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::{Resource, budget::Permit};

/// How urgent a CRM request is during an offboarding; earlier lanes go first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// Finding the leaver, deciding, and the seat change itself: what stands
    /// between a leaver and losing CRM access. Also the default.
    #[default]
    Access,
    /// Open deals: the revenue a leaver's absence puts at risk first.
    Deals,
    /// Every other record (leads, contacts, organizations, tasks, tickets).
    Records,
}

impl Lane {
    /// Every lane, in the order they are served.
    pub const ALL: [Lane; 3] = [Lane::Access, Lane::Deals, Lane::Records];

    /// The name used in metrics, the audit trail and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Access => "access",
            Lane::Deals => "deals",
            Lane::Records => "records",
        }
    }

    /// The lane the records of `resource` are listed and moved in.
    pub fn for_resource(resource: Resource) -> Lane {
        match resource {
            Resource::Deals => Lane::Deals,
            _ => Lane::Records,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a request waiting for the budget is: its lane and its job (any stable
/// number per job; 0 outside a job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ticket {
    /// How urgent the request is.
    pub lane: Lane,
    /// The job it is for, so slots are shared out per job.
    pub job: u64,
}

tokio::task_local! {
    static TICKET: Ticket;
}

/// Runs `fut` as job `job`'s work, in the [`Lane::Access`] lane until a nested
/// [`in_lane`] says otherwise.
pub async fn for_job<F: Future>(job: u64, fut: F) -> F::Output {
    TICKET
        .scope(
            Ticket {
                lane: Lane::Access,
                job,
            },
            fut,
        )
        .await
}

/// Runs `fut` in `lane`, for the same job as the caller.
pub async fn in_lane<F: Future>(lane: Lane, fut: F) -> F::Output {
    let job = current().job;
    TICKET.scope(Ticket { lane, job }, fut).await
}

/// The ticket of the running task ([`Lane::Access`], job 0 outside any scope).
pub fn current() -> Ticket {
    TICKET.try_with(|t| *t).unwrap_or_default()
}

/// A fixed number of request slots, handed out by lane, then fairly over jobs.
/// Cloning shares the slots.
#[derive(Debug, Clone)]
pub struct FairSlots {
    state: Arc<Mutex<SlotState>>,
}

#[derive(Debug)]
struct SlotState {
    free: usize,
    arrivals: u64,
    /// Waiting requests in the order they will be served: lane, fair-queueing
    /// tag, arrival.
    waiting: BTreeMap<(Lane, u64, u64), oneshot::Sender<()>>,
    clocks: [LaneClock; 3],
}

/// Start-time fair queueing within one lane: a request's tag is one past its
/// job's previous tag, but never behind the lane's current tag, so jobs take
/// turns and a newcomer neither jumps the queue nor waits for old backlogs.
#[derive(Debug, Default)]
struct LaneClock {
    now: u64,
    last: HashMap<u64, u64>,
}

/// Tags of jobs this far behind the lane's clock no longer matter.
const FORGET_AFTER: usize = 4096;

impl LaneClock {
    fn tag(&mut self, job: u64) -> u64 {
        let tag = self
            .last
            .get(&job)
            .map_or(self.now, |t| (t + 1).max(self.now));
        self.last.insert(job, tag);
        tag
    }

    fn served(&mut self, tag: u64) {
        self.now = self.now.max(tag);
        if self.last.len() > FORGET_AFTER {
            let now = self.now;
            self.last.retain(|_, t| *t >= now);
        }
    }
}

impl FairSlots {
    /// `slots` requests may hold a slot at once (at least one).
    pub fn new(slots: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(SlotState {
                free: slots.max(1),
                arrivals: 0,
                waiting: BTreeMap::new(),
                clocks: Default::default(),
            })),
        }
    }

    /// Waits for a slot for a request with `ticket`; dropping the permit frees it
    /// for the next in line. A waiter that is dropped leaves the line.
    pub async fn acquire(&self, ticket: Ticket) -> Permit {
        let (rx, key) = {
            let mut state = lock(&self.state);
            let tag = state.clocks[ticket.lane.index()].tag(ticket.job);
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                state.clocks[ticket.lane.index()].served(tag);
                return Permit::from_fair(FairSlot {
                    slots: self.clone(),
                });
            }
            state.arrivals += 1;
            let key = (ticket.lane, tag, state.arrivals);
            let (tx, rx) = oneshot::channel();
            state.waiting.insert(key, tx);
            (rx, key)
        };
        let mut waiter = Waiter {
            slots: self,
            key,
            granted: false,
        };
        // A closed channel means the slot state is gone: pacing by rate alone is
        // still safe.
        if rx.await.is_err() {
            return Permit::unbounded();
        }
        waiter.granted = true;
        Permit::from_fair(FairSlot {
            slots: self.clone(),
        })
    }

    /// Requests waiting for a slot, per lane (in [`Lane::ALL`] order).
    pub fn waiting(&self) -> [usize; 3] {
        let state = lock(&self.state);
        let mut counts = [0; 3];
        for (lane, _, _) in state.waiting.keys() {
            counts[lane.index()] += 1;
        }
        counts
    }

    /// Slots nobody holds.
    pub fn free(&self) -> usize {
        lock(&self.state).free
    }

    /// Hands a freed slot to the first in line, or back to the pool.
    fn release(&self) {
        let mut state = lock(&self.state);
        while let Some(((lane, tag, _), tx)) = state.waiting.pop_first() {
            if tx.send(()).is_ok() {
                state.clocks[lane.index()].served(tag);
                return;
            }
        }
        state.free += 1;
    }
}

fn lock(state: &Mutex<SlotState>) -> MutexGuard<'_, SlotState> {
    // A few counters and a queue, consistent after any panic: pacing must not
    // take the worker down with it.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Leaves the line when an acquire is dropped before its slot came; a slot
/// that was handed over in the meantime is passed on.
struct Waiter<'a> {
    slots: &'a FairSlots,
    key: (Lane, u64, u64),
    granted: bool,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        let removed = lock(&self.slots.state).waiting.remove(&self.key).is_some();
        if !removed {
            // Granted under the lock after this waiter stopped listening.
            self.slots.release();
        }
    }
}

/// One held slot of a [`FairSlots`].
#[derive(Debug)]
pub(crate) struct FairSlot {
    slots: FairSlots,
}

impl Drop for FairSlot {
    fn drop(&mut self) {
        self.slots.release();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ticket(lane: Lane, job: u64) -> Ticket {
        Ticket { lane, job }
    }

    /// Queues `tickets` behind one held slot, then frees it and records the order
    /// in which the waiters got through (each holds its slot only briefly).
    async fn order_served(tickets: &[Ticket]) -> Vec<Ticket> {
        let slots = FairSlots::new(1);
        let held = slots.acquire(Ticket::default()).await;
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for &t in tickets {
            let shared = slots.clone();
            let served = served.clone();
            tasks.push(tokio::spawn(async move {
                let permit = shared.acquire(t).await;
                served.lock().unwrap().push(t);
                drop(permit);
            }));
            // Let it join the line before the next one.
            while slots.waiting().iter().sum::<usize>() < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(served).unwrap().into_inner().unwrap()
    }

    #[tokio::test]
    async fn earlier_lanes_go_first_whatever_the_arrival() {
        let served = order_served(&[
            ticket(Lane::Records, 1),
            ticket(Lane::Deals, 2),
            ticket(Lane::Records, 3),
            ticket(Lane::Access, 4),
            ticket(Lane::Deals, 5),
        ])
        .await;
        let lanes: Vec<Lane> = served.iter().map(|t| t.lane).collect();
        assert_eq!(
            lanes,
            [
                Lane::Access,
                Lane::Deals,
                Lane::Deals,
                Lane::Records,
                Lane::Records
            ]
        );
        assert_eq!(served[1].job, 2, "within a lane, arrival order");
    }

    #[tokio::test]
    async fn jobs_take_turns_within_a_lane() {
        // Job 1 queues five requests before job 2 and job 3 queue theirs.
        let mut tickets = vec![ticket(Lane::Records, 1); 5];
        tickets.extend([ticket(Lane::Records, 2), ticket(Lane::Records, 3)]);
        tickets.push(ticket(Lane::Records, 2));
        let jobs: Vec<u64> = order_served(&tickets).await.iter().map(|t| t.job).collect();
        assert_eq!(jobs, [1, 2, 3, 1, 2, 1, 1, 1]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_the_line() {
        let slots = FairSlots::new(1);
        let held = slots.acquire(Ticket::default()).await;
        let gave_up = tokio::time::timeout(Duration::ZERO, slots.acquire(Ticket::default())).await;
        assert!(gave_up.is_err());
        assert_eq!(slots.waiting(), [0, 0, 0]);
        drop(held);
        assert_eq!(slots.free(), 1, "the slot went back to the pool");
        let _again = slots.acquire(ticket(Lane::Records, 9)).await;
        assert_eq!(slots.free(), 0);
    }

    #[tokio::test]
    async fn slots_bound_requests_at_once() {
        let slots = FairSlots::new(2);
        let a = slots.acquire(Ticket::default()).await;
        let _b = slots.acquire(Ticket::default()).await;
        let third = tokio::time::timeout(Duration::ZERO, slots.acquire(Ticket::default())).await;
        assert!(third.is_err(), "a third slot with two");
        drop(a);
        let third =
            tokio::time::timeout(Duration::from_secs(2), slots.acquire(Ticket::default())).await;
        assert!(third.is_ok(), "a freed slot was not handed on");
    }

    #[tokio::test]
    async fn the_ticket_follows_the_task_and_its_lanes() {
        assert_eq!(current(), Ticket::default());
        for_job(7, async {
            assert_eq!(current(), ticket(Lane::Access, 7));
            in_lane(Lane::Deals, async {
                assert_eq!(current(), ticket(Lane::Deals, 7));
            })
            .await;
            assert_eq!(current().lane, Lane::Access);
        })
        .await;
    }
}
