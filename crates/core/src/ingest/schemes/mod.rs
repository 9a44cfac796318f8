//! Webhook signature schemes. Each scheme is one small private module implementing
//! [`SignatureScheme`], re-exported here; [`Spec::resolve`] reads a source's
//! `scheme` key (and its `[sources.hmac]` table) without touching secrets, and
//! [`Spec::build`] adds the secrets. [`super::Source::build`] does both for one
//! source.
//!
//! - [`StandardWebhooks`]: `webhook-id` / `webhook-timestamp` / `webhook-signature`.
//! - [`HmacScheme`]: one configurable HMAC scheme; the vendor schemes (`bamboohr`,
//!   `hibob`, `gusto`, `deel`, `github`) are named rows of [`PRESETS`] over it.
//! - [`StaticToken`]: a header that must equal a secret (Okta event hooks), plus
//!   Okta's one-time `GET` verification challenge.
//!
//! Every scheme verifies the RAW request bytes and parses nothing of the body,
//! compares in constant time, accepts a list of secrets so a sender can rotate keys
//! without downtime, and never panics on any input. (The receiver may look for an
//! unsigned set-up ping before calling [`SignatureScheme::verify`], but only for a
//! source configured with `[sources.ping] signed = false`.)

mod hmac;
mod presets;
mod standard_webhooks;
mod static_token;

use std::fmt;

use axum::http::HeaderMap;
use chrono::DateTime;

use crate::config::{Secret, SourceConfig};

pub use self::hmac::{
    Algorithm, Encoding, HmacConfigError, HmacScheme, HmacSpec, Preset, TemplateError,
    TimestampFormat,
};
pub use presets::PRESETS;
pub use standard_webhooks::StandardWebhooks;
pub use static_token::{CHALLENGE_HEADER, StaticToken};

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
    /// Stable error code for the JSON body and the metrics outcome.
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

/// Why a source's scheme settings are refused (before any secret is read). Each
/// message starts with the `sources.*` key to edit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `[sources.hmac]` on a scheme that is neither `hmac` nor a preset.
    #[error(
        "sources.hmac: only for scheme = \"hmac\" or a preset ({}), not {scheme:?}",
        preset_names()
    )]
    HmacTableMisplaced {
        /// The source's `scheme`.
        scheme: String,
    },
    /// `token_header` on a scheme other than `static_token`.
    #[error("sources.token_header: only for scheme = \"static_token\", not {scheme:?}")]
    TokenHeaderMisplaced {
        /// The source's `scheme`.
        scheme: String,
    },
    /// `token_header` is not a possible HTTP header name.
    #[error("sources.token_header: {name:?} is not a valid HTTP header name")]
    BadTokenHeader {
        /// The value as written.
        name: String,
    },
    /// `scheme` names no scheme offboard knows.
    #[error("sources.scheme: unknown scheme {scheme:?} (expected one of {})", scheme_names().join(", "))]
    UnknownScheme {
        /// The value as written.
        scheme: String,
    },
    /// The HMAC settings (preset plus `[sources.hmac]`) do not hold together.
    #[error(transparent)]
    Hmac(#[from] HmacConfigError),
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

fn preset_names() -> String {
    presets::PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
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

/// A source's scheme, resolved from configuration, before any secret is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `standard_webhooks` with its tolerance.
    StandardWebhooks {
        /// ± seconds `webhook-timestamp` may differ from the receiver's clock.
        tolerance_secs: u64,
    },
    /// `hmac` or one of its presets.
    Hmac(HmacSpec),
    /// `static_token` with the header that carries it.
    StaticToken {
        /// `token_header`, default `authorization`; already checked to be a valid
        /// header name.
        header: String,
    },
}

/// Every accepted `scheme` value, for error messages.
pub fn scheme_names() -> Vec<&'static str> {
    let mut names = vec!["standard_webhooks"];
    names.extend(presets::PRESETS.iter().map(|p| p.name));
    names.extend(["hmac", "static_token"]);
    names
}

impl Spec {
    /// Reads `scheme`, `[sources.hmac]`, `token_header` and `tolerance_secs`;
    /// the message names the key that is wrong.
    pub fn resolve(source: &SourceConfig) -> Result<Self, SpecError> {
        let scheme = source.scheme.as_str();
        if source.hmac.is_some() && !(scheme == "hmac" || presets::find(scheme).is_some()) {
            return Err(SpecError::HmacTableMisplaced {
                scheme: scheme.to_owned(),
            });
        }
        if source.token_header.is_some() && scheme != "static_token" {
            return Err(SpecError::TokenHeaderMisplaced {
                scheme: scheme.to_owned(),
            });
        }
        match scheme {
            "standard_webhooks" => Ok(Self::StandardWebhooks {
                tolerance_secs: source.tolerance_secs,
            }),
            "static_token" => {
                let header = source
                    .token_header
                    .clone()
                    .unwrap_or_else(|| "authorization".into());
                static_token::check_header_name(&header)?;
                Ok(Self::StaticToken { header })
            }
            _ => {
                let base = if scheme == "hmac" {
                    None
                } else {
                    Some(
                        presets::find(scheme).ok_or_else(|| SpecError::UnknownScheme {
                            scheme: scheme.to_owned(),
                        })?,
                    )
                };
                let overrides = source.hmac.clone().unwrap_or_default();
                Ok(Self::Hmac(HmacSpec::resolve(
                    base,
                    &overrides,
                    source.tolerance_secs,
                )?))
            }
        }
    }

    /// One line: what the sender sends and what is signed.
    pub fn describe(&self) -> String {
        match self {
            Self::StandardWebhooks { .. } => "standard_webhooks: webhook-signature = v1,<base64 HMAC-SHA256(\"{webhook-id}.{webhook-timestamp}.{body}\")>".into(),
            Self::Hmac(spec) => spec.describe(),
            Self::StaticToken { header } => format!("static_token: {header} must equal a secret (body not signed); answers Okta's GET verification challenge"),
        }
    }

    /// How replays are caught.
    pub fn replay(&self) -> Replay {
        match self {
            Self::StandardWebhooks { tolerance_secs } => Replay::Window(*tolerance_secs),
            Self::Hmac(spec) => spec.replay(),
            Self::StaticToken { .. } => Replay::DedupeOnly,
        }
    }

    /// The scheme's message-id header and whether the signature covers it.
    pub fn message_id_header(&self) -> Option<(&str, bool)> {
        match self {
            Self::StandardWebhooks { .. } => Some(("webhook-id", true)),
            Self::Hmac(spec) => spec.message_id_header(),
            Self::StaticToken { .. } => None,
        }
    }

    /// Gives the resolved scheme its secrets (all accepted, the first used by
    /// [`SignatureScheme::sign`]); refuses an empty list.
    pub fn build(self, secrets: Vec<Secret>) -> Result<Box<dyn SignatureScheme>, BuildError> {
        if secrets.is_empty() {
            return Err(BuildError::NoSecret);
        }
        Ok(match self {
            Self::StandardWebhooks { tolerance_secs } => {
                Box::new(StandardWebhooks::new(secrets, tolerance_secs)?)
            }
            Self::Hmac(spec) => Box::new(HmacScheme::new(spec, secrets)),
            Self::StaticToken { header } => Box::new(StaticToken::new(header, secrets)),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn source(toml_text: &str) -> SourceConfig {
        let c = crate::config::Config::from_toml(toml_text).unwrap();
        c.sources[0].clone()
    }

    #[test]
    fn unknown_scheme_lists_the_choices() {
        let err = Spec::resolve(&source("[[sources]]\nname = \"x\"\nscheme = \"nope\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sources.scheme")
                && err.contains("github")
                && err.contains("static_token"),
            "{err}"
        );
    }

    #[test]
    fn replay_wording() {
        assert_eq!(Replay::Window(300).to_string(), "timestamp window ±300s");
        assert_eq!(
            Replay::DedupeOnly.to_string(),
            "dedupe only (scheme signs no timestamp)"
        );
        let gh = Spec::resolve(&source("[[sources]]\nname = \"x\"\nscheme = \"github\"")).unwrap();
        assert_eq!(gh.replay(), Replay::DedupeOnly);
        let bb = Spec::resolve(&source(
            "[[sources]]\nname = \"x\"\nscheme = \"bamboohr\"\ntolerance_secs = 60",
        ))
        .unwrap();
        assert_eq!(bb.replay(), Replay::Window(60));
    }

    #[test]
    fn misplaced_tables_are_named() {
        let err = Spec::resolve(&source(
            "[[sources]]\nname = \"x\"\nscheme = \"standard_webhooks\"\n[sources.hmac]\nheader = \"x\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("sources.hmac"), "{err}");
        let err = Spec::resolve(&source(
            "[[sources]]\nname = \"x\"\nscheme = \"github\"\ntoken_header = \"x\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("sources.token_header"), "{err}");
    }
}
