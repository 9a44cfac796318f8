//! A notification survives a crash and is delivered once: the real `offboard`
//! binary writes the notifications with the steps that cause them, is SIGKILLed
//! after those steps committed and before any delivery got through (the receiver
//! is not listening yet), and a fresh process on the same store delivers each
//! exactly once, under the id it was written with, without writing a cause twice.

use std::time::{Duration, Instant};

use offboard_sandbox::{SandboxOptions, catcher::HookCatcher};
use offboard_testkit::{
    config::ServeConfig,
    free_port,
    process::{self, Process},
    sell, sign,
};
use serde_json::{Value, json};

const SECRET: &str = "whsec_bm90aWZ5LWNyYXNoLXNlY3JldA==";
const OUT_SECRET: &str = "whsec_bm90aWZ5LWNyYXNoLW91dGJvdW5k";
const ADMIN: &str = "notify-crash-admin";

async fn job(http: &reqwest::Client, port: u16, id: &str) -> Option<Value> {
    http.get(format!("http://127.0.0.1:{port}/api/v1/jobs/{id}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn notifications(job: &Value) -> Vec<Value> {
    job["notifications"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_written_before_a_sigkill_are_delivered_once_after_restart() {
    let sandbox = sell::start(SandboxOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: Some("notify-crash-sell".into()),
        seed: sell::standard_org(),
        ..SandboxOptions::default()
    })
    .await;
    let secrets = tempfile::tempdir().unwrap();
    let out_secret = secrets.path().join("outbound-secret");
    std::fs::write(&out_secret, OUT_SECRET).unwrap();
    // Nothing listens here until after the crash: every attempt before it fails.
    let hook_port = free_port();
    let port = free_port();
    let dir = ServeConfig {
        port,
        store_url: None,
        crm_base_url: sandbox.base_url(),
        webhook_secret: SECRET.into(),
        admin_token: ADMIN.into(),
        sell_token: "notify-crash-sell".into(),
        policy: "version = 1\n[defaults]\nfallback_owner = \"sales-ops@example.com\"\nat = \"now\"\n[[rules]]\nname = \"all\"\naction = \"deactivate\"\n".into(),
        store_extra: String::new(),
        crm_extra: "admin_email = \"admin@example.com\"\nrequests_per_second = 100".into(),
        tail: format!(
            "[worker]\nlease_secs = 3\nverify_interval_secs = 3600\npoll_interval_ms = 100\n\
             [notify]\nretry_base_secs = 1\nretry_max_secs = 1\n\
             [[notify.webhooks]]\nname = \"ops\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n\
             secret_env = \"\"\nsecret_file = \"{}\"\n",
            out_secret.display()
        ),
    }
    .write();
    let start = || {
        Process::spawn(&mut process::serve(
            env!("CARGO_BIN_EXE_offboard"),
            &dir.config,
        ))
    };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let mut first = start();
    first.wait_ready(&base, Duration::from_secs(30)).await;
    let body = json!({
        "id": "evt_notify_crash", "type": "employee.terminated",
        "employee": { "email": "sam.seller@example.com", "manager_email": "max.manager@example.com" },
        "termination": { "kind": "voluntary", "rehire_eligible": true }
    })
    .to_string();
    let resp = sign::post(
        &http,
        &format!("{base}/webhooks/hr"),
        SECRET,
        "msg_notify_crash",
        &body,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The steps committed (their notifications with them) and delivery was tried.
    wait_for(
        "the seat step and failed deliveries",
        Duration::from_secs(60),
        async || {
            job(&http, port, &id).await.is_some_and(|j| {
                let n = notifications(&j);
                j["checkpoints"].get("seat_requested_at").is_some()
                    && n.len() == 3
                    && n.iter()
                        .all(|n| n["state"] != "delivered" && n["attempts"].as_u64() >= Some(1))
            })
        },
    )
    .await;
    let before = job(&http, port, &id).await.unwrap();
    first.kill();

    // The receiver comes up; a fresh process on the same store delivers.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", hook_port))
        .await
        .unwrap();
    let hook = HookCatcher::serve(listener).unwrap();
    let mut second = start();
    second.wait_ready(&base, Duration::from_secs(30)).await;
    wait_for(
        "every notification delivered",
        Duration::from_secs(60),
        async || {
            job(&http, port, &id)
                .await
                .is_some_and(|j| notifications(&j).iter().all(|n| n["state"] == "delivered"))
        },
    )
    .await;
    let after = job(&http, port, &id).await.unwrap();
    second.kill();

    let ids: Vec<String> = notifications(&before)
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    let ids_after: Vec<String> = notifications(&after)
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ids_after, "the restart wrote no cause twice");
    let queued = after["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "notify.queued")
        .count();
    assert_eq!(queued, 3);
    let delivered = hook.accepted();
    for id in &ids {
        let copies = delivered
            .iter()
            .filter(|r| r.header("webhook-id") == Some(id.as_str()))
            .count();
        assert_eq!(copies, 1, "{id} delivered once");
    }
    assert_eq!(delivered.len(), 3, "nothing else was sent");
    let mut events: Vec<String> = delivered
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    events.sort();
    assert_eq!(
        events,
        ["job.decided", "records.reassigned", "seat.requested"]
    );
}
