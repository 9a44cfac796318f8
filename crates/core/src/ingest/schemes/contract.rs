//! What every signature scheme shares: the request a signature covers, what a
//! valid one yields, why one is refused, the [`SignatureScheme`] trait, and the
//! header and timestamp checks each scheme applies the same way. It imports
//! nothing from the schemes or from [`super::Spec`], so each scheme depends on
//! this module and the parent depends on both, never the other way round.

use std::fmt;

use axum::http::HeaderMap;
use chrono::DateTime;

/// The parts of a request a signature can cover.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method (`POST`).
    pub method: &'a str,
    /// Every request header; a scheme reads only its own and refuses repeats.
    pub headers: &'a HeaderMap,
    /// The raw body, exactly as received.
    pub body: &'a [u8],
    /// Current Unix time in seconds.
    pub now: i64,
}

/// What a sender signs (for [`SignatureScheme::sign`]: demo, tests, load generators).
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    /// HTTP method (`POST`).
    pub method: &'a str,
    /// The raw body.
    pub body: &'a [u8],
    /// The send time, Unix seconds.
    pub now: i64,
    /// The message id, for schemes that send one.
    pub message_id: &'a str,
}

/// What a valid signature tells us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// The scheme's message id (dedupe key), when it has one.
    pub message_id: Option<String>,
}

/// Why a request is rejected. All map to 401; the code tells the sender why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(String),
    /// A header is present but unusable.
    #[error("malformed header {header}: {problem}")]
    Malformed {
        /// The header's name as configured (case as the scheme spells it).
        header: String,
        /// What is wrong with its value, for the sender.
        problem: String,
    },
    /// The signed timestamp is outside the tolerance window.
    #[error("timestamp outside the allowed window of ±{tolerance_secs}s")]
    Stale {
        /// The source's `tolerance_secs`: how far, either way, from the receiver's
        /// clock a timestamp may be.
        tolerance_secs: u64,
    },
    /// No signature matched any secret.
    #[error("no signature matches")]
    BadSignature,
}

impl VerifyError {
    /// The 401's JSON `error.code` (`missing_signature`, `malformed_signature`,
    /// `stale_timestamp`, `bad_signature`); `stale_timestamp` is counted as the
    /// `stale` outcome, the rest as `bad_signature`. Part of the HTTP contract.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_signature",
            Self::Malformed { .. } => "malformed_signature",
            Self::Stale { .. } => "stale_timestamp",
            Self::BadSignature => "bad_signature",
        }
    }

    pub(crate) fn malformed(header: &str, problem: impl Into<String>) -> Self {
        Self::Malformed {
            header: header.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Why a resolved scheme cannot be given its secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The secrets list (`secrets_env` / `secrets_file`) is empty.
    #[error("no secret configured")]
    NoSecret,
    /// A Standard Webhooks secret starts with `whsec_` but the rest is not base64.
    #[error("a whsec_ secret is not valid base64 (secret {position} of the list)")]
    WhsecNotBase64 {
        /// 1-based position in the comma-separated list, so rotation lists can be
        /// told apart without printing a secret.
        position: usize,
    },
}

/// Why [`SignatureScheme::sign`] cannot produce headers. Only senders call it (the
/// demo, tests, the load generator), never the receiving path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The scheme was built without a secret.
    #[error("no secret")]
    NoSecret,
    /// The scheme has nothing to sign with.
    #[error("{scheme} cannot sign: {reason}")]
    Unsupported {
        /// The scheme's name.
        scheme: &'static str,
        /// Why, for the caller.
        reason: &'static str,
    },
    /// `now` (Unix seconds) has no RFC 3339 form.
    #[error("timestamp out of range: {0}")]
    TimestampOutOfRange(i64),
    /// A `whsec_` key given to [`StandardWebhooks::sign`] is not base64.
    #[error("a whsec_ secret is not valid base64")]
    WhsecNotBase64,
    /// The HMAC implementation refused the key (it accepts any length, so this
    /// would be a bug in a dependency, reported rather than panicking).
    #[error("the HMAC key was refused")]
    KeyRejected,
}

/// A way of proving a webhook came from the configured sender.
pub trait SignatureScheme: Send + Sync + fmt::Debug {
    /// Checks the request; never panics on any input.
    fn verify(&self, req: &SignedRequest<'_>) -> Result<Verified, VerifyError>;
    /// Whether the signature covers a timestamp (replay window) or only dedupe protects.
    fn signs_timestamp(&self) -> bool;
    /// The headers a sender would send for `input`, signed with the first secret.
    fn sign(&self, input: &SignInput<'_>) -> Result<Vec<(String, String)>, SignError>;
    /// Answers a sender's endpoint-verification `GET` (Okta), if the scheme has one:
    /// `None` when it has none, else the value to echo or why not.
    fn verification_challenge(&self, _headers: &HeaderMap) -> Option<Result<String, VerifyError>> {
        None
    }
}

/// How a scheme protects against replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The signature covers a timestamp checked against ±this many seconds.
    Window(u64),
    /// Nothing time-bound is signed: only the durable dedupe of event ids.
    DedupeOnly,
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Window(secs) => write!(f, "timestamp window ±{secs}s"),
            Self::DedupeOnly => f.write_str("dedupe only (scheme signs no timestamp)"),
        }
    }
}

/// One header as a string; `Malformed` when it is not visible ASCII or repeated.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, VerifyError> {
    optional_header(headers, name)?.ok_or_else(|| VerifyError::MissingHeader(name.to_owned()))
}

/// Like [`header`], but absence is not an error.
pub(crate) fn optional_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::malformed(name, "sent more than once"));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| VerifyError::malformed(name, "not visible ASCII"))
}

/// Parses a Unix-seconds timestamp header and checks it against the window.
pub(crate) fn check_timestamp(
    raw: &str,
    header_name: &str,
    now: i64,
    tolerance_secs: u64,
) -> Result<i64, VerifyError> {
    let ts: i64 = raw
        .trim()
        .parse()
        .map_err(|_| VerifyError::malformed(header_name, "expected Unix seconds"))?;
    in_window(ts, now, tolerance_secs)
}

/// Parses an RFC 3339 timestamp header and checks it against the window.
pub(crate) fn check_rfc3339(
    raw: &str,
    header_name: &str,
    now: i64,
    tolerance_secs: u64,
) -> Result<i64, VerifyError> {
    let ts = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| VerifyError::malformed(header_name, "expected an RFC 3339 timestamp"))?
        .timestamp();
    in_window(ts, now, tolerance_secs)
}

fn in_window(ts: i64, now: i64, tolerance_secs: u64) -> Result<i64, VerifyError> {
    if now.abs_diff(ts) > tolerance_secs {
        return Err(VerifyError::Stale { tolerance_secs });
    }
    Ok(ts)
}

/// Checks a message id header value the way Standard Webhooks bounds `webhook-id`.
pub(crate) fn check_message_id(raw: &str, header_name: &str) -> Result<(), VerifyError> {
    if raw.is_empty() || raw.len() > 256 {
        return Err(VerifyError::malformed(
            header_name,
            "must be 1 to 256 characters",
        ));
    }
    Ok(())
}
