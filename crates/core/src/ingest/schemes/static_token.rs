//! `static_token`: a configured header must equal one of the secrets. This is how
//! Okta event hooks authenticate (the "Authentication field/secret" pair, sent as
//! is on every delivery). The body is NOT signed, so TLS carries the integrity and
//! dedupe of event ids is the only replay protection.
//!
//! Okta also verifies an endpoint once with a `GET` carrying
//! `x-okta-verification-challenge`; [`StaticToken::verification_challenge`] returns
//! the value to echo as `{"verification": "<value>"}`.
//!
//! Comparison hashes both sides with SHA-256 and compares the digests in constant
//! time, so neither the content nor the length of a secret leaks through timing.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::contract::{
    SignError, SignInput, SignatureScheme, SignedRequest, Verified, VerifyError, header,
    optional_header,
};
use crate::config::Secret;

/// Okta's challenge header.
pub const CHALLENGE_HEADER: &str = "x-okta-verification-challenge";
/// The longest challenge echoed back.
const MAX_CHALLENGE: usize = 1024;

/// A `static_token` source's verifier: keeps only SHA-256 digests of the secrets.
pub struct StaticToken {
    header: String,
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticToken")
            .field("header", &self.header)
            .field("secrets", &format_args!("{} redacted", self.digests.len()))
            .finish()
    }
}

impl StaticToken {
    /// `header` must carry one of `secrets` exactly.
    pub fn new(header: String, secrets: Vec<Secret>) -> Self {
        Self {
            header,
            digests: secrets
                .iter()
                .map(|s| Sha256::digest(s.expose().as_bytes()).into())
                .collect(),
        }
    }

    fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Fold over every secret so the time does not depend on which one matched.
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |acc, s| acc | s.ct_eq(&d))
            .into()
    }
}

impl SignatureScheme for StaticToken {
    fn verify(&self, req: &SignedRequest<'_>) -> Result<Verified, VerifyError> {
        let presented = header(req.headers, &self.header)?;
        if self.matches(presented) {
            Ok(Verified { message_id: None })
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn signs_timestamp(&self) -> bool {
        false
    }

    fn sign(&self, _input: &SignInput<'_>) -> Result<Vec<(String, String)>, SignError> {
        Err(SignError::Unsupported {
            scheme: "static_token",
            reason: "the sender sends the secret itself",
        })
    }

    /// The challenge value to echo. When the token header is present it must be
    /// right; Okta's documentation does not say whether the verification `GET`
    /// carries it, so its absence is accepted (echoing a value grants nothing).
    fn verification_challenge(&self, headers: &HeaderMap) -> Option<Result<String, VerifyError>> {
        Some((|| {
            if let Some(presented) = optional_header(headers, &self.header)?
                && !self.matches(presented)
            {
                return Err(VerifyError::BadSignature);
            }
            let challenge = header(headers, CHALLENGE_HEADER)?;
            if challenge.is_empty() || challenge.len() > MAX_CHALLENGE {
                return Err(VerifyError::malformed(
                    CHALLENGE_HEADER,
                    format!("must be 1 to {MAX_CHALLENGE} characters"),
                ));
            }
            Ok(challenge.to_owned())
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme() -> StaticToken {
        StaticToken::new(
            "authorization".into(),
            vec![Secret::new("old".into()), Secret::new("new-secret".into())],
        )
    }

    #[test]
    fn any_secret_matches_and_nothing_else() {
        let s = scheme();
        for (token, ok) in [
            ("old", true),
            ("new-secret", true),
            ("new", false),
            ("", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert("authorization", token.parse().unwrap());
            let req = SignedRequest {
                method: "POST",
                headers: &h,
                body: b"{}",
                now: 0,
            };
            assert_eq!(s.verify(&req).is_ok(), ok, "{token}");
        }
    }

    #[test]
    fn challenge_is_echoed_unless_the_token_is_wrong() {
        let s = scheme();
        let mut h = HeaderMap::new();
        h.insert(CHALLENGE_HEADER, "abc".parse().unwrap());
        assert_eq!(s.verification_challenge(&h), Some(Ok("abc".into())));
        h.insert("authorization", "wrong".parse().unwrap());
        assert_eq!(
            s.verification_challenge(&h),
            Some(Err(VerifyError::BadSignature))
        );
        h.insert("authorization", "old".parse().unwrap());
        assert_eq!(s.verification_challenge(&h), Some(Ok("abc".into())));
        h.remove(CHALLENGE_HEADER);
        assert!(matches!(
            s.verification_challenge(&h),
            Some(Err(VerifyError::MissingHeader(_)))
        ));
    }
}
