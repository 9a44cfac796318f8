//! Whole offboardings through the running app against the Sell sandbox.

use offboard_core::domain::Resource;
use offboard_testkit::sell;

use crate::helpers::*;

#[tokio::test]
async fn voluntary_leaver_is_reassigned_to_manager_and_deactivated() {
    let app = spawn_app().await;
    let (open_before, closed_before) = sell::owned_records(&app.sell(), 10).await;
    assert!(open_before.len() > 600);
    let id = app
        .accept(
            "msg_j",
            &termination("evt_j", "jane.doe@example.com", "voluntary", true, false),
        )
        .await;

    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(job["state"], "scheduled", "{job:#}");
    assert_eq!(job["action"], "deactivate");
    assert_eq!(job["plan"]["rule"], "leavers who may come back");

    for resource in Resource::ALL {
        let (open, _) = sell::owned(&app.sell(), resource, 10).await;
        assert_eq!(open, 0, "{resource} still open with the leaver");
    }
    let listed_pages = app
        .sell()
        .request_log()
        .iter()
        .filter(|e| {
            e.method == "GET" && e.path.starts_with("/v2/deals?") && e.path.contains("page=3")
        })
        .count();
    assert!(listed_pages >= 1, "deals were not paged to page 3");
    // PUTs per record, whatever their outcome.
    let puts = app.sell().stats().puts;
    assert_eq!(
        puts.values().sum::<u64>(),
        open_before.len() as u64,
        "one PUT per open record"
    );
    let (with_manager, _) = sell::owned_records(&app.sell(), 2).await;
    assert!(
        puts.keys().all(|r| with_manager.contains(r)),
        "records went to the manager"
    );
    assert!(
        puts.keys().all(|r| !closed_before.contains(r)),
        "a closed record was PUT"
    );
    assert!(puts.values().all(|n| *n == 1), "a record was PUT twice");
    let (_, closed_after) = sell::owned_records(&app.sell(), 10).await;
    assert_eq!(
        closed_after, closed_before,
        "closed records stay with the leaver"
    );
    let tasks = sell::created_tasks(&app.sell()).await;
    assert_eq!(tasks.len(), 1, "exactly one admin task");
    assert!(
        tasks[0].contains("DEACTIVATE") && tasks[0].contains("jane.doe@example.com"),
        "{}",
        tasks[0]
    );

    // Polls while the admin has not acted keep it scheduled, without a second task.
    app.run_jobs().await;
    app.advance_to_run_at(&id).await;
    assert_eq!(
        app.run_jobs().await,
        1,
        "the next verification poll came due"
    );
    assert_eq!(app.job(&id).await["state"], "scheduled");
    assert_eq!(sell::created_tasks(&app.sell()).await.len(), 1);

    app.sell().deactivate(10).await.unwrap();
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    for k in [
        "crm.user_found",
        "decision",
        "target.candidate",
        "reassign.done",
        "seat.task_created",
        "seat.verified",
        "outcome",
        "crm.call",
    ] {
        assert!(has_audit(&job, k), "audit lacks {k}: {:#}", job["audit"]);
    }
    let call = audit(&job, "crm.call").next().unwrap();
    for key in ["method", "path", "status", "duration_ms"] {
        assert!(call["detail"].get(key).is_some(), "crm.call lacks {key}");
    }
}

#[tokio::test]
async fn involuntary_termination_deletes_after_reassigning() {
    let app = spawn_app().await;
    let (id, job) = app
        .accept_and_run(
            "msg_s",
            &termination(
                "evt_s",
                "sam.seller@example.com",
                "involuntary",
                false,
                false,
            ),
        )
        .await;
    assert_eq!(job["action"], "delete", "{job:#}");
    assert_eq!(job["state"], "scheduled");
    let tasks = sell::created_tasks(&app.sell()).await;
    assert_eq!(tasks.len(), 1, "{job:#}");
    assert!(tasks[0].contains("DELETE") && tasks[0].contains("sam.seller@example.com"));
    let (open, closed) = sell::owned(&app.sell(), Resource::Deals, 11).await;
    assert_eq!(open, 0);
    assert!(closed > 0, "closed deals stay with the deleted user");
    app.sell().delete(11).await.unwrap();
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
}

#[tokio::test]
async fn deletion_is_refused_for_admins_legal_hold_and_managers() {
    let app = spawn_app().await;
    let admin = app
        .accept(
            "m1",
            &termination("e1", "ada.admin@example.com", "involuntary", false, false),
        )
        .await;
    let hold = app
        .accept(
            "m2",
            &termination("e2", "lee.hold@example.com", "involuntary", false, true),
        )
        .await;
    let boss = app
        .accept(
            "m3",
            &termination("e3", "boss@example.com", "involuntary", false, false),
        )
        .await;
    app.run_jobs().await;

    for (id, guard) in [
        (&admin, "never_delete_admin"),
        (&hold, "never_delete_under_legal_hold"),
    ] {
        let job = app.job(id).await;
        assert_eq!(job["action"], "deactivate", "{job:#}");
        assert_eq!(job["plan"]["rule_action"], "delete");
        let g = job["plan"]["guards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["guard"] == guard)
            .unwrap();
        assert_eq!(g["changed"], true, "{guard}");
        assert_eq!(job["state"], "scheduled");
    }
    let job = app.job(&boss).await;
    assert_eq!(job["state"], "needs_review", "{job:#}");
    let g = job["plan"]["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guard"] == "never_delete_manager_with_reportees")
        .unwrap();
    assert_eq!(g["changed"], true);
    assert!(
        sell::owned(&app.sell(), Resource::Leads, 20).await.0 > 0,
        "nothing moved for a job waiting for review"
    );
    let tasks = sell::created_tasks(&app.sell()).await;
    assert_eq!(tasks.len(), 2);
    assert!(
        tasks
            .iter()
            .all(|t| t.contains("DEACTIVATE") && !t.contains("DELETE")),
        "{tasks:?}"
    );
}

#[tokio::test]
async fn unknown_employee_succeeds_with_no_crm_user() {
    let app = spawn_app().await;
    let (_, job) = app
        .accept_and_run(
            "m",
            &termination("e", "nobody@example.com", "voluntary", true, false),
        )
        .await;
    assert_eq!(job["state"], "succeeded");
    let outcome = audit(&job, "outcome").next().unwrap();
    assert_eq!(outcome["detail"]["result"], "no CRM user");
}

#[tokio::test]
async fn permanent_crm_error_fails_with_the_crm_message() {
    let app = spawn_app_with(Options {
        sell_token: "revoked-sell-token".into(),
        ..Options::default()
    })
    .await;
    let (_, job) = app
        .accept_and_run(
            "m",
            &termination("e", "jane.doe@example.com", "voluntary", true, false),
        )
        .await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("request is unauthorized"),
        "{job:#}"
    );
}

#[tokio::test]
async fn a_restarted_instance_finishes_an_accepted_job() {
    let mut app = spawn_app().await;
    let id = app
        .accept(
            "m",
            &termination("e", "sam.seller@example.com", "voluntary", true, false),
        )
        .await;
    app.stop().await;
    let app = app.restart().await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(job["state"], "scheduled", "{job:#}");
    assert_eq!(sell::owned(&app.sell(), Resource::Leads, 11).await.0, 0);
    app.sell().deactivate(11).await.unwrap();
    assert_eq!(
        app.run_job_until_settled(&id, 10).await["state"],
        "succeeded"
    );
}

#[tokio::test]
async fn an_admin_who_never_acts_sends_the_job_to_review_at_the_verify_deadline() {
    let app = spawn_app().await;
    let (id, job) = app
        .accept_and_run(
            "m",
            &termination("e", "sam.seller@example.com", "voluntary", true, false),
        )
        .await;
    assert_eq!(job["state"], "scheduled");

    // worker.verify_deadline_hours defaults to 72, counted from seat_requested_at.
    app.advance(chrono::Duration::hours(71));
    assert_eq!(app.run_jobs().await, 1);
    assert_eq!(
        app.job(&id).await["state"],
        "scheduled",
        "still within the deadline"
    );
    app.advance(chrono::Duration::hours(1));
    assert_eq!(app.run_jobs().await, 1);
    let job = app.job(&id).await;
    assert_eq!(job["state"], "needs_review", "{job:#}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("after the verification deadline"),
        "{job:#}"
    );
    assert_eq!(
        sell::created_tasks(&app.sell()).await.len(),
        1,
        "no second task"
    );
}

/// A termination of `email` that takes effect well after the test clock's start,
/// so the job decides, then waits, and the test can change the facts meanwhile.
fn later_termination(id: &str, email: &str, kind: &str, legal_hold: bool) -> String {
    serde_json::json!({
        "id": id,
        "type": "employee.terminated",
        "occurred_at": "2026-12-01T10:00:00Z",
        "employee": { "id": "E11", "email": email, "manager_email": "max.manager@example.com" },
        "termination": { "effective_at": "2030-01-15T17:00:00Z", "kind": kind, "rehire_eligible": false },
        "legal_hold": legal_hold
    })
    .to_string()
}

/// The tests' policy, with every action at the effective time.
async fn spawn_app_acting_at_the_effective_time() -> TestApp {
    spawn_app_with(Options {
        policy: POLICY.replace("at = \"now\"", "at = \"effective\""),
        ..Options::default()
    })
    .await
}

/// The `facts.fresh` entry: what the seat step read right before acting.
fn fresh_read(job: &serde_json::Value) -> serde_json::Value {
    audit(job, "facts.fresh")
        .last()
        .map(|a| a["detail"]["read"].clone())
        .unwrap_or_else(|| panic!("no facts.fresh in the audit: {job:#}"))
}

/// The decision to delete Sam was made while he was an ordinary user; he was made
/// a CRM admin before the effective time. The delete rests on the role read right
/// before it, not on the one read at the start: refused, nothing deleted.
#[tokio::test]
async fn a_rep_made_admin_after_the_decision_is_not_deleted() {
    let app = spawn_app_acting_at_the_effective_time().await;
    let id = app
        .accept(
            "m1",
            &later_termination("e1", "sam.seller@example.com", "involuntary", false),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(job["action"], "delete", "{job:#}");
    assert_eq!(job["state"], "scheduled", "waits for the effective time");

    app.sell()
        .set_role(11, offboard_core::domain::UserRole::Admin)
        .await
        .unwrap();
    app.advance_to_run_at(&id).await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(job["state"], "needs_review", "{job:#}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("admin"),
        "{job:#}"
    );
    assert_eq!(fresh_read(&job)["user"]["role"], "admin");
    assert!(
        sell::created_tasks(&app.sell()).await.is_empty(),
        "no one was asked to delete"
    );
    assert!(app.sell().user(11).await.unwrap().deleted_at.is_none());
}

/// A legal hold for the same employee arrived (as a second event) after the job
/// decided to delete: the newest event wins, the delete is refused, and the
/// audit names the event that was read.
#[tokio::test]
async fn a_legal_hold_that_arrives_later_stops_the_delete() {
    let app = spawn_app_acting_at_the_effective_time().await;
    let first = app
        .accept(
            "m1",
            &later_termination("e1", "sam.seller@example.com", "involuntary", false),
        )
        .await;
    app.run_jobs().await;
    assert_eq!(app.job(&first).await["action"], "delete");

    let hold = app
        .accept(
            "m2",
            &later_termination("e2", "sam.seller@example.com", "involuntary", true),
        )
        .await;
    app.advance_to_run_at(&first).await;
    app.run_jobs().await;
    let job = app.job(&first).await;
    assert_eq!(job["state"], "needs_review", "{job:#}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("legal hold"),
        "{job:#}"
    );
    let read = fresh_read(&job);
    assert_eq!(read["newer_event"]["job_id"], hold.as_str(), "{read:#}");
    assert_eq!(read["newer_event"]["legal_hold"], true);
    let tasks = sell::created_tasks(&app.sell()).await;
    assert!(tasks.iter().all(|t| !t.contains("DELETE")), "{tasks:?}");
}

/// `seat_first = true` with Sell, whose seat step is a person's: the admin task
/// goes out before any record moves, its text says the records are being moved
/// now, and the job finishes once the admin has deactivated the seat.
#[tokio::test]
async fn seat_first_asks_the_admin_before_the_first_record_moves() {
    let app = spawn_app_with(Options {
        policy: POLICY.replace(
            "rehire_eligible = true }\naction = \"deactivate\"",
            "rehire_eligible = true }\naction = \"deactivate\"\nseat_first = true",
        ),
        ..Options::default()
    })
    .await;
    let id = app
        .accept(
            "m1",
            &termination("e1", "jane.doe@example.com", "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    let log = app.sell().request_log();
    let task = log
        .iter()
        .position(|e| e.method == "POST" && e.path.starts_with("/v2/tasks"))
        .unwrap_or_else(|| panic!("no admin task in {log:?}"));
    let first_move = log
        .iter()
        .position(|e| e.method == "PUT")
        .unwrap_or_else(|| panic!("no record moved: {log:?}"));
    assert!(
        task < first_move,
        "task at request {task}, first move at {first_move}"
    );
    let tasks = sell::created_tasks(&app.sell()).await;
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].contains("being reassigned"), "{}", tasks[0]);
    assert_eq!(
        sell::owned(&app.sell(), Resource::Leads, 10).await.0,
        0,
        "all moved in the same run"
    );

    app.sell().deactivate(10).await.unwrap();
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
}
