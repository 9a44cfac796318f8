//! `offboard jobs …` operates the queue straight on the store, with the service
//! down: the test builds a SQLite store with jobs in known states through the
//! `JobStore` trait, then drives the real binary against it and checks filters,
//! state transitions, `--json` output, and the messages and exit codes of
//! mistakes (unknown id, wrong state, bad filter, unmigrated store).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use chrono::Utc;
use offboard_core::{
    domain::{JobState, OffboardingEvent},
    store::{IngestOutcome, JobStore, NewEvent, Outcome, sqlite::SqliteStore},
};
use serde_json::{Value, json};

struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
    redacted_config: PathBuf,
    store: SqliteStore,
    review: String,
    queued: String,
    failed: String,
    /// Between the first two jobs and the last one.
    middle: chrono::DateTime<Utc>,
}

fn new_event(id: &str, email: &str) -> NewEvent {
    let event = OffboardingEvent::from_json(
        &json!({
            "id": id, "type": "employee.terminated",
            "employee": { "email": email, "name": "Test Person" },
            "termination": { "kind": "voluntary", "rehire_eligible": true },
        }),
        None,
    )
    .unwrap();
    NewEvent {
        source: "hr".into(),
        event,
        body_sha256: format!("sha-{id}"),
        run_at: Utc::now(),
        max_attempts: 3,
    }
}

async fn ingest(store: &SqliteStore, id: &str, email: &str) -> String {
    match store
        .ingest(vec![new_event(id, email)])
        .await
        .unwrap()
        .as_slice()
    {
        [IngestOutcome::Accepted { job_id, .. }] => job_id.clone(),
        other => panic!("{other:?}"),
    }
}

/// Claims the one runnable job and ends its run with `outcome`.
async fn run_to(store: &SqliteStore, id: &str, outcome: Outcome) {
    let claimed = store
        .claim("cli-test", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.id, id);
    store.finish(&claimed[0].lease, outcome).await.unwrap();
}

fn write_config(dir: &Path, name: &str, db: &Path, redact: bool) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[store]\nurl = \"sqlite://{}\"\n[privacy]\nredact_emails = {redact}\n",
            db.display()
        ),
    )
    .unwrap();
    path
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offboard.db");
    let store = SqliteStore::open(&format!("sqlite://{}", db.display()), "full")
        .await
        .unwrap();
    store.migrate().await.unwrap();

    let review = ingest(&store, "evt_1", "jane.doe@example.com").await;
    run_to(
        &store,
        &review,
        Outcome::NeedsReview {
            reason: "manager with active reportees".into(),
        },
    )
    .await;
    let failed = ingest(&store, "evt_2", "lee.hold@example.com").await;
    run_to(
        &store,
        &failed,
        Outcome::Failed {
            error: "CRM said 401".into(),
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let middle = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let queued = ingest(&store, "evt_3", "sam.seller@example.com").await;

    Fixture {
        config: write_config(dir.path(), "offboard.toml", &db, false),
        redacted_config: write_config(dir.path(), "redacted.toml", &db, true),
        _dir: dir,
        store,
        review,
        queued,
        failed,
        middle,
    }
}

fn offboard(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(config)
        .arg("jobs")
        .args(args)
        .env_remove("OFFBOARD_LOG")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json_ok(out: &Output) -> Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Exit code 1 and the one-line message on stderr.
fn fails(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(err.starts_with("offboard: "), "{err}");
    err
}

fn ids(list: &Value) -> Vec<String> {
    list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn state(f: &Fixture, id: &str) -> JobState {
    f.store.get_job(id).await.unwrap().unwrap().job.state
}

#[tokio::test]
async fn list_filters_by_state_employee_and_since() {
    let f = fixture().await;
    let all = json_ok(&offboard(&f.config, &["list", "--json"]));
    assert_eq!(
        ids(&all),
        vec![f.queued.clone(), f.failed.clone(), f.review.clone()],
        "newest first"
    );
    for entry in all["jobs"].as_array().unwrap() {
        for key in [
            "id",
            "state",
            "employee_email",
            "action",
            "created_at",
            "updated_at",
        ] {
            assert!(entry.get(key).is_some(), "no {key} in {entry}");
        }
    }
    let review = json_ok(&offboard(
        &f.config,
        &["list", "--state", "needs_review", "--json"],
    ));
    assert_eq!(ids(&review), vec![f.review.clone()]);
    assert_eq!(review["jobs"][0]["state"], "needs_review");

    // The e-mail is normalised like the stored one.
    let jane = json_ok(&offboard(
        &f.config,
        &["list", "--employee", " Jane.Doe@Example.com ", "--json"],
    ));
    assert_eq!(ids(&jane), vec![f.review.clone()]);

    let since = f.middle.to_rfc3339();
    let recent = json_ok(&offboard(&f.config, &["list", "--since", &since, "--json"]));
    assert_eq!(ids(&recent), vec![f.queued.clone()]);
    let both = json_ok(&offboard(
        &f.config,
        &["list", "--since", &since, "--state", "failed", "--json"],
    ));
    assert!(ids(&both).is_empty());

    // The human table.
    let table = ok(&offboard(&f.config, &["list"]));
    let header = table.lines().next().unwrap();
    for col in ["id", "state", "kind", "action", "employee", "created"] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(table.contains(&f.review) && table.contains("needs_review"));
    assert!(table.contains("jane.doe@example.com"));
    let none = ok(&offboard(
        &f.config,
        &["list", "--since", "2999-01-01T00:00:00Z"],
    ));
    assert!(none.contains("(no jobs)"), "{none}");

    // With [privacy] redact_emails the CLI hashes addresses too.
    let hashed = offboard_core::telemetry::hash_email("jane.doe@example.com");
    let redacted = json_ok(&offboard(&f.redacted_config, &["list", "--json"]));
    assert!(!redacted.to_string().contains('@'), "{redacted}");
    assert!(redacted.to_string().contains(&hashed));
    let table = ok(&offboard(&f.redacted_config, &["list"]));
    assert!(!table.contains('@') && table.contains(&hashed), "{table}");
    let shown = json_ok(&offboard(
        &f.redacted_config,
        &["show", &f.review, "--json"],
    ));
    assert!(!shown.to_string().contains("@example.com"), "{shown}");

    // A bad filter is a usage error.
    let bad = offboard(&f.config, &["list", "--state", "stuck"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("needs_review"));
}

#[tokio::test]
async fn retry_cancel_approve_move_jobs_and_refuse_wrong_states() {
    let f = fixture().await;

    let shown = json_ok(&offboard(&f.config, &["show", &f.review, "--json"]));
    assert_eq!(shown["id"], f.review.as_str());
    assert_eq!(shown["state"], "needs_review");
    assert_eq!(shown["last_error"], "manager with active reportees");
    assert!(shown["audit"].is_array() && shown["checkpoints"].is_object());
    let pretty = ok(&offboard(&f.config, &["show", &f.review]));
    assert!(
        pretty.lines().count() > 5,
        "show without --json is indented JSON"
    );

    // approve: needs_review → queued, approved.
    let approved = json_ok(&offboard(&f.config, &["approve", &f.review, "--json"]));
    assert_eq!(approved["id"], f.review.as_str());
    assert_eq!(approved["state"], "queued");
    let job = f.store.get_job(&f.review).await.unwrap().unwrap().job;
    assert_eq!(job.state, JobState::Queued);
    assert!(job.approved);

    // approve a job that is not waiting for review: refused, nothing changes.
    let err = fails(&offboard(&f.config, &["approve", &f.queued]));
    assert!(
        err.contains(&f.queued) && err.contains("queued") && err.contains("cannot approve"),
        "{err}"
    );
    assert_eq!(state(&f, &f.queued).await, JobState::Queued);

    // cancel: queued → cancelled; a second cancel is refused.
    let out = ok(&offboard(&f.config, &["cancel", &f.queued]));
    assert_eq!(out.trim(), format!("job {} is now cancelled", f.queued));
    assert_eq!(state(&f, &f.queued).await, JobState::Cancelled);
    let err = fails(&offboard(&f.config, &["cancel", &f.queued]));
    assert!(
        err.contains("cancelled") && err.contains("cannot cancel"),
        "{err}"
    );

    // retry: cancelled → queued, failed → queued (failures reset).
    let retried = json_ok(&offboard(&f.config, &["retry", &f.queued, "--json"]));
    assert_eq!(retried["state"], "queued");
    assert_eq!(state(&f, &f.queued).await, JobState::Queued);
    ok(&offboard(&f.config, &["retry", &f.failed]));
    let job = f.store.get_job(&f.failed).await.unwrap().unwrap().job;
    assert_eq!((job.state, job.failures), (JobState::Queued, 0));
    // retry of a queued job: refused.
    let err = fails(&offboard(&f.config, &["retry", &f.failed]));
    assert!(err.contains("cannot retry"), "{err}");

    // The operator's actions are in the audit trail.
    let audit = json_ok(&offboard(&f.config, &["show", &f.queued, "--json"]))["audit"].to_string();
    assert!(audit.contains("cancelled by operator (CLI)"), "{audit}");
    let shown = json_ok(&offboard(&f.config, &["show", &f.queued, "--json"]));
    let operator: Vec<&serde_json::Value> = shown["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("operator."))
        })
        .collect();
    assert!(!operator.is_empty());
    assert!(
        operator.iter().all(|a| a["detail"]["via"] == "cli"),
        "every CLI action says via cli: {operator:?}"
    );

    // Unknown ids: exit 1, and the message says so.
    for op in ["show", "retry", "cancel", "approve"] {
        let err = fails(&offboard(&f.config, &[op, "no-such-job"]));
        assert_eq!(err.trim(), "offboard: no job no-such-job", "{op}");
    }
}

#[tokio::test]
async fn an_unmigrated_store_points_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing.db");
    let config = write_config(dir.path(), "offboard.toml", &db, false);
    let err = fails(&offboard(&config, &["list"]));
    assert!(err.contains("offboard migrate"), "{err}");
}
