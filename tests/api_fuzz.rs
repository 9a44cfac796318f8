//! A property-based API fuzzer against the real `offboard serve`: schemathesis
//! (pinned in `.ci/schemathesis-requirements.txt`) reads offboard's own
//! `/api/v1/openapi.json` and sends what it generates from it — valid requests,
//! requests that break each declared bound, undeclared methods, missing and
//! wrong tokens — with every check on. The test passes only when schemathesis
//! reports no failure: every answer is a status the document lists, in the
//! content type and schema it declares (the JSON error envelope for every
//! rejection), no 5xx, every bound enforced, every undeclared method a 405 with
//! `Allow`, and no route open without the token.
//!
//! The store holds jobs in several states first (a receiver over a store the
//! worker never touches would only ever answer 404 for a job), so the fuzzer's
//! examples reach real jobs too.
//!
//! The report is printed (`cargo test --test api_fuzz -- --nocapture`) and written
//! to `$CARGO_TARGET_TMPDIR/api-fuzz.txt`. The fuzzer runs on the Python named by
//! `OFFBOARD_SCHEMATHESIS_PYTHON`, else on the venv `.ci/python-tool-setup
//! schemathesis` makes; without either a developer's run skips and says so, and a
//! CI run fails.

use std::{path::Path, process::Command, time::Duration};

use offboard_testkit::config::ServeConfig;
use offboard_testkit::process::{self, Process, free_port};
use offboard_testkit::python_tool::PythonTool;
use offboard_testkit::sign;

const FUZZER: PythonTool = PythonTool {
    name: "schemathesis",
    python_env: "OFFBOARD_SCHEMATHESIS_PYTHON",
    import_check: "import schemathesis",
};
const ADMIN_TOKEN: &str = "api-fuzz-admin-token-31c9";
const SECRET: &str = "whsec_c2VjcmV0LUEta2V5LWJ5dGVzLWZvci10ZXN0cw==";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_failure_on_the_documented_api() {
    let Some(python) = FUZZER.python_or_skip(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };

    let port = free_port();
    let dir = ServeConfig::receiver(port, SECRET, ADMIN_TOKEN).write();
    let mut child = Process::spawn_capturing(
        process::serve(env!("CARGO_BIN_EXE_offboard"), &dir.config).args(["--role", "receiver"]),
    );
    let base = format!("http://127.0.0.1:{port}");
    child.wait_ready(&base, Duration::from_secs(30)).await;

    // A few stored jobs, one of them cancelled, so show/retry/cancel/approve meet
    // real ids and states as well as unknown ones.
    let http = reqwest::Client::new();
    let mut job_ids = Vec::new();
    for i in 0..3 {
        let body = format!(
            r#"{{"id":"evt_fuzz_{i}","type":"employee.terminated","occurred_at":"2026-12-01T10:00:00Z","employee":{{"id":"E{i}","email":"rep{i}@example.com"}},"termination":{{"kind":"voluntary","effective_at":"2026-12-15T17:00:00Z"}}}}"#
        );
        let url = format!("{base}/webhooks/hr");
        let resp = sign::post(&http, &url, SECRET, &format!("msg_fuzz_{i}"), &body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            202,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        let accepted: serde_json::Value = resp.json().await.unwrap();
        job_ids.push(accepted["job_id"].as_str().unwrap().to_owned());
    }
    let cancelled = http
        .post(format!("{base}/api/v1/jobs/{}/cancel", job_ids[0]))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);

    let schema = format!("{base}/api/v1/openapi.json");
    let report_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("api-fuzz");
    let _ = std::fs::remove_dir_all(&report_dir);
    let out = tokio::task::spawn_blocking({
        let report_dir = report_dir.clone();
        move || {
            Command::new(&python)
                .args(["-m", "schemathesis.cli", "run", &schema])
                .args(["--url", &base])
                .args(["--checks", "all"])
                .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
                .args(["--max-examples", "60", "--workers", "2"])
                .args(["--generation-deterministic", "--no-color"])
                .args(["--report", "junit", "--report-dir"])
                .arg(&report_dir)
                .env("PYTHONUNBUFFERED", "1")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env("SCHEMATHESIS_HOOKS", "")
                .output()
                .unwrap_or_else(|e| panic!("run {} -m schemathesis.cli: {e}", python.display()))
        }
    })
    .await
    .unwrap();

    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("api-fuzz.txt");
    std::fs::write(&path, report.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));

    child.kill();
    let tail = |lines: Vec<String>| lines[lines.len().saturating_sub(30)..].join("\n");
    assert!(
        out.status.success(),
        "schemathesis reported failures or could not run ({}); its report is above and in {}.\n\
         offboard's last log lines:\n{}\n{}",
        out.status,
        path.display(),
        tail(child.stdout()),
        tail(child.stderr()),
    );
    assert!(
        report.contains("passed") && !report.contains("No operations"),
        "schemathesis tested nothing:\n{report}"
    );
    assert!(
        !child.stderr().iter().any(|l| l.contains("panicked")),
        "the server panicked under the fuzzer"
    );
}
