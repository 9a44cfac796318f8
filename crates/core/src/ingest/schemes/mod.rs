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

mod contract;
mod hmac;
mod presets;
mod standard_webhooks;
mod static_token;

use crate::config::{Secret, SourceConfig};

pub use contract::{
    BuildError, Replay, SignError, SignInput, SignatureScheme, SignedRequest, Verified, VerifyError,
};

pub use self::hmac::{
    Algorithm, Encoding, HmacConfigError, HmacScheme, HmacSpec, Preset, TemplateError,
    TimestampFormat,
};
pub use presets::PRESETS;
pub use standard_webhooks::StandardWebhooks;
pub use static_token::{CHALLENGE_HEADER, StaticToken};

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

/// `token_header` is checked at start-up, so `verify` never meets an impossible name.
fn check_token_header(name: &str) -> Result<(), SpecError> {
    axum::http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| SpecError::BadTokenHeader {
            name: name.to_owned(),
        })
}

fn preset_names() -> String {
    presets::PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
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
                check_token_header(&header)?;
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

    /// How replays are caught: a signed timestamp's window, or only the durable
    /// dedupe of event ids (`offboard sources` prints which).
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
