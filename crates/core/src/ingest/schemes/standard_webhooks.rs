//! Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>` (space-separated
//! list; unknown versions ignored). Secrets are `whsec_<base64>` or raw bytes. The
//! key decoding and the MAC are [`crate::signing`]'s, the one definition the
//! outbound webhooks of `notify/` sign with too.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::Mac;

use super::contract::{
    BuildError, SignError, SignInput, SignatureScheme, SignedRequest, Verified, VerifyError,
    check_message_id, check_timestamp, header,
};
use crate::{config::Secret, signing};

/// The Standard Webhooks scheme with one or more keys.
pub struct StandardWebhooks {
    keys: Vec<Vec<u8>>,
    tolerance_secs: u64,
}

impl std::fmt::Debug for StandardWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandardWebhooks")
            .field("keys", &format_args!("{} redacted", self.keys.len()))
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl StandardWebhooks {
    /// Decodes `whsec_` secrets; other secrets are used as raw bytes.
    pub fn new(secrets: Vec<Secret>, tolerance_secs: u64) -> Result<Self, BuildError> {
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                signing::key(s.expose()).map_err(|_| BuildError::WhsecNotBase64 { position: i + 1 })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            keys,
            tolerance_secs,
        })
    }

    /// Signs like a sender would (used by the demo, tests and the load generator).
    pub fn sign(key_secret: &str, id: &str, ts: i64, body: &[u8]) -> Result<String, SignError> {
        let key = signing::key(key_secret).map_err(sign_error)?;
        signing::signature(&key, id, ts, body).map_err(sign_error)
    }
}

fn sign_error(e: signing::KeyError) -> SignError {
    match e {
        signing::KeyError::WhsecNotBase64 => SignError::WhsecNotBase64,
        signing::KeyError::Rejected => SignError::KeyRejected,
    }
}

impl SignatureScheme for StandardWebhooks {
    fn verify(&self, req: &SignedRequest<'_>) -> Result<Verified, VerifyError> {
        let id = header(req.headers, "webhook-id")?;
        let ts_raw = header(req.headers, "webhook-timestamp")?;
        let sigs = header(req.headers, "webhook-signature")?;
        check_message_id(id, "webhook-id")?;
        let ts = check_timestamp(ts_raw, "webhook-timestamp", req.now, self.tolerance_secs)?;
        let candidates: Vec<Vec<u8>> = sigs
            .split(' ')
            .filter_map(|s| s.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, b64)| STANDARD.decode(b64).ok())
            .collect();
        if candidates.is_empty() {
            return Err(VerifyError::BadSignature);
        }
        for key in &self.keys {
            let Ok(mac) = signing::mac(key, id, ts, req.body) else {
                continue;
            };
            for sig in &candidates {
                if mac.clone().verify_slice(sig).is_ok() {
                    return Ok(Verified {
                        message_id: Some(id.to_owned()),
                    });
                }
            }
        }
        Err(VerifyError::BadSignature)
    }

    fn signs_timestamp(&self) -> bool {
        true
    }

    fn sign(&self, input: &SignInput<'_>) -> Result<Vec<(String, String)>, SignError> {
        let key = self.keys.first().ok_or(SignError::NoSecret)?;
        let headers =
            signing::headers(key, input.message_id, input.now, input.body).map_err(sign_error)?;
        Ok(headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(sig: &str, ts: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", ID.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn published_vector() {
        assert_eq!(
            StandardWebhooks::sign(SECRET, ID, TS, BODY).unwrap(),
            EXPECTED
        );
        let scheme = StandardWebhooks::new(
            vec![
                Secret::new("whsec_b3RoZXI=".into()),
                Secret::new(SECRET.into()),
            ],
            300,
        )
        .unwrap();
        let h = headers(&format!("v2,abc {EXPECTED}"), TS);
        let req = SignedRequest {
            method: "POST",
            headers: &h,
            body: BODY,
            now: TS + 10,
        };
        assert_eq!(scheme.verify(&req).unwrap().message_id.as_deref(), Some(ID));
    }

    #[test]
    fn rejects_tampering_and_staleness() {
        let scheme = StandardWebhooks::new(vec![Secret::new(SECRET.into())], 300).unwrap();
        let h = headers(EXPECTED, TS);
        let tampered = SignedRequest {
            method: "POST",
            headers: &h,
            body: br#"{"test": 2432232315}"#,
            now: TS,
        };
        assert_eq!(scheme.verify(&tampered), Err(VerifyError::BadSignature));
        let stale = SignedRequest {
            method: "POST",
            headers: &h,
            body: BODY,
            now: TS + 301,
        };
        assert!(matches!(
            scheme.verify(&stale),
            Err(VerifyError::Stale { .. })
        ));
        let future = SignedRequest {
            method: "POST",
            headers: &h,
            body: BODY,
            now: TS - 301,
        };
        assert!(matches!(
            scheme.verify(&future),
            Err(VerifyError::Stale { .. })
        ));
    }
}
