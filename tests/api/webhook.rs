//! The receiver: signatures, limits, parsing, dedupe — through the real HTTP app.

use offboard_core::{domain::Clock, store::JobFilter};
use serde_json::Value;

use crate::helpers::*;

async fn post_raw(
    app: &TestApp,
    source: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}/webhooks/{source}", app.addr))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn signed_headers(id: &str, ts: i64, body: &str) -> Vec<(&'static str, String)> {
    offboard_testkit::sign::headers(SECRET, id, ts, body)
}

#[tokio::test]
async fn accepted_then_duplicate_stores_one_job() {
    let app = spawn_app().await;
    let body = termination("evt_1", "jane.doe@example.com", "voluntary", true, false);
    let first = app.post_signed("hr", "msg_1", &body).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["event_id"], "msg_1");
    let again = app.post_signed("hr", "msg_1", &body).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["job_id"], first["job_id"]);
    let jobs = app.store.list_jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(jobs.len(), 1);
}

#[tokio::test]
async fn same_id_other_body_is_a_conflict_and_stores_nothing() {
    let app = spawn_app().await;
    let a = termination("evt_1", "jane.doe@example.com", "voluntary", true, false);
    let b = termination("evt_1", "sam.seller@example.com", "voluntary", true, false);
    assert_eq!(app.post_signed("hr", "msg_x", &a).await.status(), 202);
    let resp = app.post_signed("hr", "msg_x", &b).await;
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "event_id_conflict");
    assert_eq!(
        app.store
            .list_jobs(&JobFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn rejects_bad_input_with_exact_codes() {
    let app = spawn_app().await;
    let now = app.clock.now().timestamp();
    let good = termination("evt_2", "jane.doe@example.com", "voluntary", true, false);

    // Bad signature.
    let mut h = signed_headers("msg_2", now, &good);
    h[2].1 = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    let (status, body) = post_raw(&app, "hr", &h, &good).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("bad_signature"))
    );

    // Stale timestamp (signed correctly, but 10 minutes old).
    let (status, body) = post_raw(
        &app,
        "hr",
        &signed_headers("msg_3", now - 600, &good),
        &good,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("stale_timestamp"))
    );

    // Missing signature headers.
    let (status, body) = post_raw(&app, "hr", &[], &good).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_signature"))
    );

    // Over max_body_bytes (4096 in tests).
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
    let (status, _) = post_raw(&app, "hr", &signed_headers("msg_4", now, &big), &big).await;
    assert_eq!(status, 413);

    // Not JSON.
    let junk = "{not json";
    let (status, body) = post_raw(&app, "hr", &signed_headers("msg_5", now, junk), junk).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );

    // Missing email: the message names the field.
    let no_email = r#"{"id":"e","type":"employee.terminated","employee":{"name":"x"}}"#;
    let (status, body) = post_raw(
        &app,
        "hr",
        &signed_headers("msg_6", now, no_email),
        no_email,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_event"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("employee.email"),
        "{body}"
    );

    // Unknown source.
    let (status, body) = post_raw(&app, "nope", &signed_headers("msg_7", now, &good), &good).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    assert!(
        app.store
            .list_jobs(&JobFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let health = app
        .http
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = app
        .http
        .get(format!("{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}
