//! The Standard Webhooks signature (standardwebhooks.com), defined once: how a
//! `whsec_…` secret becomes a key, and what `v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`
//! is computed over. Both directions use it: `ingest/schemes/standard_webhooks.rs`
//! verifies inbound webhooks with [`mac`], `notify/` signs outbound ones with
//! [`signature`]. A leaf: it imports nothing of the crate but nothing else either,
//! so the receiver and the delivery side share it without reaching each other.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a secret cannot sign or verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A `whsec_` secret whose rest is not base64.
    #[error("the whsec_ secret is not base64 after its prefix")]
    WhsecNotBase64,
    /// HMAC refused the key (it accepts any length, so this does not happen in practice).
    #[error("the key was rejected by HMAC")]
    Rejected,
}

/// The key bytes of a secret: `whsec_<base64>` decoded, any other secret as its
/// raw bytes (as the Standard Webhooks libraries do).
pub fn key(secret: &str) -> Result<Vec<u8>, KeyError> {
    match secret.strip_prefix("whsec_") {
        Some(b64) => STANDARD.decode(b64).map_err(|_| KeyError::WhsecNotBase64),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// The HMAC over what a Standard Webhooks signature covers: `{id}.{ts}.{body}`.
/// Verifiers compare it with `verify_slice` (constant time).
pub fn mac(key: &[u8], id: &str, ts: i64, body: &[u8]) -> Result<Hmac<Sha256>, KeyError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| KeyError::Rejected)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The `webhook-signature` value for one key: `v1,<base64 MAC>`.
pub fn signature(key: &[u8], id: &str, ts: i64, body: &[u8]) -> Result<String, KeyError> {
    let mac = mac(key, id, ts, body)?;
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The three headers a Standard Webhooks sender puts on a request.
pub fn headers(
    key: &[u8],
    id: &str,
    ts: i64,
    body: &[u8],
) -> Result<[(&'static str, String); 3], KeyError> {
    Ok([
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", signature(key, id, ts, body)?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_vector() {
        let key = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            )
            .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(super::key("whsec_!!"), Err(KeyError::WhsecNotBase64));
        assert_eq!(super::key("raw").unwrap(), b"raw");
    }
}
