//! Logs and e-mail redaction. Logs are JSON lines when stdout is not a TTY and
//! readable text on a TTY (`--log-format` overrides), filtered by `OFFBOARD_LOG`.
//! With `[privacy] redact_emails`, addresses are shown as a stable hash so the
//! same person can still be followed across lines without being named.

use std::io::IsTerminal;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Installs the global subscriber (once; later calls are ignored). `default_filter`
/// applies when `OFFBOARD_LOG` is not set.
pub fn init(format: Option<LogFormat>, default_filter: &str) {
    let filter =
        EnvFilter::try_from_env("OFFBOARD_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer()).try_init(),
    };
}

/// A stable, non-reversible stand-in for an e-mail address.
pub fn hash_email(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    format!("email:{}", &hex::encode(digest)[..12])
}

/// The address itself, or its hash when redaction is on.
pub fn show_email(email: &str, redact: bool) -> String {
    if redact {
        hash_email(email)
    } else {
        email.to_owned()
    }
}

/// Replaces every e-mail-looking string inside a JSON value with its hash.
pub fn redact_emails_in(v: &mut Value) {
    match v {
        Value::String(s) => {
            if looks_like_email(s) {
                *s = hash_email(s);
            } else if s.contains('@') {
                *s = redact_text(s);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_emails_in),
        Value::Object(o) => o.values_mut().for_each(redact_emails_in),
        _ => {}
    }
}

fn looks_like_email(s: &str) -> bool {
    crate::domain::Email::parse(s).is_ok()
}

/// Replaces e-mail-looking words inside free text (task contents, messages).
pub fn redact_text(s: &str) -> String {
    s.split_inclusive(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')' || c == '"')
        .map(|word| {
            let trimmed = word.trim_end_matches(|c: char| {
                c.is_whitespace() || c == ',' || c == '(' || c == ')' || c == '"' || c == '.'
            });
            if looks_like_email(trimmed) {
                word.replacen(trimmed, &hash_email(trimmed), 1)
            } else {
                word.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_hide_the_address() {
        assert_eq!(
            hash_email("Jane@Example.com"),
            hash_email("jane@example.com")
        );
        let mut v =
            serde_json::json!({"a": "jane@example.com", "b": ["x", "tell boss@example.com now."]});
        redact_emails_in(&mut v);
        let s = v.to_string();
        assert!(!s.contains("example.com"), "{s}");
    }
}
