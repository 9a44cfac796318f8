//! Standard Webhooks signing, as a sender does it: the three `webhook-*` headers
//! over `id.timestamp.body`. The signature comes from the service's own
//! [`StandardWebhooks::sign`], so a test that signs with it checks the receiver,
//! not a second implementation of the scheme (`tests/sources.rs` checks the
//! scheme itself against published vectors and the `standardwebhooks` crate).

use hmac::{Hmac, Mac};
use offboard_core::ingest::schemes::StandardWebhooks;
use sha2::{Sha256, Sha512};

/// The current Unix time in seconds, the `webhook-timestamp` a sender would put.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `webhook-id`, `webhook-timestamp` and `webhook-signature` for `body` signed
/// with `secret` (`whsec_…` or raw key text) at `ts`.
///
/// Panics on a `whsec_` secret that is not base64: a test's own constant is wrong.
pub fn headers(secret: &str, id: &str, ts: i64, body: &str) -> Vec<(&'static str, String)> {
    let sig = StandardWebhooks::sign(secret, id, ts, body.as_bytes())
        .unwrap_or_else(|e| panic!("cannot sign with {secret:?}: {e}"));
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sig),
    ]
}

/// A POST of `body` to `url`, signed now with `secret` under message id `id`, as
/// JSON. The caller may add headers before sending.
pub fn post(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    id: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    post_at(http, url, secret, id, body, now())
}

/// [`post`], signed at Unix time `ts`: what a sender whose clock agrees with a
/// receiver on a test's manual clock would send (the receiver checks the
/// timestamp against its own "now").
pub fn post_at(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    id: &str,
    body: &str,
    ts: i64,
) -> reqwest::RequestBuilder {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers(secret, id, ts, body) {
        req = req.header(name, value);
    }
    req
}

/// HMAC-SHA256 of `parts` concatenated, with `key`: the primitive under the
/// vendor schemes (GitHub, BambooHR, HiBob, …), for tests that build a vendor's
/// signature by hand, independently of the service's scheme code.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    parts.iter().for_each(|p| m.update(p));
    m.finalize().into_bytes().to_vec()
}

/// HMAC-SHA512 of `parts` concatenated, with `key` (see [`hmac_sha256`]).
pub fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes a key of any length");
    parts.iter().for_each(|p| m.update(p));
    m.finalize().into_bytes().to_vec()
}
