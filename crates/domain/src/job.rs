//! Job states and kinds, with their stable string forms (DESIGN.md §4). The store
//! keeps the strings; they are parsed again when read back.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Where a job is in its life. Strings are part of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Runnable now.
    Queued,
    /// Leased by a worker.
    Running,
    /// Waiting for a time: effective date, backoff or the next verification poll.
    Scheduled,
    /// Parked until a person approves, retries or cancels it.
    NeedsReview,
    /// Done.
    Succeeded,
    /// Gave up after `max_attempts` or on a permanent error.
    Failed,
    /// Stopped by an operator or by a reversal event.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        Self::Queued,
        Self::Running,
        Self::Scheduled,
        Self::NeedsReview,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Scheduled => "scheduled",
            Self::NeedsReview => "needs_review",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Terminal states never change again except through `retry`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// Active means the job still intends to act on the CRM user.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Queued | Self::Running | Self::Scheduled | Self::NeedsReview
        )
    }
}

/// A state string that is not one of [`JobState::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown job state {0:?} (expected one of queued, running, scheduled, needs_review, succeeded, failed, cancelled)"
)]
pub struct ParseStateError(pub String);

impl FromStr for JobState {
    type Err = ParseStateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ParseStateError(s.to_owned()))
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a job does when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A termination: decide, reassign, finalize the seat.
    Offboard,
    /// The follow-up of `delete_after`: delete a seat that was deactivated earlier.
    DeleteAfterRetention,
    /// A rehire or cancelled termination: cancel pending work, reactivate if needed.
    Reverse,
}

impl JobKind {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offboard => "offboard",
            Self::DeleteAfterRetention => "delete_after_retention",
            Self::Reverse => "reverse",
        }
    }
}

impl FromStr for JobKind {
    type Err = ParseStateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Offboard, Self::DeleteAfterRetention, Self::Reverse]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseStateError(s.to_owned()))
    }
}
