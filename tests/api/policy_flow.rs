//! Policy features end to end: hourly caps with approval, dry run, reversal by
//! rehire or cancellation, and the `delete_after` follow-up.

use offboard_core::domain::{Clock, Resource};
use offboard_testkit::sell;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn deletions_beyond_the_hourly_cap_wait_for_approval() {
    let leavers: Vec<(i64, String)> = (0..5)
        .map(|i| (30 + i, format!("leaver{i}@example.com")))
        .collect();
    let reps: Vec<(i64, &str)> = leavers.iter().map(|(id, e)| (*id, e.as_str())).collect();
    let app = spawn_app_with(Options {
        seed: sell::standard_org_with_reps(&reps, 5),
        extra_config: "[safety]\nmax_deletions_per_hour = 2\n".into(),
        ..Options::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.accept(
                &format!("m{i}"),
                &termination(
                    &format!("e{i}"),
                    &format!("leaver{i}@example.com"),
                    "involuntary",
                    false,
                    false,
                ),
            )
            .await,
        );
    }
    app.run_jobs().await;
    let mut waiting = Vec::new();
    let mut proceeding = 0;
    for id in &ids {
        let job = app.job(id).await;
        assert_eq!(job["action"], "delete");
        match job["state"].as_str().unwrap() {
            "scheduled" => proceeding += 1,
            "needs_review" => {
                assert!(
                    job["last_error"]
                        .as_str()
                        .unwrap()
                        .contains("deletions cap reached"),
                    "{job:#}"
                );
                assert!(has_audit(&job, "guard.cap"));
                waiting.push(id.clone());
            }
            other => panic!("unexpected state {other}: {job:#}"),
        }
    }
    assert_eq!((proceeding, waiting.len()), (2, 3));
    assert_eq!(
        sell::created_tasks(&app.sell()).await.len(),
        2,
        "only two deletions were requested"
    );

    let approved: Value = app
        .admin_post(&format!("/api/v1/jobs/{}/approve", waiting[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(approved["state"], "queued");
    app.run_jobs().await;
    let job = app.job(&waiting[0]).await;
    assert_eq!(job["state"], "scheduled", "{job:#}");
    assert!(job["checkpoints"].get("seat_requested_at").is_some());
    assert_eq!(sell::created_tasks(&app.sell()).await.len(), 3);
    assert_eq!(
        app.job(&waiting[1]).await["state"],
        "needs_review",
        "the others keep waiting"
    );
}

#[tokio::test]
async fn dry_run_plans_and_audits_but_sends_no_write() {
    let app = spawn_app_with(Options {
        extra_config: "[safety]\ndry_run = true\n".into(),
        ..Options::default()
    })
    .await;
    let (_, job) = app
        .accept_and_run(
            "m",
            &termination("e", "jane.doe@example.com", "voluntary", true, false),
        )
        .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let writes: Vec<_> = app
        .sell()
        .request_log()
        .into_iter()
        .filter(|e| e.method != "GET")
        .map(|e| (e.method, e.path))
        .collect();
    assert!(writes.is_empty(), "dry run sent {writes:?}");
    let would: Vec<&Value> = job["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["detail"]["method"]
                .as_str()
                .is_some_and(|m| m.starts_with("would "))
        })
        .collect();
    assert!(would.iter().any(|a| a["detail"]["method"] == "would PUT"));
    assert!(would.iter().any(|a| a["detail"]["method"] == "would POST"));
    assert!(
        sell::owned(&app.sell(), Resource::Leads, 10).await.0 > 0,
        "nothing moved"
    );
    // Reads are allowed in a dry run: the facts a real run would rest on before
    // the seat change were read and audited all the same.
    let fresh = audit(&job, "facts.fresh")
        .next()
        .unwrap_or_else(|| panic!("no fresh read in a dry run: {job:#}"));
    assert_eq!(
        fresh["detail"]["read"]["user"]["status"], "active",
        "{fresh:#}"
    );
    assert!(
        fresh["detail"]["read"]["open_records_counted"]
            .as_str()
            .is_some_and(|s| s.contains("dry run"))
    );
}

const EFFECTIVE_POLICY: &str = r#"
version = 1
[defaults]
fallback_owner = "sales-ops@example.com"
[[rules]]
name = "everyone: deactivate at the effective time, delete after retention"
action = "deactivate"
delete_after = "30d"
"#;

fn event(id: &str, kind: &str, email: &str, effective: &str) -> String {
    json!({
        "id": id, "type": kind,
        "employee": { "email": email, "manager_email": "max.manager@example.com" },
        "termination": { "effective_at": effective, "kind": "voluntary", "rehire_eligible": true }
    })
    .to_string()
}

#[tokio::test]
async fn nothing_moves_before_the_effective_time_and_everything_after_it() {
    let app = spawn_app_with(Options {
        policy: EFFECTIVE_POLICY.into(),
        ..Options::default()
    })
    .await;
    // Whole seconds: the store keeps milliseconds.
    let effective = chrono::DateTime::from_timestamp(
        (app.clock.now() + chrono::Duration::days(2)).timestamp(),
        0,
    )
    .unwrap();
    let (id, job) = app
        .accept_and_run(
            "m1",
            &event(
                "e1",
                "employee.terminated",
                "jane.doe@example.com",
                &effective.to_rfc3339(),
            ),
        )
        .await;
    assert_eq!(job["state"], "scheduled", "{job:#}");

    app.advance(chrono::Duration::days(1));
    assert_eq!(app.run_jobs().await, 0, "a day early: nothing runs");
    assert!(sell::puts(&app.sell()).is_empty());

    app.advance_to_run_at(&id).await;
    assert!(app.clock.now() >= effective);
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(
        job["state"], "scheduled",
        "now waiting for the admin: {job:#}"
    );
    assert!(job["checkpoints"].get("seat_requested_at").is_some());
    assert_eq!(
        sell::owned(&app.sell(), Resource::Leads, 10).await.0,
        0,
        "records moved"
    );
}

#[tokio::test]
async fn a_cancelled_termination_cancels_the_pending_job() {
    let app = spawn_app_with(Options {
        policy: EFFECTIVE_POLICY.into(),
        ..Options::default()
    })
    .await;
    let (id, job) = app
        .accept_and_run(
            "m1",
            &event(
                "e1",
                "employee.terminated",
                "jane.doe@example.com",
                "2030-01-01T00:00:00Z",
            ),
        )
        .await;
    assert_eq!(
        job["state"], "scheduled",
        "waits for the effective time: {job:#}"
    );
    assert!(
        sell::puts(&app.sell()).is_empty(),
        "nothing happens before the effective time"
    );

    let reverse = app
        .accept(
            "m2",
            &event(
                "e2",
                "employee.termination_cancelled",
                "jane.doe@example.com",
                "2030-01-01T00:00:00Z",
            ),
        )
        .await;
    app.run_jobs().await;
    assert_eq!(app.job(&reverse).await["state"], "succeeded");
    let job = app.job(&id).await;
    assert_eq!(job["state"], "cancelled", "{job:#}");
    assert!(has_audit(&job, "job.cancelled"));
    assert!(sell::puts(&app.sell()).is_empty());
}

#[tokio::test]
async fn deactivate_then_delete_after_retention_unless_rehired() {
    let app = spawn_app_with(Options {
        policy: EFFECTIVE_POLICY.into(),
        ..Options::default()
    })
    .await;
    let now = app.clock.now().to_rfc3339();
    let sam = app
        .accept(
            "m1",
            &event("e1", "employee.terminated", "sam.seller@example.com", &now),
        )
        .await;
    let lee = app
        .accept(
            "m2",
            &event("e2", "employee.terminated", "lee.hold@example.com", &now),
        )
        .await;
    app.run_jobs().await;
    app.sell().deactivate(11).await.unwrap();
    app.sell().deactivate(12).await.unwrap();
    for id in [&sam, &lee] {
        let job = app.run_job_until_settled(id, 10).await;
        assert_eq!(job["state"], "succeeded", "{job:#}");
        assert!(has_audit(&job, "follow_up.scheduled"), "{job:#}");
    }
    let follow_ups: Value = app
        .admin_get("/api/v1/jobs?state=scheduled")
        .await
        .json()
        .await
        .unwrap();
    let follow_ups = follow_ups["jobs"].as_array().unwrap().clone();
    assert_eq!(follow_ups.len(), 2);
    assert!(
        follow_ups
            .iter()
            .all(|j| j["kind"] == "delete_after_retention")
    );

    // Lee is rehired before the retention ends: the pending delete is cancelled and
    // the admin is asked to reactivate the seat.
    let rehire = app
        .accept(
            "m3",
            &event("e3", "employee.rehired", "lee.hold@example.com", &now),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&rehire).await;
    assert_eq!(job["state"], "scheduled", "{job:#}");
    assert!(
        sell::created_tasks(&app.sell())
            .await
            .iter()
            .any(|t| t.contains("REACTIVATE") && t.contains("lee.hold@example.com"))
    );
    app.sell().reactivate(12).await.unwrap();
    assert_eq!(
        app.run_job_until_settled(&rehire, 10).await["state"],
        "succeeded"
    );

    // Sam's retention ends: the follow-up passes the guards again and asks for deletion.
    let sam_follow_up = follow_ups
        .iter()
        .find(|j| j["employee_email"] == "sam.seller@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.run_jobs().await, 0, "the retention has not ended yet");
    app.advance_to_run_at(&sam_follow_up).await;
    app.run_jobs().await;
    let jobs: Value = app.admin_get("/api/v1/jobs").await.json().await.unwrap();
    let find = |email: &str| {
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["kind"] == "delete_after_retention" && j["employee_email"] == email)
            .unwrap()
            .clone()
    };
    assert_eq!(find("lee.hold@example.com")["state"], "cancelled");
    let sam_delete = find("sam.seller@example.com");
    let sam_delete = app.job(sam_delete["id"].as_str().unwrap()).await;
    assert_eq!(sam_delete["action"], "delete", "{sam_delete:#}");
    assert_eq!(sam_delete["state"], "scheduled");
    assert!(
        sell::created_tasks(&app.sell())
            .await
            .iter()
            .any(|t| t.contains("DELETE") && t.contains("sam.seller@example.com"))
    );
    app.sell().delete(11).await.unwrap();
    let done = app
        .run_job_until_settled(sam_delete["id"].as_str().unwrap(), 10)
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
}
