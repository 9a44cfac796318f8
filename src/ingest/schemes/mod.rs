//! Webhook signature schemes. Each scheme is one small module implementing
//! [`SignatureScheme`]; [`build`] picks one from a source's `scheme` key.
//!
//! Every scheme verifies the RAW request bytes before anything parses them,
//! compares in constant time (`Mac::verify_slice`), and accepts a list of
//! secrets so a sender can rotate keys without downtime.

mod standard_webhooks;

use std::fmt;

use axum::http::HeaderMap;

use crate::config::{Secret, SourceConfig};

pub use standard_webhooks::StandardWebhooks;

/// The parts of a request a signature can cover.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method (`POST`).
    pub method: &'a str,
    #[allow(missing_docs)]
    pub headers: &'a HeaderMap,
    /// The raw body, exactly as received.
    pub body: &'a [u8],
    /// Current Unix time in seconds.
    pub now: i64,
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
        #[allow(missing_docs)]
        header: String,
        #[allow(missing_docs)]
        problem: String,
    },
    /// The signed timestamp is outside the tolerance window.
    #[error("timestamp outside the allowed window of ±{tolerance_secs}s")]
    Stale {
        #[allow(missing_docs)]
        tolerance_secs: u64,
    },
    /// No signature matched any secret.
    #[error("no signature matches")]
    BadSignature,
}

impl VerifyError {
    /// Stable error code for the JSON body and the metrics outcome.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_signature",
            Self::Malformed { .. } => "malformed_signature",
            Self::Stale { .. } => "stale_timestamp",
            Self::BadSignature => "bad_signature",
        }
    }
}

/// A way of proving a webhook came from the configured sender.
pub trait SignatureScheme: Send + Sync + fmt::Debug {
    /// Checks the request; never panics on any input.
    fn verify(&self, req: &SignedRequest<'_>) -> Result<Verified, VerifyError>;
    /// Whether the signature covers a timestamp (replay window) or only dedupe protects.
    fn signs_timestamp(&self) -> bool;
}

/// Builds the scheme a source names.
pub fn build(
    source: &SourceConfig,
    secrets: Vec<Secret>,
) -> Result<Box<dyn SignatureScheme>, String> {
    match source.scheme.as_str() {
        "standard_webhooks" => Ok(Box::new(StandardWebhooks::new(
            secrets,
            source.tolerance_secs,
        )?)),
        other => Err(format!(
            "sources.scheme: unknown scheme {other:?} for source {:?} (expected standard_webhooks)",
            source.name
        )),
    }
}

/// One header as a string; `Malformed` when it is not visible ASCII or repeated.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or_else(|| VerifyError::MissingHeader(name.to_owned()))?;
    if values.next().is_some() {
        return Err(VerifyError::Malformed {
            header: name.to_owned(),
            problem: "sent more than once".into(),
        });
    }
    value.to_str().map_err(|_| VerifyError::Malformed {
        header: name.to_owned(),
        problem: "not visible ASCII".into(),
    })
}

/// Parses a Unix-seconds timestamp header and checks it against the window.
pub(crate) fn check_timestamp(
    raw: &str,
    header_name: &str,
    now: i64,
    tolerance_secs: u64,
) -> Result<i64, VerifyError> {
    let ts: i64 = raw.trim().parse().map_err(|_| VerifyError::Malformed {
        header: header_name.to_owned(),
        problem: "expected Unix seconds".into(),
    })?;
    if now.abs_diff(ts) > tolerance_secs {
        return Err(VerifyError::Stale { tolerance_secs });
    }
    Ok(ts)
}
