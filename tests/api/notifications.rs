//! Notifications that arrive (DESIGN.md §13), through the running app: a real SMTP
//! conversation with the sandbox's mail catcher, outbound webhooks verified by the
//! `standardwebhooks` crate in an axum receiver, retries on 5xx and on dropped
//! connections on the app's clock, and a notification that never gets through
//! ending `dead` while its job finishes. (The crash case, with a real process and
//! SIGKILL, is `tests/notify_crash.rs`.)

use std::sync::{Arc, Mutex};

use axum::{Router, body::Bytes, http::HeaderMap, http::StatusCode, routing::post};
use offboard_sandbox::catcher::{CatcherFault, HookCatcher, MailCatcher};
use serde_json::{Value, json};

use crate::helpers::*;

const OUT_SECRET: &str = "whsec_bm90aWZ5LXRlc3Qtb3V0Ym91bmQtc2VjcmV0";
const SAM: &str = "sam.seller@example.com";
const SAM_ID: i64 = 11;

/// The test policy with `notify` on the rule Sam's voluntary exit matches, and a
/// `review` rule for `kind = "other"`.
fn policy() -> String {
    POLICY
        .replace(
            "name = \"leavers who may come back\"",
            "name = \"leavers who may come back\"\nnotify = [\"legal@example.com\"]",
        )
        .replace(
            "[[rules]]\nname = \"everyone else\"",
            "[[rules]]\nname = \"unclear\"\nwhen = { kind = \"other\" }\naction = \"review\"\nnotify = [\"legal@example.com\"]\n\n[[rules]]\nname = \"everyone else\"",
        )
}

fn email_config(catcher: &MailCatcher) -> String {
    unsafe {
        std::env::set_var("OFFBOARD_TEST_SMTP_USER", "offboard-smtp");
        std::env::set_var("OFFBOARD_TEST_SMTP_PASSWORD", "smtp-secret");
    }
    format!(
        "[notify.email]\nsmtp_url = \"{}\"\nfrom = \"offboard@example.com\"\nusername_env = \"OFFBOARD_TEST_SMTP_USER\"\npassword_env = \"OFFBOARD_TEST_SMTP_PASSWORD\"\n",
        catcher.url()
    )
}

fn webhook_config(name: &str, url: &str, events: Option<&[&str]>, format: &str) -> String {
    unsafe {
        std::env::set_var("OFFBOARD_TEST_OUT_SECRET", OUT_SECRET);
    }
    let events = events.map_or(String::new(), |e| {
        format!(
            "events = [{}]\n",
            e.iter()
                .map(|x| format!("\"{x}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    format!(
        "[[notify.webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret_env = \"OFFBOARD_TEST_OUT_SECRET\"\nformat = \"{format}\"\n{events}"
    )
}

async fn app_with(notify: String) -> TestApp {
    spawn_app_with(Options {
        policy: policy(),
        extra_config: notify,
        ..Options::default()
    })
    .await
}

fn notifications(job: &Value) -> Vec<Value> {
    job["notifications"].as_array().cloned().unwrap_or_default()
}

fn by_event<'a>(job: &'a Value, event: &str) -> Vec<&'a Value> {
    job["notifications"]
        .as_array()
        .map(|l| l.iter().filter(|n| n["event"] == event).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn notifications_by_email_go_through_a_real_smtp_conversation() {
    let mail = MailCatcher::start().await.unwrap();
    let app = app_with(format!("[notify]\n{}", email_config(&mail))).await;
    let id = app
        .accept(
            "msg_n1",
            &termination("evt_n1", SAM, "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(job["state"], "scheduled", "{job:#}");

    // The new owner, the policy's address and the CRM admin, once each.
    let caught = mail.messages();
    let mut to: Vec<String> = caught.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "admin@example.com",
            "legal@example.com",
            "max.manager@example.com"
        ],
        "{caught:#?}"
    );
    assert!(caught.iter().all(|m| m.from == "offboard@example.com"));
    assert!(
        caught
            .iter()
            .all(|m| m.auth_user.as_deref() == Some("offboard-smtp")),
        "credentials from the environment"
    );
    // Every e-mail carries its notification's stable id, and the API shows it delivered.
    let listed = notifications(&job);
    assert_eq!(listed.len(), 3, "{job:#}");
    for n in &listed {
        assert_eq!(n["channel"], "email");
        assert_eq!(n["state"], "delivered", "{n:#}");
        assert_eq!(n["attempts"], 1);
        let id = n["id"].as_str().unwrap();
        let sent: Vec<_> = caught
            .iter()
            .filter(|m| m.header("message-id").as_deref() == Some(&format!("<{id}@example.com>")))
            .collect();
        assert_eq!(
            sent.len(),
            1,
            "one e-mail with Message-ID <{id}@example.com>"
        );
        assert_eq!(sent[0].to, [n["target"].as_str().unwrap()]);
    }

    let to_owner = caught
        .iter()
        .find(|m| m.to == ["max.manager@example.com"])
        .unwrap();
    let subject = to_owner.header("subject").unwrap();
    assert!(
        subject.contains("136 Sell records") && subject.contains("sam.seller"),
        "{subject}"
    );
    let text = to_owner.parts("text/plain").join("\n");
    for line in ["40 contacts", "28 deals", "40 leads", "28 tasks"] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let html = to_owner.parts("text/html").join("\n");
    assert!(html.contains("<li>40 leads</li>"), "{html}");
    let to_admin = caught
        .iter()
        .find(|m| m.to == ["admin@example.com"])
        .unwrap();
    let text = to_admin.parts("text/plain").join("\n");
    assert!(
        text.contains("Please DEACTIVATE") && text.contains("[offboard job"),
        "the admin's e-mail quotes the task: {text}"
    );
    // The trail says what was queued and delivered.
    assert_eq!(audit(&job, "notify.queued").count(), 3);
    assert_eq!(audit(&job, "notify.delivered").count(), 3);
    assert!(!job.to_string().contains("recorded in the audit trail"));

    // Polls while the admin has not acted send nothing new.
    app.advance_to_run_at(&id).await;
    app.run_jobs().await;
    assert_eq!(mail.messages().len(), 3);

    // The CRM shows the change: the policy's address hears of it, once.
    app.sell().deactivate(SAM_ID).await.unwrap();
    let job = app.run_job_until_settled(&id, 5).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let verified = by_event(&job, "seat.verified");
    assert_eq!(verified.len(), 1, "{job:#}");
    assert_eq!(verified[0]["state"], "delivered");
    let caught = mail.messages();
    assert_eq!(caught.len(), 4);
    assert_eq!(caught[3].to, ["legal@example.com"]);
    assert!(
        caught[3]
            .header("subject")
            .unwrap()
            .contains("deactivate done")
    );
    app.run_jobs().await;
    assert_eq!(mail.messages().len(), 4, "nothing is sent twice");
}

/// What the axum receiver below saw: (webhook-id, event type) of each request its
/// `standardwebhooks` check accepted, and how many it refused.
#[derive(Default)]
struct Verified {
    accepted: Vec<(String, String)>,
    refused: usize,
}

/// An axum receiver that verifies each request with the `standardwebhooks` crate
/// (204 when valid, 401 otherwise).
async fn verifying_receiver() -> (String, Arc<Mutex<Verified>>) {
    let seen: Arc<Mutex<Verified>> = Arc::default();
    let state = seen.clone();
    let app = Router::new().route(
        "/in",
        post(move |headers: HeaderMap, body: Bytes| {
            let seen = state.clone();
            async move {
                let wh = standardwebhooks::Webhook::new(OUT_SECRET).expect("secret");
                let mut seen = seen.lock().unwrap();
                match wh.verify(&body, &headers) {
                    Ok(()) => {
                        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                        let id = headers["webhook-id"]
                            .to_str()
                            .unwrap_or_default()
                            .to_owned();
                        seen.accepted
                            .push((id, v["type"].as_str().unwrap_or_default().to_owned()));
                        StatusCode::NO_CONTENT
                    }
                    Err(_) => {
                        seen.refused += 1;
                        StatusCode::UNAUTHORIZED
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn notifications_by_webhook_are_signed_filtered_and_formatted() {
    let (url, seen) = verifying_receiver().await;
    let slack = HookCatcher::start().await.unwrap();
    let config = format!(
        "[notify]\n{}{}",
        webhook_config(
            "ops",
            &url,
            Some(&["records.reassigned", "seat.requested", "job.needs_review"]),
            "standard"
        ),
        webhook_config("chat", &slack.url(), None, "slack"),
    );
    let app = app_with(config).await;
    let id = app
        .accept(
            "msg_w1",
            &termination("evt_w1", SAM, "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&id).await;

    // The signed endpoint got only its events, each verified by standardwebhooks,
    // each under its notification's id.
    let (accepted, refused) = {
        let v = seen.lock().unwrap();
        (v.accepted.clone(), v.refused)
    };
    assert_eq!(refused, 0);
    let mut types: Vec<&str> = accepted.iter().map(|(_, t)| t.as_str()).collect();
    types.sort();
    assert_eq!(types, ["records.reassigned", "seat.requested"]);
    for (webhook_id, event) in &accepted {
        let n = by_event(&job, event)
            .into_iter()
            .find(|n| n["target"] == "ops")
            .unwrap();
        assert_eq!(n["id"], webhook_id.as_str());
        assert_eq!(n["state"], "delivered");
        assert_eq!(n["message"]["data"]["job_id"], id.as_str());
    }
    let reassigned = by_event(&job, "records.reassigned")
        .into_iter()
        .find(|n| n["target"] == "ops")
        .unwrap();
    assert_eq!(reassigned["message"]["data"]["moved"]["leads"], 40);
    assert_eq!(
        reassigned["message"]["data"]["to"],
        "max.manager@example.com"
    );

    // The Slack endpoint got every event so far as {"text": …}, signed too.
    let chat = slack.accepted();
    let texts: Vec<String> = chat
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts[0].contains("decided to deactivate"), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("moved 136")), "{texts:?}");
    assert!(chat.iter().all(|r| {
        r.header("webhook-signature")
            .is_some_and(|s| s.starts_with("v1,"))
    }));
    assert!(
        chat.iter()
            .all(|r| r.json().as_object().is_some_and(|o| o.len() == 1))
    );

    // A review: the job's end is the cause, sent to both.
    let review = app
        .accept(
            "msg_w2",
            &termination("evt_w2", "lee.hold@example.com", "other", false, false),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&review).await;
    assert_eq!(job["state"], "needs_review", "{job:#}");
    let ends = by_event(&job, "job.needs_review");
    assert_eq!(ends.len(), 2, "{job:#}");
    assert!(ends.iter().all(|n| n["state"] == "delivered"));
    assert!(
        seen.lock()
            .unwrap()
            .accepted
            .iter()
            .any(|(_, t)| t == "job.needs_review")
    );
}

#[tokio::test]
async fn notifications_are_retried_on_5xx_and_dropped_connections_with_backoff() {
    let hook = HookCatcher::start().await.unwrap();
    let config = format!(
        "[notify]\n{}",
        webhook_config("ops", &hook.url(), Some(&["seat.requested"]), "standard")
    );
    let app = app_with(config).await;
    hook.fail_next(&[CatcherFault::Status(503), CatcherFault::Drop]);
    let id = app
        .accept(
            "msg_r1",
            &termination("evt_r1", SAM, "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(
        job["state"], "scheduled",
        "the job does not wait for delivery"
    );
    let n = by_event(&job, "seat.requested")[0].clone();
    assert_eq!(n["state"], "pending", "{n:#}");
    assert_eq!(n["attempts"], 1);
    assert!(n["last_error"].as_str().unwrap().contains("503"), "{n:#}");
    // The next attempt waits 30 s (up to a quarter more), on the app's clock.
    let next_at = chrono::DateTime::parse_from_rfc3339(n["next_at"].as_str().unwrap()).unwrap();
    let wait = (next_at.with_timezone(&chrono::Utc) - app.clock_now()).num_seconds();
    assert!((29..=38).contains(&wait), "waits {wait}s");
    app.worker.deliver_notifications().await;
    assert_eq!(hook.requests().len(), 1, "not before its backoff");

    app.advance(chrono::Duration::seconds(40));
    app.worker.deliver_notifications().await;
    let n = by_event(&app.job(&id).await, "seat.requested")[0].clone();
    assert_eq!(
        (n["state"].as_str(), n["attempts"].as_u64()),
        (Some("pending"), Some(2))
    );
    assert!(!n["last_error"].as_str().unwrap().contains("503"), "{n:#}");

    app.advance(chrono::Duration::minutes(2));
    app.worker.deliver_notifications().await;
    let job = app.job(&id).await;
    let n = by_event(&job, "seat.requested")[0].clone();
    assert_eq!(
        (n["state"].as_str(), n["attempts"].as_u64()),
        (Some("delivered"), Some(3))
    );
    let requests = hook.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(hook.accepted().len(), 1, "delivered once");
    assert!(
        requests
            .iter()
            .all(|r| r.header("webhook-id") == n["id"].as_str()),
        "every attempt carries the same id"
    );
    let kinds: Vec<&str> = job["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .filter(|k| k.starts_with("notify."))
        .collect();
    assert_eq!(
        kinds,
        [
            "notify.queued",
            "notify.retry",
            "notify.retry",
            "notify.delivered"
        ]
    );
}

#[tokio::test]
async fn notifications_that_never_get_through_end_dead_and_the_job_still_finishes() {
    let hook = HookCatcher::start().await.unwrap();
    let config = format!(
        "[notify]\ngive_up_after_hours = 1\n{}",
        webhook_config(
            "ops",
            &hook.url(),
            Some(&["seat.requested", "seat.verified"]),
            "standard"
        )
    );
    let app = app_with(config).await;
    hook.fail_next(&[CatcherFault::Status(500); 64]);
    let id = app
        .accept(
            "msg_d1",
            &termination("evt_d1", SAM, "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    app.sell().deactivate(SAM_ID).await.unwrap();
    let job = app.run_job_until_settled(&id, 5).await;
    assert_eq!(
        job["state"], "succeeded",
        "delivery holds up nothing: {job:#}"
    );

    // Keep trying for an hour on the app's clock, then give up.
    for _ in 0..40 {
        app.advance(chrono::Duration::minutes(5));
        app.worker.deliver_notifications().await;
    }
    let job = app.job(&id).await;
    let listed = notifications(&job);
    assert_eq!(listed.len(), 2, "{job:#}");
    for n in &listed {
        assert_eq!(n["state"], "dead", "{n:#}");
        assert!(n["last_error"].as_str().unwrap().contains("500"));
    }
    assert_eq!(audit(&job, "notify.dead").count(), 2);
    assert_eq!(hook.accepted().len(), 0);
    let tried = hook.requests().len();
    app.advance(chrono::Duration::hours(6));
    app.worker.deliver_notifications().await;
    assert_eq!(
        hook.requests().len(),
        tried,
        "a dead notification is not sent again"
    );
    let metrics = offboard_testkit::scrape_metrics(&app.http, &app.addr).await;
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("offboard_notifications_total{channel=\"webhook\",outcome=\"dead\"}")),
        "{metrics}"
    );
    assert!(metrics.contains("offboard_notifications_pending{channel=\"webhook\"}"));
}

#[tokio::test]
async fn notification_addresses_are_redacted_in_the_api() {
    let mail = MailCatcher::start().await.unwrap();
    let config = format!(
        "[privacy]\nredact_emails = true\n[notify]\n{}",
        email_config(&mail)
    );
    let app = app_with(config).await;
    let id = app
        .accept(
            "msg_p1",
            &termination("evt_p1", SAM, "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(notifications(&job).len(), 3);
    let text = job.to_string();
    for address in [
        "legal@example.com",
        "max.manager@example.com",
        "admin@example.com",
    ] {
        assert!(!text.contains(address), "{address} shown: {text}");
    }
    // The e-mails themselves still go to the real addresses.
    assert_eq!(mail.messages().len(), 3);
    let _ = json!(null);
}

#[tokio::test]
async fn notifications_skip_new_owners_when_the_policy_says_so() {
    let mail = MailCatcher::start().await.unwrap();
    let app = spawn_app_with(Options {
        policy: policy().replace(
            "open_only = true\n",
            "open_only = true\nnotify_new_owners = false\n",
        ),
        extra_config: format!("[notify]\n{}", email_config(&mail)),
        ..Options::default()
    })
    .await;
    let id = app
        .accept(
            "msg_q1",
            &termination("evt_q1", SAM, "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert!(by_event(&job, "records.reassigned").is_empty(), "{job:#}");
    let mut to: Vec<String> = mail.messages().iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["admin@example.com", "legal@example.com"]);
    assert_eq!(job["checkpoints"]["reassigned"]["moved"]["leads"], 40);
}

#[tokio::test]
async fn notifications_by_email_are_retried_after_a_451_and_a_dropped_connection() {
    let mail = MailCatcher::start().await.unwrap();
    let app = app_with(format!("[notify]\n{}", email_config(&mail))).await;
    // The first conversation ends in 451 after DATA, the second is dropped after
    // the greeting; the third one is accepted.
    mail.fail_next(&[CatcherFault::Status(451), CatcherFault::Drop]);
    let id = app
        .accept(
            "msg_m1",
            &termination("evt_m1", SAM, "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    let pending: Vec<Value> = notifications(&app.job(&id).await)
        .into_iter()
        .filter(|n| n["state"] == "pending")
        .collect();
    assert_eq!(pending.len(), 2, "two deliveries failed at first");
    assert_eq!(mail.messages().len(), 1);
    for _ in 0..3 {
        app.advance(chrono::Duration::minutes(2));
        app.worker.deliver_notifications().await;
    }
    let job = app.job(&id).await;
    assert!(
        notifications(&job)
            .iter()
            .all(|n| n["state"] == "delivered"),
        "{job:#}"
    );
    assert_eq!(mail.failed(), 2);
    let caught = mail.messages();
    assert_eq!(caught.len(), 3, "each delivered once");
    let mut ids: Vec<String> = caught
        .iter()
        .filter_map(|m| m.header("message-id"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let retried = audit(&job, "notify.retry").collect::<Vec<_>>();
    assert_eq!(retried.len(), 2);
    assert!(
        retried.iter().any(|a| a["detail"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("451")),
        "{retried:#?}"
    );
}
