//! Console sessions without server-side state: the cookie carries its own expiry
//! and a random id, signed with HMAC-SHA256 under a key derived from the admin
//! token. Every replica holds the same token, so every replica derives the same key
//! and accepts the same cookies, with nothing shared in memory or in the store.
//! Changing the admin token ends every session.
//!
//! The CSRF token of a session is another HMAC of the same fields under a distinct
//! label, so it needs no storage either, differs per session, and cannot be
//! turned into a cookie (or a cookie into it).
//!
//! This file does no IO: it turns bytes and instants into answers, and is tested
//! alone.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The cookie's name.
pub(crate) const COOKIE: &str = "offboard_console";

/// What the session key is derived for: a label only this use of the admin token
/// signs, so a MAC made here means nothing anywhere else.
const KEY_LABEL: &[u8] = b"offboard-console-session";

/// The cookie format's version, the first field of the cookie and of what it signs.
const VERSION: &str = "v1";

/// Why a cookie is not a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SessionError {
    /// Not `v1.<expiry>.<id>.<mac>`.
    #[error("malformed session cookie")]
    Malformed,
    /// The MAC does not match: forged, or signed under another admin token.
    #[error("session cookie signature does not verify")]
    BadSignature,
    /// Signed by us, but its time is up.
    #[error("session expired")]
    Expired,
}

/// A signed-in session, as its cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// When it ends (whole seconds: what the cookie carries).
    pub expires_at: DateTime<Utc>,
    /// A random id (hex), which makes every session's cookie and CSRF token its own.
    pub id: String,
}

/// The key sessions are signed with, derived once at start-up.
#[derive(Clone)]
pub(crate) struct SessionKeys {
    key: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(***)")
    }
}

impl SessionKeys {
    /// HMAC-SHA256 keyed by the admin token over [`KEY_LABEL`]: the token never
    /// signs a cookie itself, and the key can't be turned back into the token.
    pub fn derive(admin_token: &Secret) -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(&mac_of(admin_token.expose().as_bytes(), KEY_LABEL));
        Self { key }
    }

    /// A new session ending at `expires_at`, with a fresh random id.
    pub fn issue(&self, expires_at: DateTime<Utc>) -> Session {
        let id: [u8; 16] = rand::random();
        Session {
            // The cookie carries whole seconds; so does the session from the start.
            expires_at: DateTime::from_timestamp(expires_at.timestamp(), 0).unwrap_or(expires_at),
            id: hex::encode(id),
        }
    }

    /// The cookie's value for `session`: `v1.<expiry unix secs>.<id>.<mac hex>`.
    pub fn cookie_value(&self, session: &Session) -> String {
        let fields = fields(session);
        let mac = hex::encode(mac_of(&self.key, fields.as_bytes()));
        format!("{fields}.{mac}")
    }

    /// The session a cookie value proves at `now`. The MAC is checked (in
    /// constant time) before anything the cookie says is believed.
    pub fn verify(&self, value: &str, now: DateTime<Utc>) -> Result<Session, SessionError> {
        let (fields, mac) = value.rsplit_once('.').ok_or(SessionError::Malformed)?;
        let mac = hex::decode(mac).map_err(|_| SessionError::Malformed)?;
        let mut check =
            HmacSha256::new_from_slice(&self.key).map_err(|_| SessionError::Malformed)?;
        check.update(fields.as_bytes());
        check
            .verify_slice(&mac)
            .map_err(|_| SessionError::BadSignature)?;
        let mut parts = fields.split('.');
        let (Some(VERSION), Some(expiry), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Malformed);
        };
        let expires_at = expiry
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or(SessionError::Malformed)?;
        if now >= expires_at {
            return Err(SessionError::Expired);
        }
        Ok(Session {
            expires_at,
            id: id.to_owned(),
        })
    }

    /// The session's CSRF token: what every form of the session carries.
    pub fn csrf(&self, session: &Session) -> String {
        let message = format!("csrf.{}", fields(session));
        hex::encode(mac_of(&self.key, message.as_bytes()))
    }

    /// Whether `presented` is the session's CSRF token (constant time).
    pub fn csrf_matches(&self, session: &Session, presented: &str) -> bool {
        let expected = self.csrf(session);
        !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
    }
}

/// What a cookie signs: version, expiry and id.
fn fields(session: &Session) -> String {
    format!(
        "{VERSION}.{}.{}",
        session.expires_at.timestamp(),
        session.id
    )
}

fn mac_of(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so this constructor cannot fail; should it
    // ever, an all-zero MAC would verify nothing a real key signed.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => vec![0; 32],
    }
}

/// The value of a `Cookie` header's `name`, if it sets one.
pub(crate) fn cookie_in<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(token: &str) -> SessionKeys {
        SessionKeys::derive(&Secret::new(token.to_owned()))
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn a_cookie_verifies_until_it_expires_on_any_process_with_the_same_token() {
        let k = keys("admin-token");
        let s = k.issue(at(1_000));
        let value = k.cookie_value(&s);
        assert_eq!(k.verify(&value, at(999)), Ok(s.clone()));
        assert_eq!(keys("admin-token").verify(&value, at(999)), Ok(s));
        assert_eq!(k.verify(&value, at(1_000)), Err(SessionError::Expired));
        assert_eq!(
            keys("other-token").verify(&value, at(999)),
            Err(SessionError::BadSignature)
        );
    }

    #[test]
    fn a_changed_field_or_a_made_up_cookie_does_not_verify() {
        let k = keys("admin-token");
        let value = k.cookie_value(&k.issue(at(1_000)));
        // A later expiry with the old MAC.
        let longer = value.replacen(".1000.", ".9999.", 1);
        assert_eq!(k.verify(&longer, at(1)), Err(SessionError::BadSignature));
        for junk in ["", "v1", "v1.1000.abc", "v1.1000.abc.zz", "a.b.c.d.e"] {
            assert!(k.verify(junk, at(1)).is_err(), "{junk}");
        }
        // A correctly signed value of the wrong shape is still refused.
        let fields = "v2.1000.abc";
        let forged = format!(
            "{fields}.{}",
            hex::encode(mac_of(&k.key, fields.as_bytes()))
        );
        assert_eq!(k.verify(&forged, at(1)), Err(SessionError::Malformed));
    }

    #[test]
    fn csrf_tokens_are_per_session_and_are_not_cookie_macs() {
        let k = keys("admin-token");
        let (a, b) = (k.issue(at(1_000)), k.issue(at(1_000)));
        assert_ne!(a.id, b.id);
        let token = k.csrf(&a);
        assert!(k.csrf_matches(&a, &token));
        assert!(!k.csrf_matches(&b, &token));
        assert!(!k.csrf_matches(&a, ""));
        assert!(!k.cookie_value(&a).ends_with(&token));
    }

    #[test]
    fn the_cookie_header_is_read_by_name() {
        let h = "theme=dark; offboard_console=v1.1.a.b; x=y";
        assert_eq!(cookie_in(h, COOKIE), Some("v1.1.a.b"));
        assert_eq!(cookie_in("offboard_console_x=1", COOKIE), None);
    }
}
