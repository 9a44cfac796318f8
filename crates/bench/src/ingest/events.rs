//! The requests the load generator sends: N distinct, pre-signed Standard Webhooks
//! events, so signing costs nothing while the clock runs and every accepted request
//! must show up as its own event in the store.

use std::time::{Duration, Instant};

use axum::{body::Bytes, http::HeaderValue};

use offboard_core::ingest::schemes::StandardWebhooks;

/// The signing secret the benchmark's receiver is configured with.
pub const SECRET: &str = "whsec_YmVuY2gtaW5nZXN0LXNlY3JldC0wMTIzNDU2Nzg5";

/// The receiver's `tolerance_secs`; a pool older than this minus a margin is re-signed.
pub const TOLERANCE_SECS: u64 = 300;

/// One signed request.
#[derive(Debug, Clone)]
pub struct Signed {
    /// `webhook-id` (also the canonical event id).
    pub id: HeaderValue,
    /// `webhook-timestamp`.
    pub ts: HeaderValue,
    /// `webhook-signature`.
    pub sig: HeaderValue,
    /// The JSON body.
    pub body: Bytes,
}

/// N signed events with ids `bench-{run}-{i}`.
#[derive(Debug)]
pub struct Pool {
    run: String,
    events: Vec<Signed>,
    signed_at: Instant,
}

impl Pool {
    /// Builds and signs `n` events for the run named `run` (ids stay unique across
    /// runs with different names).
    pub fn new(run: &str, n: usize) -> anyhow::Result<Self> {
        let ts = chrono::Utc::now().timestamp();
        let events = (0..n)
            .map(|i| sign(run, i, ts))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            run: run.to_owned(),
            events,
            signed_at: Instant::now(),
        })
    }

    /// How many events the pool holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Event `i`, signed again with the current time if the pre-signed timestamp is
    /// about to fall outside the receiver's tolerance (only in runs of minutes).
    pub fn get(&self, i: usize) -> anyhow::Result<Signed> {
        let stale = self.signed_at.elapsed() + Duration::from_secs(30)
            >= Duration::from_secs(TOLERANCE_SECS);
        match self.events.get(i) {
            Some(ev) if !stale => Ok(ev.clone()),
            Some(_) => sign(&self.run, i, chrono::Utc::now().timestamp()),
            None => anyhow::bail!("event {i} is outside the pool of {}", self.events.len()),
        }
    }

    /// The event id of event `i`.
    pub fn id(&self, i: usize) -> String {
        event_id(&self.run, i)
    }
}

fn event_id(run: &str, i: usize) -> String {
    format!("bench-{run}-{i}")
}

/// A realistic canonical event (every field DESIGN.md §5 shows), signed at `ts`.
fn sign(run: &str, i: usize, ts: i64) -> anyhow::Result<Signed> {
    let id = event_id(run, i);
    let body = serde_json::json!({
        "id": id,
        "type": "employee.terminated",
        "occurred_at": "2026-12-01T10:00:00Z",
        "employee": {
            "id": format!("E{i}"),
            "email": format!("rep{i}@example.com"),
            "name": format!("Bench Rep {i}"),
            "department": "Sales",
            "country": "US",
            "manager_email": "boss@example.com",
        },
        "termination": {
            "effective_at": "2026-12-15T17:00:00Z",
            "kind": "voluntary",
            "rehire_eligible": true,
            "reason": "Relocation",
        },
        "legal_hold": false,
    })
    .to_string();
    let sig = StandardWebhooks::sign(SECRET, &id, ts, body.as_bytes())
        .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    Ok(Signed {
        id: HeaderValue::try_from(id)?,
        ts: HeaderValue::try_from(ts.to_string())?,
        sig: HeaderValue::try_from(sig)?,
        body: Bytes::from(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use offboard_core::{
        config::Secret,
        ingest::schemes::{SignatureScheme, SignedRequest},
    };

    #[test]
    fn pooled_events_verify_and_are_distinct() {
        let pool = Pool::new("t", 3).unwrap();
        let scheme =
            StandardWebhooks::new(vec![Secret::new(SECRET.into())], TOLERANCE_SECS).unwrap();
        for i in 0..3 {
            let ev = pool.get(i).unwrap();
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("webhook-id", ev.id.clone());
            headers.insert("webhook-timestamp", ev.ts.clone());
            headers.insert("webhook-signature", ev.sig.clone());
            let req = SignedRequest {
                method: "POST",
                headers: &headers,
                body: &ev.body,
                now: chrono::Utc::now().timestamp(),
            };
            assert_eq!(
                scheme.verify(&req).unwrap().message_id.as_deref(),
                Some(pool.id(i).as_str())
            );
        }
        assert!(pool.get(3).is_err());
    }
}
