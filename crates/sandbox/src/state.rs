//! [`SandboxState`]: the cheap, cloneable handle to a running sandbox's data that
//! the routes share and that tests and the demo hold to look inside or to play
//! the CRM admin (deactivate, reactivate, delete a user).
//!
//! The database sits behind a `tokio::sync::RwLock` (each request takes it once,
//! so a write is atomic); the request log, the rate limiter and the fault dice are
//! behind short-lived `std` mutexes that are never held across an `.await`.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use chrono::{SecondsFormat, Utc};
use rand::{SeedableRng, rngs::StdRng};
use tokio::sync::RwLock;

use super::{
    SandboxCrm,
    db::{ControlError, Db, OwnedCounts},
    limits::Limiter,
    log::{RequestLog, RequestLogEntry, Stats},
    salesforce::SfState,
    seed::{Seed, User},
};
use offboard_domain::{UserRole, UserStatus};

/// How the CRM-shaped routes behave (from [`SandboxOptions`](super::SandboxOptions)).
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub crm: SandboxCrm,
    pub token: Option<String>,
    pub token_owner: Option<i64>,
    pub rps: Option<u32>,
    pub latency: Duration,
    pub fault_rate: f64,
}

pub(super) struct Shared {
    pub db: RwLock<Db>,
    initial: Seed,
    pub log: Mutex<RequestLog>,
    pub limiter: Mutex<Limiter>,
    pub dice: Mutex<StdRng>,
    /// The Salesforce face's allocation and query cursors.
    pub salesforce: Mutex<SfState>,
    pub settings: Settings,
    pub base_url: String,
    pub started: Instant,
}

/// A handle on a sandbox's data and request log; clones share the same sandbox.
#[derive(Clone)]
pub struct SandboxState {
    pub(super) inner: Arc<Shared>,
}

impl std::fmt::Debug for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxState")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

/// The current time as Sell writes it (`2026-12-01T10:00:00Z`).
pub(super) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SandboxState {
    pub(super) fn new(seed: Seed, settings: Settings, base_url: String) -> SandboxState {
        SandboxState {
            inner: Arc::new(Shared {
                db: RwLock::new(Db::from_seed(&seed)),
                initial: seed,
                log: Mutex::new(RequestLog::default()),
                limiter: Mutex::new(Limiter::default()),
                // Fixed, so a fault pattern repeats from run to run for one request order.
                dice: Mutex::new(StdRng::seed_from_u64(0x5eed_fa17)),
                salesforce: Mutex::new(SfState::default()),
                settings,
                base_url,
                started: Instant::now(),
            }),
        }
    }

    pub(super) fn log(&self) -> MutexGuard<'_, RequestLog> {
        lock(&self.inner.log)
    }

    pub(super) fn limiter(&self) -> MutexGuard<'_, Limiter> {
        lock(&self.inner.limiter)
    }

    pub(super) fn dice(&self) -> MutexGuard<'_, StdRng> {
        lock(&self.inner.dice)
    }

    pub(super) fn sf(&self) -> MutexGuard<'_, SfState> {
        lock(&self.inner.salesforce)
    }

    /// Salesforce: the org's API calls used and allowed in the current 24-hour
    /// window, as `Sforce-Limit-Info: api-usage=used/max` reports them.
    pub fn salesforce_api_usage(&self) -> (u64, u64) {
        let u = self.sf().usage;
        (u.used, u.max)
    }

    /// Salesforce: sets the 24-hour allocation (default
    /// [`SALESFORCE_DAILY_LIMIT`](super::SALESFORCE_DAILY_LIMIT)); once `used`
    /// reaches it, API calls answer 403 `REQUEST_LIMIT_EXCEEDED`. Calls already
    /// used stay counted; [`reset`](Self::reset) empties the count, keeping the size.
    pub fn set_salesforce_api_limit(&self, max: u64) {
        self.sf().usage.max = max;
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The CRM whose API this sandbox serves.
    pub fn crm(&self) -> SandboxCrm {
        self.inner.settings.crm
    }

    /// The user the API token belongs to (see
    /// [`SandboxOptions::token_owner`](super::SandboxOptions::token_owner)).
    pub(super) fn token_user<'a>(&self, db: &'a Db) -> Option<&'a User> {
        match self.inner.settings.token_owner {
            Some(id) => db.visible_user(id),
            None => db.self_user(),
        }
    }

    /// Everything the sandbox holds now, in the `--seed FILE` format.
    pub async fn snapshot(&self) -> Seed {
        self.inner.db.read().await.to_seed()
    }

    /// One user by id, deleted ones included.
    pub async fn user(&self, id: i64) -> Option<User> {
        self.inner.db.read().await.users.get(&id).cloned()
    }

    /// The user with this e-mail (case-insensitively), deleted ones included.
    pub async fn user_by_email(&self, email: &str) -> Option<User> {
        let db = self.inner.db.read().await;
        db.users
            .values()
            .find(|u| u.email.eq_ignore_ascii_case(email))
            .cloned()
    }

    /// What an admin's "Deactivate" in Sell's UI does: status `inactive`, the seat
    /// is freed, records stay with the user. Deactivating twice is a no-op.
    pub async fn deactivate(&self, id: i64) -> Result<User, ControlError> {
        self.inner
            .db
            .write()
            .await
            .set_status(id, UserStatus::Inactive, &now())
    }

    /// Undoes [`deactivate`](Self::deactivate). Deleted users can't come back.
    pub async fn reactivate(&self, id: i64) -> Result<User, ControlError> {
        self.inner
            .db
            .write()
            .await
            .set_status(id, UserStatus::Active, &now())
    }

    /// What an admin's change of a role in the user settings does (a rep made an
    /// admin while their offboarding waits, say).
    pub async fn set_role(&self, id: i64, role: UserRole) -> Result<User, ControlError> {
        self.inner.db.write().await.set_role(id, role, &now())
    }

    /// What an admin's "Delete" does: sets `deleted_at`, after which the API
    /// answers 404 for the user. Refused, as Sell does, while the user owns open
    /// leads, contacts or deals or manages active users. Closed deals stay.
    pub async fn delete(&self, id: i64) -> Result<User, ControlError> {
        self.inner.db.write().await.delete_user(id, &now())
    }

    /// What `owner_id` owns per kind, open and closed (the demo's final table),
    /// as the served CRM sees it. Sell: companies are contacts, so
    /// `organizations` is 0, every lead is open, and there are no tickets.
    /// Pipedrive: `contacts` are persons, `organizations` the organizations,
    /// and archived leads are the closed ones (offboarding leaves them alone);
    /// no tickets. HubSpot: as Pipedrive, no leads, tickets. Salesforce: as
    /// Pipedrive (archived leads are the converted ones), tickets are Cases.
    /// Deals and tasks alike in all.
    pub async fn open_counts(&self, owner_id: i64) -> OwnedCounts {
        let db = self.inner.db.read().await;
        match self.crm() {
            // Sell has no tickets, whatever the seed holds.
            SandboxCrm::Sell => OwnedCounts {
                tickets: Default::default(),
                ..db.counts(owner_id)
            },
            SandboxCrm::Pipedrive => db.pipedrive_counts(owner_id),
            // Companies apart from contacts, as Pipedrive's; HubSpot has no leads
            // but has tickets.
            SandboxCrm::Hubspot => OwnedCounts {
                leads: Default::default(),
                tickets: db.counts(owner_id).tickets,
                ..db.pipedrive_counts(owner_id)
            },
            // Leads (open = not converted), Contacts, Accounts apart, and Cases.
            SandboxCrm::Salesforce => OwnedCounts {
                tickets: db.counts(owner_id).tickets,
                ..db.pipedrive_counts(owner_id)
            },
        }
    }

    /// The CRM API requests seen so far (the last
    /// [`LOG_CAPACITY`](super::LOG_CAPACITY)), oldest first, without tokens.
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.log().entries()
    }

    /// Counts over every CRM API request since the start or the last reset.
    pub fn stats(&self) -> Stats {
        self.log().stats()
    }

    /// Moves the clock the rate limit's windows (one second for Sell, two for
    /// Pipedrive) are measured on forward by `by`: requests admitted earlier
    /// look that much older. Tests use it to
    /// see a window slide deterministically, without sleeping through it; the
    /// latency, the request log's times and the records' timestamps stay on the
    /// wall clock. [`reset`](Self::reset) puts the clock back.
    pub fn advance_clock(&self, by: Duration) {
        self.limiter().advance(by);
    }

    /// Back to the seed the sandbox started with; clears the log, the statistics
    /// and the rate-limit windows.
    pub async fn reset(&self) {
        let mut db = self.inner.db.write().await;
        *db = Db::from_seed(&self.inner.initial);
        *self.log() = RequestLog::default();
        *self.limiter() = Limiter::default();
        self.sf().reset();
    }
}
