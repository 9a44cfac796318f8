//! Logs and e-mail redaction. Logs are JSON lines when stdout is not a TTY and
//! readable text on a TTY (`--log-format` overrides), filtered by `OFFBOARD_LOG`.
//! With `[privacy] redact_emails`, addresses are shown as a stable hash so the
//! same person can still be followed across lines without being named.
//!
//! Redaction of logs happens in the writer ([`RedactingStdout`]), on the finished
//! line, so it covers every field, message and span of every crate's events, not
//! only the call sites that remember to use [`show_email`]. The API and the CLI
//! redact their JSON with [`redact_emails_in`]; all three use [`hash_email`], so a
//! hash in a log line matches the one the admin API shows.
//!
//! Lines are written by a thread of their own (`tracing-appender`), not by the
//! task that logs: a slow reader of stdout (a container runtime's log pipe) then
//! delays the log, never a webhook's answer. The queue holds [`LOG_QUEUE_LINES`];
//! only when it is full does logging wait, so no line is dropped. [`init`]'s
//! guard writes what is queued when the process ends.
//!
//! Request and job ids: the HTTP layer opens a `request` span with `request_id`
//! and the worker a `job` span with `job_id`; JSON lines list every enclosing span
//! (`spans`, outermost first, and `span`, the innermost), so an id is never hidden
//! by a nested span.

use std::{
    io::{self, IsTerminal, Write},
    sync::atomic::{AtomicBool, Ordering},
};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, prelude::*};

/// How log lines are written to stdout (`--log-format`); `None` at [`init`] picks
/// JSON when stdout is not a terminal and pretty when it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Lines the log writer's queue holds before logging waits for it.
pub const LOG_QUEUE_LINES: usize = 128_000;

/// Keeps the log writer running; dropping it writes the lines still queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global subscriber (once; later calls are ignored). `default_filter`
/// applies when `OFFBOARD_LOG` is not set. Hold the guard until the process ends.
pub fn init(format: Option<LogFormat>, default_filter: &str) -> LogGuard {
    let filter =
        EnvFilter::try_from_env("OFFBOARD_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .lossy(false)
        .thread_name("offboard-log")
        .finish(LineOut);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_writer(writer)).try_init(),
    };
    // A panic (a handler's, caught by the HTTP layer, or a task's) becomes a log
    // line like any other: JSON, redacted, inside its request's or job's span.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => backtrace.to_string(),
            _ => String::new(),
        };
        tracing::error!(panic = %message, %location, %backtrace, "panicked");
    }));
    // A second call installed nothing: its writer is not in use.
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}

static REDACT_LOGS: AtomicBool = AtomicBool::new(false);

/// Turns e-mail redaction of log lines on or off for this process
/// (`[privacy] redact_emails`; `Application::build` applies its config's value).
pub fn set_redact_emails(on: bool) {
    REDACT_LOGS.store(on, Ordering::Relaxed);
}

/// Whether log lines are being redacted.
pub fn redacting_emails() -> bool {
    REDACT_LOGS.load(Ordering::Relaxed)
}

/// Stdout for log lines; while [`set_redact_emails`] is on, every e-mail address
/// in a line (also percent-encoded, as in a logged URL) is replaced by its
/// [`hash_email`] before the line is written. A line is formatted completely and
/// then written in one call, so an address is never split between two writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStdout;

impl<'a> MakeWriter<'a> for RedactingStdout {
    type Writer = LineOut;

    fn make_writer(&'a self) -> Self::Writer {
        LineOut
    }
}

/// The writer [`RedactingStdout`] hands out for one line.
#[derive(Debug)]
pub struct LineOut;

impl Write for LineOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = io::stdout().lock();
        if redacting_emails() && might_hold_email(buf) {
            let text = String::from_utf8_lossy(buf);
            out.write_all(redact_text(&text).as_bytes())?;
        } else {
            out.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

fn might_hold_email(buf: &[u8]) -> bool {
    buf.contains(&b'@') || buf.windows(3).any(|w| w.eq_ignore_ascii_case(b"%40"))
}

/// A stable, non-reversible stand-in for an e-mail address: `email:` plus the first
/// 12 hex digits of SHA-256 of the trimmed, lower-cased address, so the same
/// person gets the same token in logs, the API and the CLI.
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

/// Replaces every e-mail address inside a JSON value's strings with its hash.
pub fn redact_emails_in(v: &mut Value) {
    match v {
        Value::String(s) if might_hold_email(s.as_bytes()) => *s = redact_text(s),
        Value::Array(a) => a.iter_mut().for_each(redact_emails_in),
        Value::Object(o) => o.values_mut().for_each(redact_emails_in),
        _ => {}
    }
}

/// Replaces every e-mail address inside free text (task contents, messages, log
/// lines, URLs) with its hash. An address is `local@domain.tld` (or with `%40`,
/// percent-encoded): the local part runs left over `A-Z a-z 0-9 . _ % + -`, the
/// domain right over `A-Z a-z 0-9 . -` and needs a dot. Inside JSON text an
/// escape such as `\n` just before the address stays intact, so redacted JSON still
/// parses.
pub fn redact_text(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0; // bytes of `s` already in `out`
    let mut i = 0;
    while i < bytes.len() {
        let sep = if bytes[i] == b'@' {
            1
        } else if bytes[i] == b'%' && bytes.get(i + 1..i + 3).is_some_and(|w| w == b"40") {
            3
        } else {
            i += 1;
            continue;
        };
        match address_at(bytes, i, sep, copied) {
            Some((start, end)) => {
                out.push_str(&s[copied..start]);
                out.push_str(&hash_email(&percent_decode(&s[start..end])));
                copied = end;
                i = end;
            }
            None => i += sep,
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// The byte range of the address whose separator (`@` or `%40`, `sep` bytes long)
/// is at `at`, not reaching left of `floor`.
fn address_at(b: &[u8], at: usize, sep: usize, floor: usize) -> Option<(usize, usize)> {
    let is_local =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let is_domain = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-');
    let mut start = at;
    while start > floor && is_local(b[start - 1]) {
        start -= 1;
    }
    // A JSON/Rust escape right before the address (`\n`, `\t`, `\u00e9`) is not part
    // of it: keep the escape whole.
    let backslashes = b[floor..start]
        .iter()
        .rev()
        .take_while(|&&c| c == b'\\')
        .count();
    if backslashes % 2 == 1 && start < at {
        start += if b[start] == b'u' { 5 } else { 1 };
    }
    while start < at && matches!(b[start], b'.' | b'-') {
        start += 1;
    }
    if start >= at {
        return None;
    }
    let mut end = at + sep;
    while end < b.len() && is_domain(b[end]) {
        end += 1;
    }
    while end > at + sep && matches!(b[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = std::str::from_utf8(&b[at + sep..end]).ok()?;
    let labels: Vec<&str> = domain.split('.').collect();
    let tld = labels.last()?;
    let plausible = labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty())
        && tld.len() >= 2
        && tld.bytes().all(|c| c.is_ascii_alphabetic());
    plausible.then_some((start, end))
}

/// `%XX` → the byte it stands for (ASCII only; anything else stays as written).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .filter(u8::is_ascii)
        {
            out.push(char::from(v));
            i += 3;
            continue;
        }
        out.push(char::from(b[i]));
        i += 1;
    }
    out
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
        assert_eq!(v["a"], hash_email("jane@example.com"));
    }

    #[test]
    fn text_redaction_finds_addresses_anywhere() {
        let h = hash_email("jane.doe@example.com");
        for (input, want) in [
            ("jane.doe@example.com", h.clone()),
            ("<Jane.Doe@Example.com>", format!("<{h}>")),
            ("user=jane.doe@example.com&x=1", format!("user={h}&x=1")),
            (
                "/v2/users?email=jane.doe%40example.com&page=1",
                format!("/v2/users?email={h}&page=1"),
            ),
            ("done: jane.doe@example.com.", format!("done: {h}.")),
            ("a@b, c@d.io", format!("a@b, {}", hash_email("c@d.io"))),
            (
                "no address @ all, v1.2@3.4",
                "no address @ all, v1.2@3.4".to_owned(),
            ),
        ] {
            assert_eq!(redact_text(input), want, "{input}");
        }
    }

    #[test]
    fn redacted_json_lines_still_parse() {
        let line = serde_json::json!({
            "message": "moved\njane.doe@example.com's records",
            "quoted": "\"jane.doe@example.com\"",
            "unicode": "\u{e9}jane.doe@example.com",
            "url": "https://x.test/v2/users?email=jane.doe%40example.com",
        })
        .to_string();
        let redacted = redact_text(&line);
        assert!(!redacted.contains("jane.doe"), "{redacted}");
        let v: Value = serde_json::from_str(&redacted).unwrap();
        assert!(v["quoted"].as_str().unwrap().contains("email:"));
        // An escape written as \uXXXX right before the address stays whole.
        let escaped = r#"{"m":"\u00e9jane.doe@example.com"}"#;
        let v: Value = serde_json::from_str(&redact_text(escaped)).unwrap();
        assert!(v["m"].as_str().unwrap().starts_with('\u{e9}'), "{v}");
    }
}
