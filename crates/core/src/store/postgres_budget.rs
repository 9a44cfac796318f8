//! One CRM rate budget for every replica on a PostgreSQL store.
//!
//! A CRM token has one budget (Sell: 10 requests/s) however many worker processes
//! use it. The CRM client's in-process `LocalBudget` paces one process; N replicas
//! each pacing at the full rate would send N times too much. [`PgBudget`] implements
//! the same [`RateBudget`] trait on a row of `crm_budgets` (migration `0002`), so the
//! Sell client doesn't know which one it has. It lives here, not in `crm/`, because
//! only `store/` has SQL: both depend on the trait in `offboard_domain::budget`, not
//! on each other, and `app.rs` hands the budget to the client.
//!
//! The row is a GCRA token bucket on the database clock: `tat_us` is when the next
//! permit may start. [`RateBudget::acquire`] reserves with ONE `UPDATE … RETURNING`
//! (`start = greatest(tat, now)`, `tat = start + n × interval`) and then sleeps
//! locally until `start`, so there is no polling and no retry loop, and replicas with
//! skewed clocks agree (only durations leave the database). The row lock is held for
//! the statement only (autocommit), so concurrent replicas queue for microseconds.
//!
//! What it keeps from the local budget:
//! - the in-flight semaphore (`max_in_flight`, per process): slot first, then rate;
//! - the adaptive slowdown: a 429 doubles the row's `slowdown` (once per cooldown,
//!   up to `max_slowdown`) for every replica; `recover_after` intervals without one
//!   step it back down, evaluated in the reservation statement itself (no extra
//!   round-trip); a `Retry-After` pushes `tat` forward, which pauses everyone.
//!
//! Cost: one statement per permit, and with `batch > 1` one per `batch` permits (a
//! replica reserves several consecutive slots and hands the spares to its own
//! callers; a spare left unused more than 2 ms (or a quarter interval) past its
//! time is dropped, never sent later). The database load is bounded by the CRM rate
//! itself, not by the number of replicas. Measured figures are in ARCHITECTURE.md
//! and BENCHMARKS.md.
//!
//! When the database can't be reached the budget falls back to a process-local
//! limiter at the full rate (and says so once in the log): a worker whose store is
//! down can't record progress anyway, and pacing must never fail a request.

use std::{
    collections::VecDeque,
    fmt,
    num::NonZeroU32,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sqlx::PgPool;
use tokio::time::Instant;

use offboard_domain::{
    budget::{BudgetSettings, Permit, RateBudget},
    lanes::{self, FairSlots},
};

/// Reserves `$3` permits for budget `$1`: `$2` the interval in µs at full rate,
/// `$4` the burst, `$5` `recover_after`. Every `SET` expression sees the row as it
/// was, so `last_start_us` and `tat_us` use the slowdown in force before this
/// statement's recovery step. The clock is read after the row lock is taken.
const RESERVE: &str = "UPDATE crm_budgets SET
        last_start_us = greatest(tat_us, offboard_clock_us() - ($4 - 1) * $2 * slowdown),
        tat_us = greatest(tat_us, offboard_clock_us() - ($4 - 1) * $2 * slowdown) + $3 * $2 * slowdown,
        slowdown = CASE WHEN slowdown > 1 AND offboard_clock_us() - stepped_us >= $5 * $2 * slowdown
                        THEN slowdown - 1 ELSE slowdown END,
        stepped_us = CASE WHEN slowdown > 1 AND offboard_clock_us() - stepped_us >= $5 * $2 * slowdown
                          THEN offboard_clock_us() ELSE stepped_us END
    WHERE key = $1
    RETURNING last_start_us, tat_us, offboard_clock_us() AS now_us, slowdown";

/// Creates the row on first use (every replica may race to do it).
const CREATE: &str = "INSERT INTO crm_budgets (key, tat_us, last_start_us) VALUES ($1, 0, 0)
    ON CONFLICT (key) DO NOTHING";

/// A 429: slow everyone down (`$2` cooldown µs, `$3` max slowdown) and pause for
/// `$4` µs (0 without `Retry-After`).
const THROTTLED: &str = "UPDATE crm_budgets SET
        slowdown = CASE WHEN offboard_clock_us() - slowed_us >= $2 AND slowdown < $3
                        THEN least($3, slowdown * 2) ELSE slowdown END,
        stepped_us = CASE WHEN offboard_clock_us() - slowed_us >= $2 AND slowdown < $3
                          THEN offboard_clock_us() ELSE stepped_us END,
        slowed_us = CASE WHEN offboard_clock_us() - slowed_us >= $2 AND slowdown < $3
                         THEN offboard_clock_us() ELSE slowed_us END,
        tat_us = greatest(tat_us, offboard_clock_us() + $4)
    WHERE key = $1
    RETURNING slowdown";

/// How a [`PgBudget`] talks to its row.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedBudgetOptions {
    /// Permits reserved per statement. 1 = one round-trip per CRM request, no slot
    /// ever wasted; more amortises the round-trip at high rates.
    pub batch: u32,
    /// Share of `requests_per_second` left unused (0.0–0.5). Permits from the row
    /// are spaced exactly, so without headroom any jitter between "permit granted"
    /// and "request arrives" can put `rps + 1` requests in one of the CRM's
    /// one-second windows; a few percent absorbs that.
    pub headroom: f64,
}

impl SharedBudgetOptions {
    /// The defaults for a rate: one permit per statement up to 50 requests/s (at
    /// most 50 statements/s on the whole database), then batches of `rps / 50`,
    /// at most 8; 3 % headroom.
    pub fn for_rate(requests_per_second: u32) -> Self {
        Self {
            batch: (requests_per_second / 50).clamp(1, 8),
            headroom: 0.03,
        }
    }
}

/// A [`RateBudget`] shared through a PostgreSQL row by every process using one token.
pub struct PgBudget {
    pool: PgPool,
    key: String,
    settings: BudgetSettings,
    options: SharedBudgetOptions,
    /// Full-rate spacing of permits, in µs (headroom included).
    interval_us: i64,
    /// Requests in flight from this process, handed out by lane and fairly over
    /// jobs (the rate is shared through the database).
    slots: FairSlots,
    /// Start times of permits reserved but not yet handed out (only with
    /// `batch > 1`), earliest first. Locked briefly, never across a round-trip.
    spare: Mutex<VecDeque<Instant>>,
    /// Used while the database is unreachable.
    fallback: DefaultDirectRateLimiter,
    degraded: AtomicBool,
}

/// A spare slot may start this late (or a quarter interval, if longer): a slot sent
/// later than that is dropped instead, so late slots can't bunch up with other
/// replicas' on-time ones beyond what the headroom absorbs.
const LATE_SLOT: Duration = Duration::from_millis(2);

impl fmt::Debug for PgBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBudget")
            .field("settings", &self.settings)
            .field("options", &self.options)
            .field("interval_us", &self.interval_us)
            .field("free_slots", &self.slots.free())
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl PgBudget {
    /// A budget on the row `key` (a hash identifying the token, never the token).
    /// No IO: the row is created on first use.
    pub fn new(
        pool: PgPool,
        key: String,
        settings: BudgetSettings,
        options: SharedBudgetOptions,
    ) -> Self {
        let rps = f64::from(settings.requests_per_second.max(1));
        let headroom = if options.headroom.is_finite() {
            options.headroom.clamp(0.0, 0.5)
        } else {
            0.0
        };
        let interval_us = (1_000_000.0 / (rps * (1.0 - headroom))).ceil() as i64;
        let rate = NonZeroU32::new(settings.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            pool,
            key,
            slots: FairSlots::new(settings.max_in_flight),
            spare: Mutex::new(VecDeque::new()),
            fallback: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            degraded: AtomicBool::new(false),
            interval_us,
            settings,
            options,
        }
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &BudgetSettings {
        &self.settings
    }

    /// The row's current slowdown (1 = full rate), read from the database.
    pub async fn slowdown(&self) -> Result<u32, sqlx::Error> {
        let s: Option<i32> = sqlx::query_scalar("SELECT slowdown FROM crm_budgets WHERE key = $1")
            .bind(&self.key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(s.map_or(1, |s| s.max(1) as u32))
    }

    /// One reservation of `n` permits: (start of the first, spacing).
    async fn reserve(&self, n: u32) -> Result<(Instant, Duration), sqlx::Error> {
        for _ in 0..2 {
            let row: Option<(i64, i64, i64, i32)> = sqlx::query_as(RESERVE)
                .bind(&self.key)
                .bind(self.interval_us)
                .bind(i64::from(n))
                .bind(i64::from(self.settings.burst.max(1)))
                .bind(i64::from(self.settings.recover_after.max(1)))
                .fetch_optional(&self.pool)
                .await?;
            let answered = Instant::now();
            if let Some((start_us, tat_us, now_us, slowdown)) = row {
                let wait = Duration::from_micros(start_us.saturating_sub(now_us).max(0) as u64);
                let spacing = Duration::from_micros(
                    (tat_us.saturating_sub(start_us) / i64::from(n.max(1))).max(0) as u64,
                );
                let rps = f64::from(self.settings.requests_per_second.max(1))
                    / f64::from(slowdown.max(1));
                metrics::gauge!(crate::metrics::CRM_ALLOWED_REQUESTS_PER_SECOND).set(rps);
                return Ok((answered + wait, spacing));
            }
            sqlx::query(CREATE)
                .bind(&self.key)
                .execute(&self.pool)
                .await?;
        }
        Err(sqlx::Error::RowNotFound)
    }

    /// The start time of one permit: a spare one of this process, or a fresh
    /// reservation (whose other slots become spares). Reservations of concurrent
    /// callers run in parallel, each on its own pooled connection.
    async fn next_start(&self) -> Result<Instant, sqlx::Error> {
        if let Some(at) = self.take_spare() {
            return Ok(at);
        }
        let n = self.options.batch.max(1);
        let (start, interval) = self.reserve(n).await?;
        if n > 1 {
            let mut spare = self.lock_spare();
            let mut at = start;
            for _ in 1..n {
                at += interval;
                spare.push_back(at);
            }
            spare.make_contiguous().sort_unstable();
        }
        Ok(start)
    }

    /// The earliest spare slot that is not too late, dropping those that are.
    fn take_spare(&self) -> Option<Instant> {
        let mut spare = self.lock_spare();
        let late = LATE_SLOT.max(Duration::from_micros(self.interval_us.max(0) as u64 / 4));
        let now = Instant::now();
        while let Some(at) = spare.pop_front() {
            if at + late >= now {
                return Some(at);
            }
            metrics::counter!(crate::metrics::CRM_BUDGET_SLOTS_DROPPED_TOTAL).increment(1);
        }
        None
    }

    fn lock_spare(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        // A list of instants, valid after any panic.
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, result: &Result<Instant, sqlx::Error>) {
        match result {
            Ok(_) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("shared CRM budget reachable again");
                }
            }
            Err(e) => {
                metrics::counter!(crate::metrics::CRM_BUDGET_ERRORS_TOTAL).increment(1);
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "shared CRM budget unreachable; pacing this process alone at the full rate until it is back");
                }
            }
        }
    }
}

#[async_trait]
impl RateBudget for PgBudget {
    async fn acquire(&self) -> Permit {
        // Slot first, then rate: a reserved start time must not be spent waiting for
        // a slot (it would go out late).
        let slot = self.slots.acquire(lanes::current()).await;
        let start = self.next_start().await;
        self.report(&start);
        match start {
            // A timer rounds up to the next millisecond tick: don't arm one for a
            // slot that has already begun.
            Ok(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
            Ok(_) => {}
            Err(_) => self.fallback.until_ready().await,
        }
        slot
    }

    fn on_throttled(&self, retry_after: Option<Duration>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        let key = self.key.clone();
        let cooldown = self.settings.cooldown.as_micros().min(i64::MAX as u128) as i64;
        let max_slowdown = i32::try_from(self.settings.max_slowdown.max(1)).unwrap_or(i32::MAX);
        let pause = retry_after
            .map(|d| d.min(self.settings.max_pause))
            .unwrap_or_default()
            .as_micros()
            .min(i64::MAX as u128) as i64;
        runtime.spawn(async move {
            let result: Result<Option<i32>, _> = sqlx::query_scalar(THROTTLED)
                .bind(&key)
                .bind(cooldown)
                .bind(max_slowdown)
                .bind(pause)
                .fetch_optional(&pool)
                .await;
            match result {
                Ok(Some(slowdown)) => {
                    tracing::info!(slowdown, "CRM throttled us; slowing every replica down")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not record a 429 in the shared CRM budget")
                }
            }
        });
    }

    fn on_success(&self) {
        // Recovery is by time without a 429, evaluated by the next reservation.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_grow_with_the_rate() {
        assert_eq!(SharedBudgetOptions::for_rate(10).batch, 1);
        assert_eq!(SharedBudgetOptions::for_rate(50).batch, 1);
        assert_eq!(SharedBudgetOptions::for_rate(250).batch, 5);
        assert_eq!(SharedBudgetOptions::for_rate(100_000).batch, 8);
    }
}
