//! Pacing: how fast, and how many at once, offboard may talk to a CRM.
//!
//! A CRM token has one request budget (Zendesk Sell: 36,000/hour, i.e. 10/s) no
//! matter how many jobs use it, so pacing lives here, apart from any client, behind
//! the [`RateBudget`] trait. A client calls [`RateBudget::acquire`] before every HTTP
//! attempt, holds the returned [`Permit`] until the response is read, and reports
//! the outcome through [`RateBudget::on_success`] / [`RateBudget::on_throttled`].
//!
//! [`LocalBudget`] is the in-process implementation: a [`Grid`] of start times at
//! `requests_per_second` plus fair slots of `max_in_flight`, so that slow responses
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
    sync::{
        Arc, LazyLock, Mutex, MutexGuard, Weak,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::time::Instant;

pub use offboard_domain::budget::{BudgetSettings, Permit, RateBudget};
use offboard_domain::lanes::{self, FairSlots};

/// The in-process budget: a grid of start times + fair in-flight slots + adaptation.
pub struct LocalBudget {
    grid: Grid,
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
        let slots = settings.max_in_flight.max(1);
        Self {
            grid: Grid::new(&settings),
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
        self.grid.take_turn(slowdown.max(1)).await;
        slot
    }

    fn on_throttled(&self, retry_after: Option<Duration>) {
        self.grid.widen();
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

/// Start times one interval apart, for callers that wake up late.
///
/// A token bucket (`governor`'s GCRA) restarts its schedule from the moment a late
/// caller arrives, so every wake-up a millisecond behind its turn is a millisecond
/// of budget lost for good: at 50 requests/s that was 4 % of the limit. The grid
/// keeps its schedule instead and lets a late caller go at once, as long as it is
/// no more than [`CATCH_UP`] behind; a caller later than that (the budget was
/// idle) starts a new schedule from now. A CRM counts requests in a window of a
/// second, so the interval is the window plus a headroom divided by the limit:
/// two requests `limit` turns apart are always at least a window apart, even
/// when the first went `CATCH_UP` late and the network delivers them unevenly
/// by up to the rest of the headroom. The headroom starts at [`HEADROOM`] and
/// each 429 widens it by as much, up to [`MAX_HEADROOM`]: a 429 while paced
/// says the way to the CRM is less even than assumed, and stays so.
struct Grid {
    /// The limit the interval divides the window by.
    rate: u32,
    /// The headroom in force, in milliseconds.
    headroom_ms: AtomicU32,
    /// How far behind schedule a caller may be and still keep it.
    catch_up: Duration,
    /// The next start time; held while a caller waits for it, so callers go in
    /// the order they arrived (the slots already chose that order by lane).
    next: tokio::sync::Mutex<Option<Instant>>,
}

/// The window CRMs count requests in (Sell, HubSpot's per-second limit); a
/// longer window (Pipedrive's two seconds) allows at least as much.
const WINDOW: Duration = Duration::from_secs(1);
/// Added to the window: covers [`CATCH_UP`] and uneven delivery (requests
/// paced 20.2 ms apart reached a sandbox on the same busy machine 16 to 25 ms
/// apart; 5 ms of headroom saw 5 answers 429 in 1,160). 1 % of the limit is
/// the price.
const HEADROOM: Duration = Duration::from_millis(10);
/// The widest the headroom grows: 5 % of the limit.
const MAX_HEADROOM: Duration = Duration::from_millis(50);
/// Timer wake-ups on a busy machine are a millisecond or two late.
const CATCH_UP: Duration = Duration::from_millis(2);

impl Grid {
    fn new(settings: &BudgetSettings) -> Self {
        let rate = settings.requests_per_second.max(1);
        let interval = (WINDOW + HEADROOM) / rate;
        // A configured burst lets that many go at once after an idle period.
        let burst = interval * settings.burst.max(1).saturating_sub(1);
        Self {
            rate,
            headroom_ms: AtomicU32::new(millis(HEADROOM)),
            catch_up: CATCH_UP.max(burst),
            next: tokio::sync::Mutex::new(None),
        }
    }

    /// Waits for this caller's start time; a slowed-down budget spends
    /// `cost` intervals on each request.
    async fn take_turn(&self, cost: u32) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        let turn = match *next {
            Some(at) if at + self.catch_up >= now => at,
            _ => now,
        };
        tokio::time::sleep_until(turn).await;
        *next = Some(turn + self.interval() * cost);
    }

    /// One request's share of the window.
    fn interval(&self) -> Duration {
        let headroom = Duration::from_millis(self.headroom_ms.load(Ordering::Relaxed).into());
        (WINDOW + headroom) / self.rate
    }

    /// After a 429: more headroom, up to [`MAX_HEADROOM`].
    fn widen(&self) {
        let _ = self
            .headroom_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |ms| {
                Some((ms + millis(HEADROOM)).min(millis(MAX_HEADROOM)))
            });
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rps: u32, in_flight: usize) -> BudgetSettings {
        BudgetSettings {
            requests_per_second: rps,
            max_in_flight: in_flight,
            ..BudgetSettings::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_configured_rate_with_headroom_for_the_window() {
        let budget = LocalBudget::new(settings(20, 4));
        let started = Instant::now();
        for _ in 0..11 {
            drop(budget.acquire().await);
        }
        // 11 requests at 20/s: 10 intervals of (1 s + 10 ms) / 20. Tokio's timer
        // wakes on whole milliseconds; the schedule does not add that up (a token
        // bucket would take 510 ms).
        let elapsed = started.elapsed();
        let expected = Duration::from_micros(10 * 50_500);
        assert!(
            elapsed >= expected && elapsed <= expected + Duration::from_millis(1),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_caller_keeps_the_schedule_and_the_window_holds() {
        let budget = LocalBudget::new(settings(50, 8));
        let started = Instant::now();
        let mut sent = Vec::new();
        for i in 0..200 {
            drop(budget.acquire().await);
            sent.push(Instant::now());
            // Every third caller wakes up late, as on a busy machine.
            if i % 3 == 0 {
                tokio::time::advance(Duration::from_micros(1_500)).await;
            }
        }
        let elapsed = started.elapsed();
        // A token bucket would have lost 1.5 ms per late caller (≈ 100 ms here).
        assert!(
            elapsed <= Duration::from_micros(199 * 20_200 + 1_500),
            "{elapsed:?}"
        );
        // Any 51 consecutive requests span more than the CRM's one-second window.
        for pair in sent.windows(51) {
            assert!(pair[50] - pair[0] > WINDOW, "{:?}", pair[50] - pair[0]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_429_widens_the_headroom_up_to_five_percent() {
        let budget = LocalBudget::new(BudgetSettings {
            cooldown: Duration::ZERO,
            recover_after: 1,
            ..settings(50, 8)
        });
        assert_eq!(budget.grid.interval(), Duration::from_micros(20_200));
        budget.on_throttled(None);
        assert_eq!(budget.grid.interval(), Duration::from_micros(20_400));
        for _ in 0..10 {
            budget.on_throttled(None);
        }
        assert_eq!(budget.grid.interval(), Duration::from_micros(21_000));
        // Successes bring the rate back, not the old headroom.
        for _ in 0..20 {
            budget.on_success();
        }
        assert_eq!(budget.slowdown(), 1);
        assert_eq!(budget.grid.interval(), Duration::from_micros(21_000));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_budget_starts_a_new_schedule_instead_of_bursting() {
        let budget = LocalBudget::new(settings(10, 8));
        drop(budget.acquire().await);
        tokio::time::advance(Duration::from_secs(5)).await;
        let after_idle = Instant::now();
        drop(budget.acquire().await);
        drop(budget.acquire().await);
        // The first after the pause goes at once, the second one interval later
        // (on the timer's next whole millisecond).
        assert_eq!(after_idle.elapsed(), Duration::from_millis(101));
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

    #[tokio::test(start_paused = true)]
    async fn slowed_budget_spaces_requests_further() {
        let budget = LocalBudget::new(settings(40, 1));
        budget.on_throttled(None);
        drop(budget.acquire().await);
        let started = Instant::now();
        for _ in 0..4 {
            drop(budget.acquire().await);
        }
        // At half of 40/s each request costs two intervals of (1 s + 20 ms) / 40:
        // the 429 also widened the headroom (204 ms; the timer wakes on whole
        // milliseconds).
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_micros(4 * 2 * 25_500)
                && elapsed <= Duration::from_millis(205),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_every_caller() {
        let budget = LocalBudget::new(settings(1000, 4));
        budget.on_throttled(Some(Duration::from_millis(300)));
        let started = Instant::now();
        drop(budget.acquire().await);
        assert!(started.elapsed() >= Duration::from_millis(300));
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
