//! Whole offboardings through the running app against the stateful Sell fake.

use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::*;

fn audit_kinds(job: &Value) -> Vec<String> {
    job["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn closed_ids(app: &TestApp, owner: i64) -> HashSet<i64> {
    let s = app.fake.state();
    s.records
        .values()
        .flatten()
        .filter(|r| {
            r.owner_id == owner
                && (r.completed == Some(true) || matches!(r.stage_id, Some(3 | 4 | 13)))
        })
        .map(|r| r.id)
        .collect()
}

#[tokio::test]
async fn voluntary_leaver_is_reassigned_to_manager_and_deactivated() {
    let app = spawn_app().await;
    let closed_before = closed_ids(&app, 10);
    let open_before: usize = ["leads", "contacts", "deals", "tasks"]
        .iter()
        .map(|r| app.fake.owned(r, 10).0)
        .sum();
    assert!(open_before > 600);
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

    for resource in ["leads", "contacts", "deals", "tasks"] {
        let (open, _) = app.fake.owned(resource, 10);
        assert_eq!(open, 0, "{resource} still open with the leaver");
    }
    let (puts, tasks, listed_pages) = {
        let s = app.fake.state();
        let pages = s
            .log
            .iter()
            .filter(|(m, p)| m == "GET" && p.starts_with("/v2/deals?") && p.contains("page=3"))
            .count();
        (s.puts.clone(), s.created_tasks.clone(), pages)
    };
    assert!(listed_pages >= 1, "deals were not paged to page 3");
    assert_eq!(puts.len(), open_before, "one PUT per open record");
    assert!(
        puts.iter().all(|(_, _, owner)| *owner == 2),
        "records went to the manager"
    );
    assert!(
        puts.iter().all(|(_, rid, _)| !closed_before.contains(rid)),
        "a closed record was PUT"
    );
    let unique: HashSet<i64> = puts.iter().map(|(_, rid, _)| *rid).collect();
    assert_eq!(unique.len(), puts.len(), "a record was PUT twice");
    let closed_after: usize = ["deals", "tasks"]
        .iter()
        .map(|r| app.fake.owned(r, 10).1)
        .sum();
    assert_eq!(
        closed_after,
        closed_before.len(),
        "closed records stay with the leaver"
    );
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
    assert_eq!(app.fake.state().created_tasks.len(), 1);

    app.fake.set_user_status(10, "inactive");
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let kinds = audit_kinds(&job);
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
        assert!(kinds.iter().any(|x| x == k), "audit lacks {k}: {kinds:?}");
    }
    let call = job["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "crm.call")
        .unwrap();
    for key in ["method", "path", "status", "duration_ms"] {
        assert!(call["detail"].get(key).is_some(), "crm.call lacks {key}");
    }
}

#[tokio::test]
async fn involuntary_termination_deletes_after_reassigning() {
    let app = spawn_app().await;
    let id = app
        .accept(
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
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(job["action"], "delete", "{job:#}");
    assert_eq!(job["state"], "scheduled");
    let tasks = app.fake.state().created_tasks.clone();
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].contains("DELETE") && tasks[0].contains("sam.seller@example.com"));
    assert_eq!(app.fake.owned("deals", 11).0, 0);
    assert!(
        app.fake.owned("deals", 11).1 > 0,
        "closed deals stay with the deleted user"
    );
    app.fake.delete_user(11);
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
        app.fake.owned("leads", 20).0 > 0,
        "nothing moved for a job waiting for review"
    );
    let tasks = app.fake.state().created_tasks.clone();
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
    let id = app
        .accept(
            "m",
            &termination("e", "nobody@example.com", "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(job["state"], "succeeded");
    let outcome = job["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "outcome")
        .unwrap();
    assert_eq!(outcome["detail"]["result"], "no CRM user");
}

#[tokio::test]
async fn permanent_crm_error_fails_with_the_crm_message() {
    let app = spawn_app().await;
    app.fake.state().fail_with = Some(401);
    let id = app
        .accept(
            "m",
            &termination("e", "jane.doe@example.com", "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("invalid access token"),
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
    let fake = app.fake.clone();
    let app = app
        .restart(Options {
            fake,
            ..Options::default()
        })
        .await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(job["state"], "scheduled", "{job:#}");
    assert_eq!(app.fake.owned("leads", 11).0, 0);
    app.fake.set_user_status(11, "inactive");
    assert_eq!(
        app.run_job_until_settled(&id, 10).await["state"],
        "succeeded"
    );
}

#[tokio::test]
async fn an_admin_who_never_acts_sends_the_job_to_review_at_the_verify_deadline() {
    let app = spawn_app().await;
    let id = app
        .accept(
            "m",
            &termination("e", "sam.seller@example.com", "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    assert_eq!(app.job(&id).await["state"], "scheduled");

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
    assert_eq!(app.fake.state().created_tasks.len(), 1, "no second task");
}
