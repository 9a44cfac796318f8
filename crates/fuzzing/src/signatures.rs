//! The signature targets: hostile requests against the schemes offboard ships
//! ([`signature_headers`]), and hostile scheme settings against their own
//! signatures ([`scheme_verify`]).

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use offboard_core::{
    config::{Secret, SourceConfig},
    ingest::schemes::{
        Replay, SignInput, SignatureScheme, SignedRequest, Spec, Verified, VerifyError,
    },
};

use crate::input::{first_line, headers, sections};

/// "Now" when a request's first line is not a Unix time.
pub(crate) const NOW: i64 = 1_800_000_000;

/// The secrets every scheme of [`signature_headers`] holds: two, as during a
/// rotation (the first is what [`crate::seeds`] signs with).
pub(crate) const SECRETS: [&str; 2] = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "rotated-secret"];

/// The sources [`signature_headers`] verifies against: every scheme and preset,
/// and custom HMAC templates covering each placeholder, format and encoding.
pub(crate) const SOURCES: &[&str] = &[
    "name = \"sw\"\nscheme = \"standard_webhooks\"",
    "name = \"bamboohr\"\nscheme = \"bamboohr\"",
    "name = \"hibob\"\nscheme = \"hibob\"",
    "name = \"gusto\"\nscheme = \"gusto\"",
    "name = \"deel\"\nscheme = \"deel\"",
    "name = \"github\"\nscheme = \"github\"",
    "name = \"custom\"\nscheme = \"hmac\"\n[hmac]\nheader = \"X-Signature\"\nprefix = \"t=\"\nsigned = \"{timestamp}.{body}\"\ntimestamp_header = \"X-Timestamp\"",
    "name = \"custom512\"\nscheme = \"hmac\"\n[hmac]\nheader = \"X-Sig\"\nalgorithm = \"sha512\"\nencoding = \"base64\"\nsigned = \"{method} {message_id} {timestamp} {body}\"\ntimestamp_header = \"X-Ts\"\ntimestamp_format = \"rfc3339\"\nmessage_id_header = \"X-Id\"",
    "name = \"auto\"\nscheme = \"bamboohr\"\n[hmac]\ntimestamp_format = \"auto\"\nmessage_id_header = \"X-Delivery\"",
    "name = \"okta\"\nscheme = \"static_token\"",
];

/// A source table (the keys of one `[[sources]]` entry) from TOML.
pub(crate) fn source(text: &str) -> Option<SourceConfig> {
    toml::from_str(text).ok()
}

fn secrets(list: &[&str]) -> Vec<Secret> {
    list.iter().map(|s| Secret::new((*s).to_owned())).collect()
}

/// The schemes of [`SOURCES`], built once.
pub(crate) fn schemes() -> &'static [(Spec, Box<dyn SignatureScheme>)] {
    static SCHEMES: OnceLock<Vec<(Spec, Box<dyn SignatureScheme>)>> = OnceLock::new();
    SCHEMES.get_or_init(|| {
        SOURCES
            .iter()
            .filter_map(|text| {
                let spec = Spec::resolve(&source(text)?).ok()?;
                let scheme = spec.clone().build(secrets(&SECRETS)).ok()?;
                Some((spec, scheme))
            })
            .collect()
    })
}

/// A request (first line: the receiver's Unix time; then header lines; a line
/// `%%`; the body) verified by every shipped scheme, and offered to each as a
/// verification challenge.
pub fn signature_headers(data: &[u8]) {
    let [head, body] = sections(data);
    let (now, lines) = first_line(head);
    let now = std::str::from_utf8(now)
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(NOW);
    let headers = headers(lines);
    for (spec, scheme) in schemes() {
        check_verify(spec, scheme.as_ref(), &headers, body, now);
        if let Some(Ok(challenge)) = scheme.verification_challenge(&headers) {
            assert!(
                !challenge.is_empty() && challenge.len() <= 1024,
                "challenge of {} bytes echoed",
                challenge.len()
            );
        }
    }
}

/// Verifies one request and checks what any answer must be.
fn check_verify(
    spec: &Spec,
    scheme: &dyn SignatureScheme,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Option<Verified> {
    let req = SignedRequest {
        method: "POST",
        headers,
        body,
        now,
    };
    match scheme.verify(&req) {
        Ok(verified) => {
            if let Some(id) = &verified.message_id {
                assert!(
                    !id.is_empty() && id.len() <= 256,
                    "{spec:?}: a message id of {} bytes was accepted",
                    id.len()
                );
            }
            if !matches!(spec, Spec::StaticToken { .. }) {
                let mut changed = body.to_vec();
                changed.push(b'\n');
                let tampered = SignedRequest {
                    body: &changed,
                    ..req
                };
                assert_eq!(
                    scheme.verify(&tampered),
                    Err(VerifyError::BadSignature),
                    "{spec:?}: a changed body still verifies"
                );
            }
            Some(verified)
        }
        Err(e) => {
            assert!(!e.to_string().is_empty() && !e.code().is_empty());
            None
        }
    }
}

/// The message id [`scheme_verify`] signs.
const MESSAGE_ID: &str = "msg_2Vq1fuzz";

/// A source's scheme settings (the keys of one `[[sources]]` table, as TOML), a
/// line `%%`, its secrets (one a line), a line `%%`, and a body. A scheme that
/// resolves from the settings and can sign must verify what it signed at once,
/// refuse it with one byte more of body, and, when it signs a timestamp, refuse it
/// once the window has passed. Whatever the settings, nothing panics.
pub fn scheme_verify(data: &[u8]) {
    let [settings, secret_lines, body] = sections(data);
    let Some(config) = std::str::from_utf8(settings).ok().and_then(source) else {
        return;
    };
    let spec = match Spec::resolve(&config) {
        Ok(spec) => spec,
        Err(e) => {
            assert!(
                e.to_string().starts_with("sources."),
                "a scheme error must name its key: {e}"
            );
            return;
        }
    };
    let _ = (spec.describe(), spec.replay(), spec.message_id_header());
    let secrets: Vec<Secret> = String::from_utf8_lossy(secret_lines)
        .lines()
        .map(|s| Secret::new(s.to_owned()))
        .collect();
    let Ok(scheme) = spec.clone().build(secrets) else {
        return;
    };
    let input = SignInput {
        method: "POST",
        body,
        now: NOW,
        message_id: MESSAGE_ID,
    };
    let Ok(pairs) = scheme.sign(&input) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &pairs {
        // What arrives is what an HTTP parser makes of the line: a value without
        // the whitespace around it.
        let arrives = value.trim_matches([' ', '\t']) == value;
        let name = HeaderName::from_bytes(name.as_bytes());
        let value = HeaderValue::from_str(value);
        let (Ok(name), Ok(value), true) = (name, value, arrives) else {
            panic!("{spec:?} signs a header no HTTP request can carry: {pairs:?}");
        };
        headers.append(name, value);
    }
    let verified = check_verify(&spec, scheme.as_ref(), &headers, body, NOW);
    let Some(verified) = verified else {
        panic!("{spec:?} refuses its own signature {pairs:?}");
    };
    if spec.message_id_header().is_some() {
        assert_eq!(verified.message_id.as_deref(), Some(MESSAGE_ID), "{spec:?}");
    }
    if let Replay::Window(tolerance) = spec.replay()
        && let Some(later) = i64::try_from(tolerance)
            .ok()
            .and_then(|t| NOW.checked_add(t)?.checked_add(1))
    {
        let stale = SignedRequest {
            method: "POST",
            headers: &headers,
            body,
            now: later,
        };
        assert!(
            matches!(scheme.verify(&stale), Err(VerifyError::Stale { .. })),
            "{spec:?}: a signature past its window verifies"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_source_builds() {
        assert_eq!(schemes().len(), SOURCES.len());
    }
}
