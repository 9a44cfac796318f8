//! What every console handler shares: the store, the session key, the settings
//! and the clock. Built once by `app.rs` from the configuration; a leaf the
//! console's other files import.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::session::SessionKeys;
use crate::{
    config::{ConsoleConfig, Secret},
    domain::SharedClock,
    store::SharedStore,
};

/// The console's knobs, from `[console]` and `[privacy]`.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// How long a sign-in lasts.
    pub session: Duration,
    /// Drop the cookie's `Secure` flag (plain-HTTP local use only).
    pub insecure_cookie: bool,
    /// Hash e-mail addresses wherever a page shows one (`[privacy] redact_emails`).
    pub redact_emails: bool,
    /// Seconds between refreshes of a job that is still moving.
    pub refresh_secs: u64,
    /// Sign-in attempts accepted per minute (per process).
    pub sign_in_per_minute: u32,
}

impl ConsoleSettings {
    /// The settings `[console]` and `[privacy] redact_emails` describe.
    pub fn from_config(console: &ConsoleConfig, redact_emails: bool) -> Self {
        Self {
            session: Duration::from_secs(console.session_hours.saturating_mul(3600)),
            insecure_cookie: console.insecure_cookie,
            redact_emails,
            refresh_secs: console.refresh_secs,
            sign_in_per_minute: console.sign_in_per_minute,
        }
    }
}

/// The console's shared state.
#[derive(Clone)]
pub struct ConsoleState {
    /// Where jobs are read and operated.
    pub(crate) store: SharedStore,
    /// The admin token a sign-in must present (compared in constant time).
    pub(crate) token: Arc<Secret>,
    /// Derived from the token: signs sessions and CSRF tokens.
    pub(crate) keys: Arc<SessionKeys>,
    /// The knobs.
    pub(crate) settings: Arc<ConsoleSettings>,
    /// "Now" for session expiry and ages shown, the process's one clock.
    pub(crate) clock: SharedClock,
    /// Sign-in attempts, all clients together: a guessing client is slowed
    /// whichever address it comes from (behind a proxy they all look the same).
    pub(crate) sign_in: Arc<DefaultDirectRateLimiter>,
}

impl ConsoleState {
    /// The state for a console over `store`, signed in with `token`.
    pub fn new(
        store: SharedStore,
        token: Arc<Secret>,
        settings: ConsoleSettings,
        clock: SharedClock,
    ) -> Self {
        let per_minute = NonZeroU32::new(settings.sign_in_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            keys: Arc::new(SessionKeys::derive(&token)),
            store,
            token,
            sign_in: Arc::new(RateLimiter::direct(Quota::per_minute(per_minute))),
            settings: Arc::new(settings),
            clock,
        }
    }
}
