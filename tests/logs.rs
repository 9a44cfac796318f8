//! What an operator's log pipeline receives: the real `offboard serve` process
//! with `--log-format json` (at debug level, so dependencies' lines count too)
//! does a full offboarding against the in-process Sell sandbox with
//! `[privacy] redact_emails = true`, and its stdout is checked line by line:
//! every line is a JSON object; no secret (webhook secret, admin token, Sell
//! token) and no raw e-mail appears anywhere; lines of a request carry its
//! `request_id`, lines of a job its `job_id`; the admin API is redacted too.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use offboard_core::telemetry::hash_email;
use offboard_sandbox::{SandboxOptions, Seed};
use offboard_testkit::{
    free_port,
    process::{self, Process},
    sell, sign,
};
use serde_json::{Value, json};

/// base64("logs-test-webhook-key!")
const WEBHOOK_SECRET: &str = "whsec_bG9ncy10ZXN0LXdlYmhvb2sta2V5IQ==";
const WEBHOOK_KEY: &str = "logs-test-webhook-key!";
const ADMIN_TOKEN: &str = "logs-admin-token-3f9a0c";
const SELL_TOKEN: &str = "logs-sell-token-77c1e2";
const LEAVER: &str = "jane.doe@example.com";
const LEAVER_ID: i64 = 101;

fn write_config(dir: &Path, port: u16, sell: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("policy.toml"),
        "version = 1\n[defaults]\nfallback_owner = \"sales-ops@example.com\"\nat = \"now\"\n\
         [[rules]]\nname = \"everyone\"\naction = \"deactivate\"\n",
    )
    .unwrap();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
[store]
url = "sqlite://{db}"
[crm]
base_url = "{sell}"
token_env = "LOGS_TEST_SELL_TOKEN"
admin_email = "admin@example.com"
requests_per_second = 200
[[sources]]
name = "hr"
scheme = "standard_webhooks"
secrets_env = "LOGS_TEST_WEBHOOK_SECRETS"
[policy]
file = "{dir}/policy.toml"
[admin]
token_env = "LOGS_TEST_ADMIN_TOKEN"
[worker]
verify_interval_secs = 1
poll_interval_ms = 100
lease_secs = 5
[privacy]
redact_emails = true
"#,
        db = dir.join("offboard.db").display(),
        dir = dir.display(),
    );
    let path = dir.join("offboard.toml");
    std::fs::write(&path, config).unwrap();
    path
}

struct Service {
    child: Process,
    base: String,
    http: reqwest::Client,
}

impl Service {
    async fn get_json(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    async fn wait_for(&self, what: &str, job: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.get_json(&format!("/api/v1/jobs/{job}")).await;
            if check(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The ids of every span enclosing a JSON log line.
fn span_field<'a>(line: &'a Value, field: &str) -> Vec<&'a str> {
    line["spans"]
        .as_array()
        .map(|spans| {
            spans
                .iter()
                .filter_map(|s| s[field].as_str())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_of_a_full_offboarding_carry_ids_and_no_secret_or_email() {
    let sandbox = sell::start(SandboxOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: Some(SELL_TOKEN.into()),
        rps: None,
        latency: Duration::ZERO,
        fault_rate: 0.0,
        seed: Seed::demo(),
        ..SandboxOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, &sandbox.base_url());

    let mut child = Process::spawn_capturing(
        process::serve(env!("CARGO_BIN_EXE_offboard"), &config)
            .args(["--log-format", "json"])
            .env("OFFBOARD_LOG", "debug")
            .env("LOGS_TEST_SELL_TOKEN", SELL_TOKEN)
            .env("LOGS_TEST_WEBHOOK_SECRETS", WEBHOOK_SECRET)
            .env("LOGS_TEST_ADMIN_TOKEN", ADMIN_TOKEN),
    );
    let base = format!("http://127.0.0.1:{port}");
    child.wait_ready(&base, Duration::from_secs(30)).await;
    let svc = Service {
        child,
        base,
        http: reqwest::Client::new(),
    };

    // A signed webhook, with the caller's own request id.
    let body = json!({
        "id": "evt_logs", "type": "employee.terminated",
        "employee": { "email": LEAVER, "name": "Jane Doe", "manager_email": "max.manager@example.com" },
        "termination": { "kind": "voluntary", "rehire_eligible": true }
    })
    .to_string();
    let ts = sign::now();
    let resp = sign::post(
        &svc.http,
        &format!("{}/webhooks/hr", svc.base),
        WEBHOOK_SECRET,
        "msg_logs",
        &body,
    )
    .header("x-request-id", "req-logs-webhook")
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["x-request-id"], "req-logs-webhook");
    let job_id = resp.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Refused requests log too: a forged signature, a wrong admin token.
    let forged = svc
        .http
        .post(format!("{}/webhooks/hr", svc.base))
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let generated_id = forged.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let wrong = svc
        .http
        .get(format!("{}/api/v1/jobs", svc.base))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // The admin asks; play the Sell admin; the job verifies and succeeds.
    svc.wait_for("the seat request", &job_id, |j| {
        j["checkpoints"].get("seat_requested_at").is_some()
    })
    .await;
    sandbox.state().deactivate(LEAVER_ID).await.unwrap();
    let job = svc
        .wait_for("success", &job_id, |j| j["state"] == "succeeded")
        .await;

    // The API output is redacted: hashes, never the address.
    let hashed = hash_email(LEAVER);
    assert_eq!(job["event"]["employee"]["email"], hashed.as_str());
    let list = svc.get_json("/api/v1/jobs").await;
    assert_eq!(list["jobs"][0]["employee_email"], hashed.as_str());
    for (what, v) in [("job", &job), ("list", &list)] {
        let text = v.to_string();
        assert!(
            !text.contains("@example.com"),
            "{what} not redacted: {text}"
        );
    }

    // Stop gracefully (SIGTERM) so every line is flushed.
    let Service { mut child, .. } = svc;
    let status = child.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status}");
    let out = child.stdout();
    let err = child.stderr();

    // 1. Every stdout line is one JSON object with the usual keys.
    assert!(out.len() > 50, "too few log lines: {}", out.len());
    let lines: Vec<Value> = out
        .iter()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "{l}");
            for key in ["timestamp", "level", "target"] {
                assert!(v.get(key).is_some(), "no {key}: {l}");
            }
            v
        })
        .collect();

    // 2. No secret, no raw e-mail, in any line of stdout or stderr; the leaver's
    // hash is there instead.
    let secrets = [
        WEBHOOK_SECRET,
        WEBHOOK_SECRET.trim_start_matches("whsec_"),
        WEBHOOK_KEY,
        ADMIN_TOKEN,
        SELL_TOKEN,
    ];
    for line in out.iter().chain(&err) {
        for s in secrets {
            assert!(!line.contains(s), "a secret in the log: {line}");
        }
        for leak in ["@example.com", "%40example.com", "jane.doe", "max.manager"] {
            assert!(!line.contains(leak), "an e-mail in the log: {line}");
        }
    }
    assert!(
        out.iter().any(|l| l.contains(&hashed)),
        "the leaver's hash never appears: logs don't name the employee at all"
    );

    // 3. Request lines carry the request id; the webhook's lines carry the caller's.
    let of_request = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| span_field(l, "request_id").contains(&id))
            .collect()
    };
    let webhook_lines = of_request("req-logs-webhook");
    let messages: Vec<&str> = webhook_lines
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"webhook stored: new job") && messages.contains(&"request finished"),
        "{messages:?}"
    );
    assert!(
        webhook_lines
            .iter()
            .any(|l| l["message"] == "request finished" && l["status"] == 202)
    );
    let forged_lines = of_request(&generated_id);
    assert!(
        forged_lines
            .iter()
            .any(|l| l["message"] == "webhook refused"),
        "{forged_lines:?}"
    );
    for l in &lines {
        let in_request = l["spans"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "request"));
        if in_request {
            assert_eq!(span_field(l, "request_id").len(), 1, "{l}");
        }
    }

    // 4. Job lines carry the job id: every step of the offboarding is there.
    let job_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| span_field(l, "job_id").contains(&job_id.as_str()))
        .collect();
    let job_messages: Vec<&str> = job_lines
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    for step in [
        "CRM user found",
        "decided",
        "records reassigned",
        "seat change requested from the CRM admin",
        "seat change verified in the CRM",
        "run ended",
    ] {
        assert!(
            job_messages.contains(&step),
            "no {step:?} in {job_messages:?}"
        );
    }
    for l in &job_lines {
        assert_eq!(span_field(l, "employee"), vec![hashed.as_str()], "{l}");
    }

    // 5. Every line offboard itself logs belongs to a request or a job, except the
    // process's own lifecycle and the worker loop's (which is about no job yet).
    let lifecycle = [
        "offboard listening",
        "worker started",
        "worker stopping: finishing in-flight work",
        "SIGTERM: shutting down",
        "offboard stopped",
        "claim failed",
        "could not requeue expired leases",
    ];
    for l in &lines {
        let ours = l["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("offboard"));
        let message = l["message"].as_str().unwrap_or_default();
        if ours && !lifecycle.contains(&message) {
            let ids = span_field(l, "request_id").len() + span_field(l, "job_id").len();
            assert!(ids > 0, "a line with neither request_id nor job_id: {l}");
        }
    }
    sandbox.shutdown().await;
}
