//! Vendor schemes as named [`super::HmacScheme`] configurations: one table, one row per
//! vendor, each from the vendor's public webhook documentation. A source may
//! override any field of its preset with `[sources.hmac]`, so a vendor that changes
//! a header name needs a config edit, not a release.

use super::hmac::{Algorithm, Encoding, Preset, TimestampFormat};

/// Every preset, in the order `offboard sources` and error messages list them.
pub const PRESETS: &[Preset] = &[
    // BambooHR: hex HMAC-SHA256(private key, raw body followed by X-BambooHR-Timestamp).
    // The docs don't show the timestamp's format, so both Unix seconds and ISO 8601 are read.
    Preset {
        name: "bamboohr",
        header: "X-BambooHR-Signature",
        prefix: "",
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        signed: "{body}{timestamp}",
        timestamp_header: Some("X-BambooHR-Timestamp"),
        timestamp_format: TimestampFormat::Auto,
        message_id_header: None,
    },
    // HiBob (Bob): base64 HMAC-SHA512(secret, raw body); no timestamp, no message id.
    Preset {
        name: "hibob",
        header: "Bob-Signature",
        prefix: "",
        algorithm: Algorithm::Sha512,
        encoding: Encoding::Base64,
        signed: "{body}",
        timestamp_header: None,
        timestamp_format: TimestampFormat::Unix,
        message_id_header: None,
    },
    // Gusto: hex HMAC-SHA256(verification_token, raw body); the payload's `uuid` is the event id.
    Preset {
        name: "gusto",
        header: "X-Gusto-Signature",
        prefix: "",
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        signed: "{body}",
        timestamp_header: None,
        timestamp_format: TimestampFormat::Unix,
        message_id_header: None,
    },
    // Deel: hex HMAC-SHA256(signing key, "POST" followed by the raw body).
    Preset {
        name: "deel",
        header: "x-deel-signature",
        prefix: "",
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        signed: "POST{body}",
        timestamp_header: None,
        timestamp_format: TimestampFormat::Unix,
        message_id_header: None,
    },
    // GitHub and the many senders that copy it: `sha256=` + hex HMAC-SHA256(secret, body);
    // X-GitHub-Delivery is the message id (it is not covered by the signature).
    Preset {
        name: "github",
        header: "X-Hub-Signature-256",
        prefix: "sha256=",
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        signed: "{body}",
        timestamp_header: None,
        timestamp_format: TimestampFormat::Unix,
        message_id_header: Some("X-GitHub-Delivery"),
    },
];

/// The preset whose `scheme` value is `name` (exact, case-sensitive), if any.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}
