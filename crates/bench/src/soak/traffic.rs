//! The soak's webhooks: a steady stream of signed Standard Webhooks posts to the
//! receiver, of which a share is hostile, and every answer recorded so the end
//! checks can compare the store with what was acknowledged.
//!
//! The plan is deterministic (no randomness: a failing soak can be re-run as it
//! was): send `n` is hostile when `⌊(n+1)·share⌋ > ⌊n·share⌋` (evenly spread),
//! cycling through [`Hostile::ALL`]; of the rest, the same rule with
//! `duplicate_share` makes an honest retry of an event sent a few posts before;
//! every other post is a new leaver's termination.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::fleet;
use offboard_core::ingest::schemes::StandardWebhooks;

/// What one leaver's termination should come to (decided by its index, so the
/// checks know it without asking anyone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaverKind {
    /// An active rep with open records: records to the manager, the admin asked to
    /// deactivate the seat, verified → `succeeded`.
    Normal,
    /// Under legal hold: both soak policies say `review` → `needs_review`, and the
    /// CRM is not touched.
    LegalHold,
    /// An e-mail no CRM user has → `succeeded` with "no CRM user", nothing written.
    NotInCrm,
}

impl LeaverKind {
    /// Leaver `i`'s kind: every 10th (7, 17, …) under legal hold, every 20th
    /// (13, 33, …) unknown to the CRM, the rest normal.
    pub fn of(i: usize) -> LeaverKind {
        if i % 10 == 7 {
            LeaverKind::LegalHold
        } else if i % 20 == 13 {
            LeaverKind::NotInCrm
        } else {
            LeaverKind::Normal
        }
    }

    /// As the report names it.
    pub fn label(self) -> &'static str {
        match self {
            LeaverKind::Normal => "normal",
            LeaverKind::LegalHold => "legal hold",
            LeaverKind::NotInCrm => "not in the CRM",
        }
    }
}

/// A hostile post: each must get its 4xx and store nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hostile {
    /// Signed with a secret the source does not have → 401.
    BadSignature,
    /// Correctly signed an hour ago (tolerance 300 s) → 401 `stale_timestamp`.
    StaleTimestamp,
    /// Correctly signed, not JSON → 400.
    MalformedJson,
    /// Correctly signed, larger than `server.max_body_bytes` → 413.
    Oversized,
    /// Correctly signed, to a source that is not configured → 404.
    UnknownSource,
    /// An accepted event's id with a different body → 409 `event_id_conflict`.
    IdConflict,
}

impl Hostile {
    /// The cycle hostile posts go through.
    pub const ALL: [Hostile; 6] = [
        Hostile::BadSignature,
        Hostile::StaleTimestamp,
        Hostile::MalformedJson,
        Hostile::Oversized,
        Hostile::UnknownSource,
        Hostile::IdConflict,
    ];

    /// The status the receiver must answer.
    pub fn expected_status(self) -> u16 {
        match self {
            Hostile::BadSignature | Hostile::StaleTimestamp => 401,
            Hostile::MalformedJson => 400,
            Hostile::Oversized => 413,
            Hostile::UnknownSource => 404,
            Hostile::IdConflict => 409,
        }
    }

    /// As the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Hostile::BadSignature => "bad signature",
            Hostile::StaleTimestamp => "stale timestamp",
            Hostile::MalformedJson => "malformed JSON",
            Hostile::Oversized => "oversized body",
            Hostile::UnknownSource => "unknown source",
            Hostile::IdConflict => "id conflict",
        }
    }
}

/// What a post was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Leaver `leaver`'s termination, first delivery.
    New {
        /// The leaver's index in the seed.
        leaver: usize,
    },
    /// The same event again, byte for byte (an HR system's retry) → 200 duplicate.
    Retry {
        /// The leaver whose event is re-sent.
        leaver: usize,
    },
    /// A hostile post.
    Hostile(Hostile),
}

/// One post and its answer.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its place in the stream.
    pub n: u64,
    /// What it was.
    pub kind: Kind,
    /// The `webhook-id` it carried.
    pub event_id: String,
    /// The employee e-mail of its body (hostile ones use addresses of their own).
    pub email: String,
    /// The HTTP status, or `None` when no answer came (transport error, timeout).
    pub status: Option<u16>,
    /// `error.code` of an error answer; `duplicate` of a 2xx as `"duplicate"`.
    pub code: Option<String>,
    /// What went wrong when there was no answer.
    pub error: Option<String>,
}

impl Sent {
    /// Answered 2xx.
    pub fn accepted(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The event id of leaver `i`'s termination in run `run`.
pub fn event_id(run: &str, i: usize) -> String {
    format!("soak-{run}-{i}")
}

/// The e-mail leaver `i`'s termination names (a stranger's for [`LeaverKind::NotInCrm`]).
pub fn leaver_email(i: usize) -> String {
    match LeaverKind::of(i) {
        LeaverKind::NotInCrm => format!("stranger{i:04}@example.com"),
        _ => fleet::leaver_email(i),
    }
}

/// Leaver `i`'s termination body (compact JSON, identical on every delivery).
pub fn leaver_body(run: &str, i: usize) -> String {
    let mut event = fleet::leaver_event(i);
    event["id"] = Value::String(event_id(run, i));
    event["employee"]["email"] = Value::String(leaver_email(i));
    event["legal_hold"] = Value::Bool(LeaverKind::of(i) == LeaverKind::LegalHold);
    event.to_string()
}

/// What the stream has sent so far that later posts refer to.
#[derive(Debug, Default)]
struct History {
    /// Leavers whose first delivery was answered 2xx, oldest first.
    accepted: Vec<usize>,
}

/// The load: where to post, how fast, what share is hostile.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// The receiver's `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The run's name (in every event id).
    pub run: String,
    /// Posts per second.
    pub rate: f64,
    /// Share of posts that are hostile.
    pub hostile_share: f64,
    /// Share of the other posts that re-send an earlier event.
    pub duplicate_share: f64,
    /// Leavers in the seed: new deliveries stop (the stream goes on with
    /// retries and hostile posts) once all have been used.
    pub leavers: usize,
}

/// `⌊(n+1)·share⌋ > ⌊n·share⌋`: true for an evenly spread `share` of all n.
fn crosses(n: u64, share: f64) -> bool {
    ((n + 1) as f64 * share).floor() > (n as f64 * share).floor()
}

impl Traffic {
    /// Posts at the steady rate until `stop`; every post and its answer.
    pub async fn run(&self, stop: CancellationToken) -> Vec<Sent> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(16)
            .build()
            .unwrap_or_default();
        let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
        let history = Arc::new(Mutex::new(History::default()));
        let mut tasks = tokio::task::JoinSet::new();
        let every = Duration::from_secs_f64(1.0 / self.rate.max(0.001));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut n, mut genuine, mut hostile, mut next_leaver) = (0u64, 0u64, 0usize, 0usize);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let kind = if crosses(n, self.hostile_share) {
                hostile += 1;
                Kind::Hostile(Hostile::ALL[(hostile - 1) % Hostile::ALL.len()])
            } else {
                genuine += 1;
                let earlier = next_leaver.checked_sub(3);
                match earlier {
                    Some(leaver) if crosses(genuine - 1, self.duplicate_share) => {
                        Kind::Retry { leaver }
                    }
                    _ if next_leaver < self.leavers => {
                        next_leaver += 1;
                        Kind::New {
                            leaver: next_leaver - 1,
                        }
                    }
                    _ => Kind::Retry {
                        leaver: next_leaver.saturating_sub(1),
                    },
                }
            };
            let post = self.post(n, kind, &history);
            let (http, sent, history) = (http.clone(), sent.clone(), history.clone());
            tasks.spawn(async move {
                let Some(post) = post else { return };
                let answer = post.send(&http).await;
                if let (Kind::New { leaver }, true) = (&answer.kind, answer.accepted()) {
                    history
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .accepted
                        .push(*leaver);
                }
                sent.lock().unwrap_or_else(|p| p.into_inner()).push(answer);
            });
            n += 1;
        }
        // Every post sent gets its answer (or its timeout) before the checks.
        while tasks.join_next().await.is_some() {}
        let mut all = std::mem::take(&mut *sent.lock().unwrap_or_else(|p| p.into_inner()));
        all.sort_by_key(|s| s.n);
        all
    }

    /// Builds post `n`; `None` for an id conflict before any event was accepted.
    fn post(&self, n: u64, kind: Kind, history: &Mutex<History>) -> Option<Post> {
        let now = chrono::Utc::now().timestamp();
        let url = format!("{}/webhooks/hr", self.base_url);
        let hostile_id = format!("soak-{}-hostile-{n}", self.run);
        let hostile_email = format!("hostile{n}@example.com");
        let hostile_body = || {
            let mut event = fleet::leaver_event(0);
            event["id"] = Value::String(hostile_id.clone());
            event["employee"]["email"] = Value::String(hostile_email.clone());
            event.to_string()
        };
        let (url, id, email, body, secret, ts) = match &kind {
            Kind::New { leaver } | Kind::Retry { leaver } => (
                url,
                event_id(&self.run, *leaver),
                leaver_email(*leaver),
                leaver_body(&self.run, *leaver),
                fleet::WEBHOOK_SECRET,
                now,
            ),
            Kind::Hostile(h) => match h {
                Hostile::BadSignature => (
                    url,
                    hostile_id.clone(),
                    hostile_email.clone(),
                    hostile_body(),
                    "whsec_bm90LXRoZS1mbGVldHMtc2VjcmV0LWF0LWFsbA==",
                    now,
                ),
                Hostile::StaleTimestamp => (
                    url,
                    hostile_id.clone(),
                    hostile_email.clone(),
                    hostile_body(),
                    fleet::WEBHOOK_SECRET,
                    now - 3600,
                ),
                Hostile::MalformedJson => (
                    url,
                    hostile_id.clone(),
                    hostile_email.clone(),
                    format!(
                        "{{\"id\": \"{hostile_id}\", \"type\": \"employee.terminated\", \"employee\": {{\"email\": \"{hostile_email}\""
                    ),
                    fleet::WEBHOOK_SECRET,
                    now,
                ),
                Hostile::Oversized => {
                    let mut event: Value = serde_json::from_str(&hostile_body()).ok()?;
                    // 70 KB: past the default server.max_body_bytes (64 KiB).
                    event["padding"] = Value::String("x".repeat(70 * 1024));
                    (
                        url,
                        hostile_id.clone(),
                        hostile_email.clone(),
                        event.to_string(),
                        fleet::WEBHOOK_SECRET,
                        now,
                    )
                }
                Hostile::UnknownSource => (
                    format!("{}/webhooks/no-such-source", self.base_url),
                    hostile_id.clone(),
                    hostile_email.clone(),
                    hostile_body(),
                    fleet::WEBHOOK_SECRET,
                    now,
                ),
                Hostile::IdConflict => {
                    let leaver = *history
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .accepted
                        .last()?;
                    let id = event_id(&self.run, leaver);
                    let mut event: Value =
                        serde_json::from_str(&leaver_body(&self.run, leaver)).ok()?;
                    event["employee"]["email"] = Value::String(hostile_email.clone());
                    (
                        url,
                        id,
                        hostile_email.clone(),
                        event.to_string(),
                        fleet::WEBHOOK_SECRET,
                        now,
                    )
                }
            },
        };
        let signature = StandardWebhooks::sign(secret, &id, ts, body.as_bytes()).ok()?;
        Some(Post {
            n,
            kind,
            url,
            id,
            email,
            ts,
            signature,
            body,
        })
    }
}

/// One request, ready to send.
struct Post {
    n: u64,
    kind: Kind,
    url: String,
    id: String,
    email: String,
    ts: i64,
    signature: String,
    body: String,
}

impl Post {
    async fn send(self, http: &reqwest::Client) -> Sent {
        let answer = http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", self.ts.to_string())
            .header("webhook-signature", &self.signature)
            .body(self.body)
            .send()
            .await;
        let mut sent = Sent {
            n: self.n,
            kind: self.kind,
            event_id: self.id,
            email: self.email,
            status: None,
            code: None,
            error: None,
        };
        match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                sent.status = Some(status);
                let body: Value = response.json().await.unwrap_or(json!(null));
                sent.code = if (200..300).contains(&status) {
                    body.get("duplicate")
                        .and_then(Value::as_bool)
                        .map(|d| if d { "duplicate" } else { "new" }.to_owned())
                } else {
                    body.pointer("/error/code")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
            }
            Err(e) => sent.error = Some(e.to_string()),
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_spread_evenly() {
        let hostile = (0..1000).filter(|&n| crosses(n, 0.05)).count();
        assert_eq!(hostile, 50);
        assert_eq!((0..1000).filter(|&n| crosses(n, 0.0)).count(), 0);
        assert_eq!((0..10).filter(|&n| crosses(n, 1.0)).count(), 10);
    }

    #[test]
    fn leaver_bodies_parse_with_their_kind() {
        for i in [0, 7, 13] {
            let body: Value = serde_json::from_str(&leaver_body("r", i)).unwrap();
            let e = offboard_core::domain::OffboardingEvent::from_json(&body, None).unwrap();
            assert_eq!(e.legal_hold, LeaverKind::of(i) == LeaverKind::LegalHold);
            assert_eq!(e.employee.email.as_str(), leaver_email(i));
        }
        assert_eq!(LeaverKind::of(13), LeaverKind::NotInCrm);
        assert_eq!(LeaverKind::of(17), LeaverKind::LegalHold);
    }
}
