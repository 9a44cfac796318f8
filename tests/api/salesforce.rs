//! Whole offboardings through the running app against the Salesforce sandbox:
//! records move in `PATCH …/composite/sobjects` calls of up to 200, the seat is
//! deactivated by offboard itself (`User.IsActive = false`) and verified by
//! reading the user back, a delete (which Salesforce has no call for) becomes a
//! deactivation that says why, and the token's own user is never touched.

use std::collections::{BTreeMap, BTreeSet};

use offboard_core::domain::Resource;
use offboard_sandbox::{SandboxCrm, SandboxState, Seed};
use serde_json::Value;

use crate::helpers::*;

/// Jane: 250 records of each kind (leads, contacts and accounts together 250
/// plus 250 Cases); the first tenth of her leads converted, 30 % of her
/// opportunities closed, tasks completed and cases closed.
const JANE: i64 = 10;
const SAM: i64 = 11;
/// max.manager@example.com: the manager of 10, 11 and 12; owns nothing.
const MANAGER: i64 = 2;
/// sales-ops@example.com: the policy's fallback owner; owns nothing.
const SALES_OPS: i64 = 3;
/// admin@example.com: the sandbox's token acts as this user.
const TOKEN_USER: i64 = 1;

/// Records per sObject Collections call.
const PER_CALL: usize = 200;

fn salesforce() -> Options {
    Options {
        crm: SandboxCrm::Salesforce,
        seed: offboard_testkit::salesforce::standard_org(),
        // DESIGN.md §7's example policy, moving everything Salesforce has.
        policy: POLICY.replace(
            r#"reassign = ["leads", "contacts", "deals", "tasks"]"#,
            r#"reassign = ["leads", "contacts", "organizations", "deals", "tasks", "tickets"]"#,
        ),
        ..Options::default()
    }
}

/// `(open, closed)` records of `owner` in `seed`, per resource.
fn counts_of(seed: &Seed, owner: i64) -> BTreeMap<Resource, (usize, usize)> {
    let mut counts = BTreeMap::new();
    for (resource, _, open) in records_of(seed, owner) {
        let c: &mut (usize, usize) = counts.entry(resource).or_default();
        if open {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    counts
}

/// The exact end state: every open record `from` held in `before` written once
/// and now `to`'s, every closed one never written and still `from`'s, nothing
/// else written (no admin task either), and `from` left with only the closed.
async fn assert_moved_once(state: &SandboxState, before: &Seed, from: i64, to: i64) {
    let stats = state.stats();
    let records = records_of(before, from);
    let kinds: BTreeSet<Resource> = records
        .iter()
        .filter(|(_, _, open)| *open)
        .map(|(r, _, _)| *r)
        .collect();
    assert_eq!(
        kinds.len(),
        Resource::ALL.len(),
        "open records of every kind"
    );
    let target_before: BTreeSet<(Resource, i64)> = records_of(before, to)
        .into_iter()
        .map(|(r, id, _)| (r, id))
        .collect();
    for (resource, id, open) in &records {
        let writes = stats.writes_for(*resource, *id);
        if *open {
            assert_eq!(writes, 1, "{resource}/{id} written {writes} times");
        } else {
            assert_eq!(writes, 0, "closed {resource}/{id} was written");
        }
    }
    let open: BTreeSet<(Resource, i64)> = records
        .iter()
        .filter(|(_, _, open)| *open)
        .map(|(r, id, _)| (*r, *id))
        .collect();
    let closed: BTreeSet<(Resource, i64)> = records
        .iter()
        .filter(|(_, _, open)| !open)
        .map(|(r, id, _)| (*r, *id))
        .collect();
    assert_eq!(
        stats.writes.len(),
        open.len(),
        "nothing but the open records written: {:?}",
        stats.writes.keys().take(5).collect::<Vec<_>>()
    );
    let now = state.snapshot().await;
    let kept: BTreeSet<(Resource, i64)> = records_of(&now, from)
        .into_iter()
        .map(|(r, id, _)| (r, id))
        .collect();
    assert_eq!(kept, closed, "the leaver keeps exactly the closed records");
    let received: BTreeSet<(Resource, i64)> = records_of(&now, to)
        .into_iter()
        .map(|(r, id, _)| (r, id))
        .filter(|k| !target_before.contains(k))
        .collect();
    assert_eq!(received, open, "the new owner got exactly the open records");
}

/// The sObject Collections writes the sandbox received.
fn collection_calls(state: &SandboxState) -> Vec<offboard_sandbox::RequestLogEntry> {
    state
        .request_log()
        .into_iter()
        .filter(|e| e.method == "PATCH" && e.path.ends_with("/composite/sobjects"))
        .collect()
}

/// The seat writes (`PATCH …/sobjects/User/{id}`) the sandbox received.
fn user_patches(state: &SandboxState) -> Vec<offboard_sandbox::RequestLogEntry> {
    state
        .request_log()
        .into_iter()
        .filter(|e| e.method == "PATCH" && e.path.contains("/sobjects/User/"))
        .collect()
}

/// The leaver's Salesforce id, as the job found it.
fn crm_user_id(job: &Value) -> String {
    audit(job, "crm.user_found")
        .next()
        .and_then(|a| a["detail"]["id"].as_str())
        .expect("the leaver was found")
        .to_owned()
}

fn audit_kinds(job: &Value) -> Vec<&str> {
    job["audit"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["kind"].as_str())
        .collect()
}

#[tokio::test]
async fn records_move_in_collections_of_200_and_the_seat_is_deactivated_by_api() {
    let app = spawn_app_with(salesforce()).await;
    let before = app.sell().snapshot().await;
    let counts = counts_of(&before, JANE);
    for r in [
        Resource::Leads,
        Resource::Deals,
        Resource::Tasks,
        Resource::Tickets,
    ] {
        assert!(counts[&r].1 > 0, "jane has closed {r}: {counts:?}");
    }
    let open: usize = counts.values().map(|c| c.0).sum();
    assert!(open > 4 * PER_CALL, "{open}");
    let id = app
        .accept(
            "msg_sj",
            &termination("evt_sj", "jane.doe@example.com", "voluntary", true, false),
        )
        .await;
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["action"], "deactivate");

    let jane = app.sell().user(JANE).await.unwrap();
    assert!(!jane.is_active(), "Salesforce shows jane inactive");
    assert!(jane.deleted_at.is_none());
    assert_moved_once(&app.sell(), &before, JANE, MANAGER).await;
    let moved: u64 = audit(&job, "reassign.done")
        .filter_map(|a| a["detail"]["moved"].as_u64())
        .sum();
    assert_eq!(
        moved, open as u64,
        "every open record counted as moved once"
    );
    assert!(
        !has_audit(&job, "reassign.not_applicable"),
        "Salesforce has every resource"
    );

    // One collection carries several objects, so every call but the last is
    // full: ⌈open / 200⌉ calls, not one partly filled call per resource.
    let calls = collection_calls(&app.sell());
    assert_eq!(
        calls.len(),
        open.div_ceil(PER_CALL),
        "collection calls for {counts:?}"
    );
    assert!(calls.iter().all(|c| c.status == Some(200)), "{calls:?}");

    // No person was asked: no task created, one seat call, read back after.
    let log = app.sell().request_log();
    assert!(!log.iter().any(|e| e.method == "POST"), "no admin task");
    assert!(!log.iter().any(|e| e.method == "DELETE"), "nothing deleted");
    let sf_id = crm_user_id(&job);
    let seat = user_patches(&app.sell());
    assert_eq!(seat.len(), 1, "{seat:?}");
    assert!(seat[0].path.ends_with(&format!("/sobjects/User/{sf_id}")));
    assert_eq!(seat[0].status, Some(204));
    let kinds = audit_kinds(&job);
    assert!(!kinds.contains(&"seat.task_created"), "{kinds:?}");
    let changed = audit(&job, "seat.changed").next().expect("changed by api");
    assert_eq!(changed["detail"]["via"], "api");
    assert_eq!(changed["detail"]["change"], "deactivate");
    assert_eq!(changed["detail"]["crm_user_id"], sf_id.as_str());
    assert!(kinds.contains(&"seat.verified"), "{kinds:?}");
    let calls: Vec<(String, String)> = audit(&job, "crm.call")
        .map(|c| {
            let s = |k: &str| c["detail"][k].as_str().unwrap_or_default().to_owned();
            (s("method"), s("path"))
        })
        .collect();
    let seat_call = calls
        .iter()
        .position(|(m, p)| m == "PATCH" && p.ends_with(&format!("/sobjects/User/{sf_id}")))
        .unwrap_or_else(|| panic!("the seat call is audited: {calls:?}"));
    assert!(
        calls[seat_call..]
            .iter()
            .any(|(m, p)| m == "GET" && p.contains("/query") && p.contains(&sf_id)),
        "the user is read back after the change: {calls:?}"
    );
}

#[tokio::test]
async fn a_delete_becomes_a_deactivation_by_api_and_says_why() {
    let app = spawn_app_with(salesforce()).await;
    let before = app.sell().snapshot().await;
    let id = app
        .accept(
            "msg_ss",
            &termination(
                "evt_ss",
                "sam.seller@example.com",
                "involuntary",
                false,
                false,
            ),
        )
        .await;
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["plan"]["rule"], "involuntary");
    assert_eq!(job["plan"]["rule_action"], "delete");
    assert_eq!(job["action"], "deactivate");
    let guard = job["plan"]["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guard"] == "crm_cannot_delete")
        .expect("the guard is listed");
    assert_eq!(guard["changed"], true);
    assert_eq!(
        guard["detail"],
        "Salesforce cannot delete users: delete → deactivate"
    );
    let decision = audit(&job, "decision").next().unwrap();
    assert_eq!(decision["detail"]["action"], "deactivate");
    let audited = decision["detail"]["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guard"] == "crm_cannot_delete")
        .expect("the decision's audit names the guard");
    assert_eq!(audited["changed"], true);
    assert_eq!(
        audited["detail"],
        "Salesforce cannot delete users: delete → deactivate"
    );

    let sam = app.sell().user(SAM).await.unwrap();
    assert!(!sam.is_active(), "deactivated");
    assert!(sam.deleted_at.is_none(), "nothing deleted");
    let changed = audit(&job, "seat.changed").next().expect("changed by api");
    assert_eq!(changed["detail"]["change"], "deactivate");
    assert_eq!(changed["detail"]["via"], "api");
    assert!(has_audit(&job, "seat.verified"));
    assert!(!has_audit(&job, "seat.task_created"));
    let sf_id = crm_user_id(&job);
    let seat = user_patches(&app.sell());
    assert_eq!(seat.len(), 1, "{seat:?}");
    assert!(seat[0].path.ends_with(&format!("/sobjects/User/{sf_id}")));
    let log = app.sell().request_log();
    assert!(
        !log.iter()
            .any(|e| e.method == "DELETE" || e.method == "POST"),
        "no delete and no admin task"
    );
    assert_moved_once(&app.sell(), &before, SAM, MANAGER).await;
}

#[tokio::test]
async fn the_manager_id_receives_the_records_when_the_event_names_no_crm_manager() {
    let app = spawn_app_with(salesforce()).await;
    let before = app.sell().snapshot().await;
    // The HR system's manager is nobody Salesforce knows: the leader in
    // Salesforce's own ManagerId is next.
    let event = termination("evt_sm", "sam.seller@example.com", "voluntary", true, false)
        .replace("max.manager@example.com", "someone.else@example.com");
    let id = app.accept("msg_sm", &event).await;
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let candidates: Vec<(String, String)> = audit(&job, "target.candidate")
        .map(|c| {
            let s = |k: &str| c["detail"][k].as_str().unwrap_or_default().to_owned();
            (s("via"), s("result"))
        })
        .collect();
    assert_eq!(
        candidates,
        [
            (
                "manager_email".to_owned(),
                "not found in the CRM".to_owned()
            ),
            ("reports_to".to_owned(), "chosen".to_owned()),
        ]
    );
    assert!(!app.sell().user(SAM).await.unwrap().is_active());
    assert_moved_once(&app.sell(), &before, SAM, MANAGER).await;
}

#[tokio::test]
async fn an_inactive_manager_is_passed_over_for_the_fallback_owner() {
    let mut seed = offboard_testkit::salesforce::standard_org();
    let manager = seed.users.iter_mut().find(|u| u.id == MANAGER).unwrap();
    manager.status = offboard_core::domain::UserStatus::Inactive;
    let app = spawn_app_with(Options {
        seed,
        ..salesforce()
    })
    .await;
    let before = app.sell().snapshot().await;
    let id = app
        .accept(
            "msg_sf",
            &termination("evt_sf", "sam.seller@example.com", "voluntary", true, false),
        )
        .await;
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    // Both ways to the manager lead to an inactive user: the event's e-mail and
    // Salesforce's ManagerId.
    let candidates: Vec<(String, String)> = audit(&job, "target.candidate")
        .map(|c| {
            let s = |k: &str| c["detail"][k].as_str().unwrap_or_default().to_owned();
            (s("via"), s("result"))
        })
        .collect();
    assert_eq!(
        candidates,
        [
            ("manager_email".to_owned(), "not active".to_owned()),
            ("reports_to".to_owned(), "not active".to_owned()),
            ("fallback_owner".to_owned(), "chosen".to_owned()),
        ]
    );
    assert!(
        !has_audit(&job, "reassign.rejected"),
        "no write was sent to the inactive manager"
    );
    assert!(!app.sell().user(SAM).await.unwrap().is_active());
    assert_moved_once(&app.sell(), &before, SAM, SALES_OPS).await;
    let manager_now = records_of(&app.sell().snapshot().await, MANAGER);
    assert!(manager_now.is_empty(), "the inactive manager got nothing");
}

#[tokio::test]
async fn a_rehire_reactivates_the_seat_offboard_deactivated() {
    let (app, _) = rehire_reactivates_by_api(salesforce(), SAM).await;
    assert_eq!(user_patches(&app.sell()).len(), 2, "off, then on again");
}

#[tokio::test]
async fn the_token_owners_own_seat_is_never_changed() {
    // The sandbox's token belongs to its first active admin, admin@example.com,
    // as /services/oauth2/userinfo says.
    let app = spawn_app_with(salesforce()).await;
    let before = app.sell().snapshot().await;
    let id = app
        .accept(
            "msg_so",
            &termination("evt_so", "admin@example.com", "voluntary", true, false),
        )
        .await;
    let job = app.run_job_until_settled(&id, 5).await;
    assert_eq!(job["state"], "needs_review", "{job:#}");
    let reason = job["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the CRM API token belongs to the leaver admin@example.com"),
        "{reason}"
    );
    let guard = audit(&job, "guard.runtime").next().expect("audited");
    assert_eq!(guard["detail"]["guard"], "own_token_seat");
    let writes: Vec<_> = app
        .sell()
        .request_log()
        .into_iter()
        .filter(|e| e.method != "GET")
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert!(writes.is_empty(), "nothing was written: {writes:?}");
    assert!(app.sell().user(TOKEN_USER).await.unwrap().is_active());
    assert_eq!(app.sell().snapshot().await, before, "nothing changed");
}

#[tokio::test]
async fn faults_still_end_exactly() {
    // 20 % of answers are faults (500, 503, a dropped connection); a faulted
    // collection call is never applied, so a retried one writes each record once.
    let app = spawn_app_with(Options {
        fault_rate: 0.2,
        ..salesforce()
    })
    .await;
    let before = app.sell().snapshot().await;
    let id = app
        .accept(
            "msg_sx",
            &termination("evt_sx", "sam.seller@example.com", "voluntary", true, false),
        )
        .await;
    let job = app.run_job_until_settled(&id, 40).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(!app.sell().user(SAM).await.unwrap().is_active());
    assert_moved_once(&app.sell(), &before, SAM, MANAGER).await;
    let stats = app.sell().stats();
    assert!(stats.faults > 0, "faults were injected: {stats:?}");
}
