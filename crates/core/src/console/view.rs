//! How the console shows values: times and ages, states, e-mail addresses and
//! free text under `[privacy] redact_emails`, JSON. Every page goes through these,
//! so an address can't be shown unredacted by one page and hashed by another.
//! maud escapes every spliced value; nothing here builds markup from strings.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde_json::Value;

use crate::{domain::JobState, telemetry};

/// Redaction as `[privacy] redact_emails` asks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Show {
    /// Hash every e-mail address shown.
    pub redact: bool,
}

impl Show {
    /// An e-mail address, or its hash.
    pub fn email(self, email: &str) -> String {
        telemetry::show_email(email, self.redact)
    }

    /// Free text (an error, a reason) with any address in it hashed.
    pub fn text(self, text: &str) -> String {
        if self.redact {
            telemetry::redact_text(text)
        } else {
            text.to_owned()
        }
    }

    /// A JSON value with every address in it hashed, as compact text.
    pub fn json(self, value: &Value) -> String {
        let mut v = value.clone();
        if self.redact {
            telemetry::redact_emails_in(&mut v);
        }
        v.to_string()
    }

    /// A JSON value with every address in it hashed, indented.
    pub fn json_pretty(self, value: &Value) -> String {
        let mut v = value.clone();
        if self.redact {
            telemetry::redact_emails_in(&mut v);
        }
        serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
    }
}

/// An instant as the console shows it: UTC, to the second.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `<time>` with the machine-readable instant and the shown one.
pub(crate) fn time_tag(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (time(at)) } }
}

/// How long from `since` to `now`, in the two largest units ("3 h 12 min").
pub(crate) fn age(now: DateTime<Utc>, since: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// The state as a labelled badge (the word is always there: colour only repeats it).
pub(crate) fn state_badge(state: JobState) -> Markup {
    html! { span class={ "state state-" (state.as_str()) } { (state_label(state)) } }
}

/// The state in words.
pub(crate) fn state_label(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Scheduled => "scheduled",
        JobState::NeedsReview => "needs review",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// Whether a job in `state` may still change without a person: the job page
/// refreshes itself only then.
pub(crate) fn is_moving(state: JobState) -> bool {
    matches!(
        state,
        JobState::Queued | JobState::Running | JobState::Scheduled
    )
}

/// The console's link to a job.
pub(crate) fn job_href(id: &str) -> String {
    format!("/console/jobs/{}", path_segment(id))
}

/// `s` safe as one path segment: job ids are UUIDs, but a link is built from
/// whatever the URL said, so anything else is percent-encoded.
pub(crate) fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `s` encoded for a query string value.
pub(crate) fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_two_largest_units() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(age(t(100), t(58)), "42 s");
        assert_eq!(age(t(4000), t(0)), "1 h 6 min");
        assert_eq!(age(t(90_000), t(0)), "1 d 1 h");
        assert_eq!(age(t(0), t(10)), "0 s");
    }

    #[test]
    fn links_and_queries_encode_what_they_carry() {
        assert_eq!(path_segment("0193-ab_C"), "0193-ab_C");
        assert_eq!(path_segment("../x?y"), "%2E%2E%2Fx%3Fy");
        assert_eq!(query_value("a b@c.d"), "a%20b%40c.d");
    }

    #[test]
    fn redaction_covers_addresses_in_text_and_json() {
        let show = Show { redact: true };
        assert!(!show.email("jane@example.com").contains("jane"));
        assert!(!show.text("no user jane@example.com").contains("jane"));
        let v = serde_json::json!({ "to": ["jane@example.com"] });
        assert!(!show.json(&v).contains("jane"));
        assert!(
            Show { redact: false }
                .text("jane@example.com")
                .contains("jane")
        );
    }
}
