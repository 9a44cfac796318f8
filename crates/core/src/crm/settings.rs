//! [`ClientSettings`]: the pacing, timeout and retry knobs every CRM client has,
//! and how they are read from `[crm]`. Its own module so the shared transport and
//! the clients all read it without importing each other.

use std::time::Duration;

use crate::{
    config::{Config, CrmConfig},
    crm::pacing::BudgetSettings,
};

/// Pacing, timeout and retry settings of a CRM client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    /// The token's sustained request budget (Sell: 36,000/hour = 10/s); the
    /// CRM's own rate-limit headers may lower it, never raise it.
    pub requests_per_second: u32,
    /// Requests that may leave at once after an idle moment.
    pub burst: u32,
    /// Requests in flight at once, across all jobs sharing the token.
    pub max_in_flight: usize,
    /// Whole-request timeout (connect, send, read the answer) of every attempt.
    pub timeout: Duration,
    /// Connection set-up timeout.
    pub connect_timeout: Duration,
    /// Retries after the first attempt for 429, 5xx and transport failures.
    pub max_retries: u32,
    /// First backoff step; doubles per retry.
    pub backoff_base: Duration,
    /// Largest backoff step.
    pub backoff_cap: Duration,
    /// A CRM `Retry-After` longer than this is not waited out inside the client:
    /// the call returns [`crate::crm::CrmError::RateLimited`] so the job can be rescheduled.
    pub max_retry_after: Duration,
    /// Sell only: how long the deal-stage list is trusted (a deal in an unknown
    /// stage refreshes it sooner).
    pub stages_ttl: Duration,
    /// Show e-mail addresses in the audit sink's paths as hashes (`[privacy]
    /// redact_emails`); the request itself still carries the address.
    pub redact_emails: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            requests_per_second: 10,
            burst: 1,
            max_in_flight: 8,
            timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            max_retries: 5,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            stages_ttl: Duration::from_secs(600),
            redact_emails: false,
        }
    }
}

impl From<&CrmConfig> for ClientSettings {
    fn from(c: &CrmConfig) -> Self {
        Self {
            requests_per_second: c.requests_per_second,
            max_in_flight: c.max_in_flight,
            timeout: Duration::from_secs(c.timeout_secs.max(1)),
            ..Self::default()
        }
    }
}

impl ClientSettings {
    /// `[crm]` plus `[privacy] redact_emails`: what a service should use.
    pub fn from_config(config: &Config) -> Self {
        Self {
            redact_emails: config.privacy.redact_emails,
            ..Self::from(&config.crm)
        }
    }

    /// The rate-budget part of these settings.
    pub fn budget(&self) -> BudgetSettings {
        BudgetSettings {
            requests_per_second: self.requests_per_second,
            burst: self.burst,
            max_in_flight: self.max_in_flight,
            ..BudgetSettings::default()
        }
    }
}
