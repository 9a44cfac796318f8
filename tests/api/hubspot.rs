//! Offboardings through the running app against the HubSpot sandbox: records move
//! in `batch/update` calls of up to 100, a delete is made by offboard through the
//! API, and a deactivation (which HubSpot's API can't make) goes to an admin.

use offboard_core::domain::Resource;
use offboard_sandbox::SandboxCrm;

use crate::helpers::*;

const JANE: i64 = 10;
const SAM: i64 = 11;

fn hubspot() -> Options {
    Options {
        crm: SandboxCrm::Hubspot,
        seed: offboard_testkit::pipedrive::standard_org(),
        policy: POLICY.replace(
            r#"reassign = ["leads", "contacts", "deals", "tasks"]"#,
            r#"reassign = ["leads", "contacts", "organizations", "deals", "tasks"]"#,
        ),
        ..Options::default()
    }
}

fn batch_calls(app: &TestApp) -> usize {
    app.sell()
        .request_log()
        .iter()
        .filter(|e| e.method == "POST" && e.path.ends_with("/batch/update"))
        .count()
}

#[tokio::test]
async fn records_move_in_batches_and_an_admin_is_asked_to_deactivate() {
    let app = spawn_app_with(hubspot()).await;
    let before = app.sell().open_counts(JANE).await;
    let open: usize = [
        Resource::Contacts,
        Resource::Organizations,
        Resource::Deals,
        Resource::Tasks,
    ]
    .iter()
    .map(|r| before.get(*r).open)
    .sum();
    assert!(open > 500, "{open}");
    let id = app
        .accept(
            "msg_hj",
            &termination("evt_hj", "jane.doe@example.com", "voluntary", true, false),
        )
        .await;
    app.run_jobs().await;
    let job = app.job(&id).await;
    assert_eq!(job["state"], "scheduled", "waiting for the admin: {job:#}");
    let tasks = app
        .sell()
        .request_log()
        .iter()
        .filter(|e| {
            e.method == "POST" && e.path == "/crm/v3/objects/tasks" && e.status == Some(201)
        })
        .count();
    assert_eq!(tasks, 1, "one task for the admin");
    app.sell().deactivate(JANE).await.unwrap();
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");

    let after = app.sell().open_counts(JANE).await;
    for r in [
        Resource::Contacts,
        Resource::Organizations,
        Resource::Deals,
        Resource::Tasks,
    ] {
        assert_eq!(after.get(r).open, 0, "{r} left open");
        assert_eq!(
            after.get(r).closed,
            before.get(r).closed,
            "closed {r} changed"
        );
    }
    // At most 100 records per write call, one partly filled call per resource.
    let calls = batch_calls(&app);
    assert!(
        calls <= open.div_ceil(100) + 4,
        "{calls} calls for {open} records"
    );
    let written = app.sell().stats().writes.len();
    assert_eq!(written, open + 1, "every open record and the task, once");
    // Leads are not a HubSpot object: skipped with an audit line, never listed.
    let skipped = audit(&job, "reassign.not_applicable")
        .next()
        .expect("audited");
    assert_eq!(skipped["detail"]["resource"], "leads");
    assert!(
        !app.sell()
            .request_log()
            .iter()
            .any(|e| e.path.contains("leads")),
        "no leads call"
    );
}

#[tokio::test]
async fn an_involuntary_leaver_is_deleted_through_the_api() {
    let app = spawn_app_with(hubspot()).await;
    let id = app
        .accept(
            "msg_hs",
            &termination(
                "evt_hs",
                "sam.seller@example.com",
                "involuntary",
                false,
                false,
            ),
        )
        .await;
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["action"], "delete");
    let sam = app.sell().user(SAM).await.unwrap();
    assert!(sam.deleted_at.is_some(), "deleted");
    let changed = audit(&job, "seat.changed").next().expect("changed by api");
    assert_eq!(changed["detail"]["change"], "delete");
    let deletes = app
        .sell()
        .request_log()
        .iter()
        .filter(|e| e.method == "DELETE" && e.path.starts_with("/settings/v3/users/"))
        .count();
    assert_eq!(deletes, 1);
    assert!(audit(&job, "seat.verified").next().is_some());
}
