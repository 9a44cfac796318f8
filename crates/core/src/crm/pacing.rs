//! Pacing: how fast, and how many at once, offboard may talk to a CRM.
//!
//! A CRM token has one request budget (Zendesk Sell: 36,000/hour, i.e. 10/s) no
//! matter how many jobs use it, so pacing lives here, apart from any client, behind
//! the [`RateBudget`] trait. A client calls [`RateBudget::acquire`] before every HTTP
//! attempt, holds the returned [`Permit`] until the response is read, and reports
//! the outcome through [`RateBudget::on_success`] / [`RateBudget::on_throttled`].
//!
//! [`LocalBudget`] is the in-process implementation: a `governor` rate limiter at
//! `requests_per_second` plus a semaphore of `max_in_flight`, so that slow responses
//! don't leave budget unused while the number of open requests stays bounded. It
//! adapts: a 429 halves the effective rate (down to a floor) and pauses everyone for
//! the CRM's `Retry-After`; successes bring the rate back one step at a time.
//! [`LocalBudget::shared`] hands every client of the same token the same budget.
//! The budget shared between processes on a PostgreSQL store is another
//! implementation of the trait, `store::postgres_budget::PgBudget` (its SQL lives
//! with the store's); `app.rs` picks it, callers don't change.
//!
//! A budget never sends requests or decides about retries: it only makes callers wait.

use std::{
    collections::HashMap,
    fmt,
    num::NonZeroU32,
    sync::{
        Arc, LazyLock, Mutex, MutexGuard, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

pub use offboard_domain::budget::{BudgetSettings, Permit, RateBudget};
use offboard_domain::lanes::{self, FairSlots};

/// The in-process budget: governor rate limiter + in-flight semaphore + adaptation.
pub struct LocalBudget {
    limiter: DefaultDirectRateLimiter,
    /// Requests in flight, handed out by lane and fairly over jobs.
    slots: FairSlots,
    settings: BudgetSettings,
    state: Mutex<Adaptive>,
    /// The allowed rate has been published as a metric (on first use, when the
    /// service's recorder is surely installed).
    announced: AtomicBool,
}

/// What 429s and successes have done to the rate.
#[derive(Debug)]
struct Adaptive {
    /// Rate cells each request consumes: the effective rate is `rps / slowdown`.
    slowdown: u32,
    successes: u32,
    last_slowdown: Option<Instant>,
    paused_until: Option<Instant>,
}

impl fmt::Debug for LocalBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBudget")
            .field("settings", &self.settings)
            .field("state", &*self.lock())
            .field("free_slots", &self.slots.free())
            .finish()
    }
}

static SHARED: LazyLock<Mutex<HashMap<String, Weak<LocalBudget>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl LocalBudget {
    /// A budget of its own (tests, benchmarks). Services should use [`Self::shared`].
    pub fn new(settings: BudgetSettings) -> Self {
        let rate = nonzero(settings.requests_per_second);
        let burst = nonzero(settings.burst);
        let slots = settings.max_in_flight.max(1);
        Self {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            slots: FairSlots::new(slots),
            settings,
            state: Mutex::new(Adaptive {
                slowdown: 1,
                successes: 0,
                last_slowdown: None,
                paused_until: None,
            }),
            announced: AtomicBool::new(false),
        }
    }

    /// The process-wide budget for `key` (derived from the CRM token), created with
    /// `settings` if no client holds one yet. Two clients of one token must not each
    /// get the full rate, so the first settings win while the budget is alive.
    pub fn shared(key: &str, settings: BudgetSettings) -> Arc<Self> {
        let mut map = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) = map.get(key).and_then(Weak::upgrade) {
            if existing.settings != settings {
                tracing::warn!(
                    kept = ?existing.settings,
                    ignored = ?settings,
                    "a CRM budget for this token already exists; keeping its settings"
                );
            }
            return existing;
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let budget = Arc::new(Self::new(settings));
        map.insert(key.to_owned(), Arc::downgrade(&budget));
        budget
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &BudgetSettings {
        &self.settings
    }

    /// How many times slower than `requests_per_second` it currently runs (1 = full rate).
    pub fn slowdown(&self) -> u32 {
        self.lock().slowdown
    }

    /// The rate it currently allows.
    pub fn effective_rps(&self) -> f64 {
        f64::from(self.settings.requests_per_second.max(1)) / f64::from(self.slowdown())
    }

    /// Requests holding a permit right now.
    pub fn in_flight(&self) -> usize {
        self.settings.max_in_flight.max(1) - self.slots.free()
    }

    fn lock(&self) -> MutexGuard<'_, Adaptive> {
        // The state is a few counters, valid after any panic, so a poisoned lock is
        // still usable; pacing must not take the worker down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, slowdown: u32) {
        let rps = f64::from(self.settings.requests_per_second.max(1)) / f64::from(slowdown);
        metrics::gauge!(crate::metrics::CRM_ALLOWED_REQUESTS_PER_SECOND).set(rps);
    }
}

#[async_trait]
impl RateBudget for LocalBudget {
    async fn acquire(&self) -> Permit {
        if !self.announced.swap(true, Ordering::Relaxed) {
            self.publish(self.slowdown());
        }
        // Slot first, then rate: a rate cell taken while waiting for a slot would
        // be spent without a request. The slots decide who goes next (lanes::).
        let slot = self.slots.acquire(lanes::current()).await;
        let (pause, slowdown) = {
            let state = self.lock();
            (state.paused_until, state.slowdown)
        };
        if let Some(until) = pause {
            tokio::time::sleep_until(until).await;
        }
        for _ in 0..slowdown.max(1) {
            self.limiter.until_ready().await;
        }
        slot
    }

    fn on_throttled(&self, retry_after: Option<Duration>) {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(wait) = retry_after {
            let until = now + wait.min(self.settings.max_pause);
            state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
        }
        state.successes = 0;
        let cooling = state
            .last_slowdown
            .is_some_and(|at| now.duration_since(at) < self.settings.cooldown);
        let floor = self.settings.max_slowdown.max(1);
        if !cooling && state.slowdown < floor {
            state.slowdown = state.slowdown.saturating_mul(2).min(floor);
            state.last_slowdown = Some(now);
            let slowdown = state.slowdown;
            drop(state);
            tracing::info!(slowdown, "CRM throttled us; slowing down");
            self.publish(slowdown);
        }
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait.min(self.settings.max_pause);
        let mut state = self.lock();
        state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
    }

    fn on_success(&self) {
        let mut state = self.lock();
        if state.slowdown <= 1 {
            return;
        }
        state.successes += 1;
        if state.successes >= self.settings.recover_after.max(1) {
            state.successes = 0;
            state.slowdown -= 1;
            let slowdown = state.slowdown;
            drop(state);
            tracing::debug!(slowdown, "CRM budget recovering");
            self.publish(slowdown);
        }
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use super::*;

    fn settings(rps: u32, in_flight: usize) -> BudgetSettings {
        BudgetSettings {
            requests_per_second: rps,
            max_in_flight: in_flight,
            ..BudgetSettings::default()
        }
    }

    #[tokio::test]
    async fn paces_to_the_configured_rate() {
        let budget = LocalBudget::new(settings(20, 4));
        let started = StdInstant::now();
        for _ in 0..11 {
            drop(budget.acquire().await);
        }
        // 11 requests at 20/s with a burst of 1: 10 intervals of 50 ms.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    }

    #[tokio::test]
    async fn bounds_requests_in_flight() {
        let budget = LocalBudget::new(settings(1000, 2));
        let a = budget.acquire().await;
        let _b = budget.acquire().await;
        assert_eq!(budget.in_flight(), 2);
        let third = tokio::time::timeout(Duration::from_millis(100), budget.acquire()).await;
        assert!(
            third.is_err(),
            "a third permit was granted with max_in_flight = 2"
        );
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(2), budget.acquire()).await;
        assert!(third.is_ok(), "a freed slot was not handed on");
    }

    #[test]
    fn throttling_halves_the_rate_down_to_the_floor() {
        let budget = LocalBudget::new(BudgetSettings {
            cooldown: Duration::ZERO,
            max_slowdown: 4,
            ..settings(10, 1)
        });
        assert_eq!(budget.slowdown(), 1);
        budget.on_throttled(None);
        assert_eq!(budget.slowdown(), 2);
        assert!((budget.effective_rps() - 5.0).abs() < f64::EPSILON);
        budget.on_throttled(None);
        budget.on_throttled(None);
        assert_eq!(budget.slowdown(), 4, "the floor is rps / max_slowdown");
    }

    #[test]
    fn a_burst_of_429s_slows_down_once() {
        let budget = LocalBudget::new(settings(10, 8));
        for _ in 0..8 {
            budget.on_throttled(None);
        }
        assert_eq!(budget.slowdown(), 2);
    }

    #[test]
    fn successes_recover_one_step_at_a_time() {
        let budget = LocalBudget::new(BudgetSettings {
            cooldown: Duration::ZERO,
            recover_after: 3,
            ..settings(10, 1)
        });
        budget.on_throttled(None);
        budget.on_throttled(None);
        assert_eq!(budget.slowdown(), 4);
        let mut seen = vec![];
        for _ in 0..9 {
            budget.on_success();
            seen.push(budget.slowdown());
        }
        assert_eq!(seen, [4, 4, 3, 3, 3, 2, 2, 2, 1]);
        budget.on_success();
        assert_eq!(budget.slowdown(), 1);
    }

    #[tokio::test]
    async fn slowed_budget_spaces_requests_further() {
        let budget = LocalBudget::new(settings(40, 1));
        budget.on_throttled(None);
        drop(budget.acquire().await);
        let started = StdInstant::now();
        for _ in 0..4 {
            drop(budget.acquire().await);
        }
        // At half of 40/s each request costs 50 ms instead of 25 ms.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(160), "{elapsed:?}");
    }

    #[tokio::test]
    async fn retry_after_pauses_every_caller() {
        let budget = LocalBudget::new(settings(1000, 4));
        budget.on_throttled(Some(Duration::from_millis(300)));
        let started = StdInstant::now();
        drop(budget.acquire().await);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    }

    #[tokio::test]
    async fn retry_after_is_capped() {
        let budget = LocalBudget::new(BudgetSettings {
            max_pause: Duration::from_millis(50),
            ..settings(1000, 4)
        });
        budget.on_throttled(Some(Duration::from_secs(3600)));
        let granted = tokio::time::timeout(Duration::from_secs(2), budget.acquire()).await;
        assert!(granted.is_ok());
    }

    #[test]
    fn one_budget_per_key() {
        let a = LocalBudget::shared("pacing-test-key", settings(10, 2));
        let b = LocalBudget::shared("pacing-test-key", settings(99, 9));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.settings().requests_per_second, 10);
        let other = LocalBudget::shared("pacing-test-other", settings(10, 2));
        assert!(!Arc::ptr_eq(&a, &other));
    }

    #[test]
    fn zero_settings_are_clamped() {
        let budget = LocalBudget::new(BudgetSettings {
            requests_per_second: 0,
            burst: 0,
            max_in_flight: 0,
            ..BudgetSettings::default()
        });
        assert_eq!(budget.in_flight(), 0);
        assert!((budget.effective_rps() - 1.0).abs() < f64::EPSILON);
    }
}
