//! The Pipedrive client against a wiremock Pipedrive: every endpoint it uses, both
//! paging styles to the last page, what "open" means per object, the token header,
//! per-record outcomes of a reassignment, seat changes, activities, error classes,
//! 429s with and without rate-limit headers, and the audit sink. Bodies follow the
//! shapes of Pipedrive's OpenAPI models (see `crm::pipedrive`'s module docs).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use offboard_core::{
    config::Secret,
    crm::{
        Crm, CrmError, CrmId, NewTask, Resource, SeatAbility, SeatChange, UserRole, UserStatus,
        calls::{CallRecord, record_calls},
        pacing::{LocalBudget, RateBudget},
        pipedrive::PipedriveClient,
    },
};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{
        body_json, header, header_exists, method, path, query_param, query_param_is_missing,
    },
};

mod support;

use support::{fast, ok};

const TOKEN: &str = "pd-test-token-123";

fn client(server: &MockServer) -> PipedriveClient {
    PipedriveClient::new(&server.uri(), Secret::new(TOKEN.to_owned()), fast()).unwrap()
}

/// A client with a budget of its own, so the test can look at it.
fn client_with_budget(server: &MockServer) -> (PipedriveClient, Arc<LocalBudget>) {
    let budget = Arc::new(LocalBudget::new(fast().budget()));
    let shared: Arc<dyn RateBudget> = budget.clone();
    let client =
        PipedriveClient::with_budget(&server.uri(), Secret::new(TOKEN.to_owned()), fast(), shared)
            .unwrap();
    (client, budget)
}

fn single(data: Value) -> Value {
    json!({ "success": true, "data": data })
}

/// A v2 list page; `next_cursor` is `null` on the last one.
fn cursor_page(items: Vec<Value>, next: Option<&str>) -> Value {
    json!({ "success": true, "data": items, "additional_data": { "next_cursor": next } })
}

/// A v1 list page with Pipedrive's nested pagination block.
fn offset_page(items: Vec<Value>, start: u64, limit: u64, more: bool) -> Value {
    let n = items.len() as u64;
    let mut pagination =
        json!({ "start": start, "limit": limit, "more_items_in_collection": more });
    if more {
        pagination["next_start"] = json!(start + n);
    }
    json!({ "success": true, "data": items, "additional_data": { "pagination": pagination } })
}

fn user(id: i64, email: &str) -> Value {
    json!({
        "id": id, "name": "Jane Doe", "email": email, "active_flag": true,
        "access": [{ "app": "sales", "admin": false, "permission_set_id": "ps-1" }],
        "is_deleted": false, "is_you": false, "timezone_name": "Europe/Tallinn",
        "created": "2024-02-01 09:00:00", "modified": null, "role_id": 1
    })
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "success": false,
        "error": message,
        "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
        "data": null,
        "additional_data": null
    }))
}

fn rate_limited() -> ResponseTemplate {
    error(429, "Request over limit")
}

/// Runs `fut` with the audit sink attached; returns its output and every call.
async fn recorded<F: Future>(fut: F) -> (F::Output, Vec<CallRecord>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let out = record_calls(tx, fut).await;
    let mut calls = vec![];
    while let Ok(c) = rx.try_recv() {
        calls.push(c);
    }
    (out, calls)
}

fn statuses(calls: &[CallRecord]) -> Vec<Option<u16>> {
    calls.iter().map(|c| c.status).collect()
}

fn id(n: i64) -> CrmId {
    CrmId::from(n)
}

// ---------------------------------------------------------------------------
// Auth and users
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sends_the_token_in_x_api_token_and_nowhere_else() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/me"))
        .and(header("x-api-token", TOKEN))
        .and(header("accept", "application/json"))
        .and(query_param_is_missing("api_token"))
        .respond_with(ok(single(
            json!({ "id": 42, "company_id": 7, "name": "Ops" }),
        )))
        .expect(1)
        .mount(&server)
        .await;
    // Anything else (no header, a Bearer token) is unauthorized.
    Mock::given(header_exists("authorization"))
        .respond_with(error(401, "unauthorized access"))
        .expect(0)
        .mount(&server)
        .await;
    let (me, calls) = recorded(client(&server).token_user()).await;
    assert_eq!(me.unwrap(), Some(id(42)));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/api/v1/users/me");
    assert!(!calls[0].path.contains(TOKEN));
}

#[tokio::test]
async fn finds_a_user_by_exact_email_among_search_hits() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/find"))
        .and(query_param("term", "jane@example.com"))
        .and(query_param("search_by_email", "1"))
        .respond_with(ok(json!({
            "success": true,
            "data": [user(7, "mary.jane@example.com"), user(8, "Jane@Example.com")],
            "additional_data": null
        })))
        .expect(1)
        .mount(&server)
        .await;
    let found = client(&server)
        .find_user_by_email(" jane@example.com ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, id(8), "the exact address, not the substring hit");
    assert_eq!(found.status, UserStatus::Active);
    assert_eq!(found.role, UserRole::User);
    assert_eq!(found.reports_to, None);
}

#[tokio::test]
async fn a_search_without_hits_is_none_and_mixed_case_is_tried_lower() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/find"))
        .and(query_param("term", "Bo@Example.com"))
        .respond_with(ok(
            json!({ "success": true, "data": null, "additional_data": null }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/find"))
        .and(query_param("term", "bo@example.com"))
        .respond_with(ok(
            json!({ "success": true, "data": [user(9, "bo@example.com")] }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/find"))
        .and(query_param("term", "nobody@example.com"))
        .respond_with(ok(json!({ "success": true, "data": null })))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    let bo = crm.find_user_by_email("Bo@Example.com").await.unwrap();
    assert_eq!(bo.map(|u| u.id), Some(id(9)));
    assert_eq!(
        crm.find_user_by_email("nobody@example.com").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn get_user_reads_admin_and_active_flags_and_a_missing_user_is_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/17"))
        .respond_with(ok(single(json!({
            "id": 17, "name": "Ann Admin", "email": "ann@example.com", "active_flag": false,
            "is_admin": 1, "access": [{ "app": "global", "admin": true }]
        }))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/18"))
        .respond_with(error(404, "User not found"))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    let ann = crm.get_user(&id(17)).await.unwrap().unwrap();
    assert_eq!(ann.role, UserRole::Admin);
    assert_eq!(ann.status, UserStatus::Inactive);
    assert_eq!(ann.deleted_at, None);
    assert_eq!(crm.get_user(&id(18)).await.unwrap(), None);
    assert_eq!(
        crm.get_user(&CrmId::from("not-a-number")).await.unwrap(),
        None,
        "no request for an id Pipedrive can't have"
    );
}

#[tokio::test]
async fn lists_all_users_following_offset_paging_when_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .and(query_param_is_missing("start"))
        .respond_with(ok(offset_page(
            vec![user(1, "a@x.com"), user(2, "b@x.com")],
            0,
            2,
            true,
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .and(query_param("start", "2"))
        .respond_with(ok(offset_page(vec![user(3, "c@x.com")], 2, 2, false)))
        .expect(1)
        .mount(&server)
        .await;
    let users = client(&server).list_users().await.unwrap();
    let ids: Vec<CrmId> = users.into_iter().map(|u| u.id).collect();
    assert_eq!(ids, [id(1), id(2), id(3)]);
}

// ---------------------------------------------------------------------------
// Records and paging
// ---------------------------------------------------------------------------

#[tokio::test]
async fn v2_lists_follow_the_cursor_to_the_last_page() {
    let server = MockServer::start().await;
    let deals = |ids: std::ops::Range<i64>, status: &str| {
        ids.map(|n| json!({ "id": n, "owner_id": 101, "status": status, "title": "d" }))
            .collect::<Vec<_>>()
    };
    Mock::given(method("GET"))
        .and(path("/api/v2/deals"))
        .and(query_param("owner_id", "101"))
        .and(query_param("limit", "500"))
        .and(query_param_is_missing("cursor"))
        .and(query_param_is_missing("status"))
        .respond_with(ok(cursor_page(deals(1..501, "open"), Some("c1"))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/deals"))
        .and(query_param("cursor", "c1"))
        .respond_with(ok(cursor_page(deals(501..1001, "won"), Some("c2"))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/deals"))
        .and(query_param("cursor", "c2"))
        .respond_with(ok(cursor_page(deals(1001..1004, "lost"), None)))
        .expect(1)
        .mount(&server)
        .await;
    let (records, calls) = recorded(client(&server).list_owned(Resource::Deals, &id(101))).await;
    let records = records.unwrap();
    assert_eq!(records.len(), 1003);
    assert_eq!(records.iter().filter(|r| r.open).count(), 500);
    assert!(records.iter().all(|r| r.owner_id == id(101)));
    assert_eq!(records[0].id, id(1));
    assert_eq!(calls.len(), 3);
}

#[tokio::test]
async fn leads_page_by_offset_with_uuid_ids() {
    let server = MockServer::start().await;
    let leads = |n: usize, archived: bool| {
        (0..n)
            .map(|i| {
                json!({
                    "id": format!("adf21080-0e10-11eb-879b-{i:012x}"),
                    "title": "lead", "owner_id": 101, "is_archived": archived
                })
            })
            .collect::<Vec<_>>()
    };
    Mock::given(method("GET"))
        .and(path("/api/v1/leads"))
        .and(query_param("owner_id", "101"))
        .and(query_param("start", "0"))
        .and(query_param("limit", "500"))
        .and(query_param_is_missing("archived_status"))
        .respond_with(ok(offset_page(leads(500, false), 0, 500, true)))
        .expect(1)
        .mount(&server)
        .await;
    // The flat form of the paging block, as the leads schema documents it.
    Mock::given(method("GET"))
        .and(path("/api/v1/leads"))
        .and(query_param("start", "500"))
        .respond_with(ok(json!({
            "success": true,
            "data": leads(2, true),
            "additional_data": { "start": 500, "limit": 500, "more_items_in_collection": false }
        })))
        .expect(1)
        .mount(&server)
        .await;
    let records = client(&server)
        .list_owned(Resource::Leads, &id(101))
        .await
        .unwrap();
    assert_eq!(records.len(), 502);
    assert_eq!(
        records[0].id.as_str(),
        "adf21080-0e10-11eb-879b-000000000000"
    );
    assert_eq!(
        records.iter().filter(|r| r.open).count(),
        500,
        "archived leads are not open"
    );
}

#[tokio::test]
async fn persons_organizations_and_activities_use_their_v2_endpoints() {
    let server = MockServer::start().await;
    for (p, items) in [
        (
            "/api/v2/persons",
            json!([{ "id": 11, "owner_id": 101, "name": "P" }]),
        ),
        (
            "/api/v2/organizations",
            json!([{ "id": 21, "owner_id": 101, "name": "O" }]),
        ),
        (
            "/api/v2/activities",
            json!([
                { "id": 31, "owner_id": 101, "done": false, "subject": "Call" },
                { "id": 32, "owner_id": 101, "done": true, "subject": "Old call" }
            ]),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .and(query_param("owner_id", "101"))
            .and(query_param_is_missing("done"))
            .respond_with(ok(json!({ "success": true, "data": items, "additional_data": { "next_cursor": null } })))
            .expect(1)
            .mount(&server)
            .await;
    }
    let crm = client(&server);
    let persons = crm.list_owned(Resource::Contacts, &id(101)).await.unwrap();
    assert_eq!((persons[0].id.clone(), persons[0].open), (id(11), true));
    let orgs = crm
        .list_owned(Resource::Organizations, &id(101))
        .await
        .unwrap();
    assert_eq!((orgs[0].id.clone(), orgs[0].open), (id(21), true));
    let tasks = crm.list_owned(Resource::Tasks, &id(101)).await.unwrap();
    let open: Vec<(CrmId, bool)> = tasks.into_iter().map(|r| (r.id, r.open)).collect();
    assert_eq!(open, [(id(31), true), (id(32), false)]);
}

// ---------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn reassign_patches_each_record_and_reports_each_outcome() {
    let server = MockServer::start().await;
    for n in [1, 3] {
        Mock::given(method("PATCH"))
            .and(path(format!("/api/v2/deals/{n}")))
            .and(body_json(json!({ "owner_id": 202 })))
            .respond_with(ok(single(
                json!({ "id": n, "owner_id": 202, "status": "open" }),
            )))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("PATCH"))
        .and(path("/api/v2/deals/2"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "success": false,
            "error": "Owner is not an active user",
            "code": "ERR_SCHEMA_VALIDATION_FAILED"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/v2/deals/4"))
        .respond_with(error(404, "Deal not found"))
        .expect(1)
        .mount(&server)
        .await;
    let ids = [id(1), id(2), id(3), id(4)];
    let (outcomes, calls) =
        recorded(client(&server).reassign(Resource::Deals, &ids, &id(202))).await;
    let outcomes = outcomes.unwrap();
    assert_eq!(outcomes.len(), 4);
    assert_eq!(
        outcomes.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        ids
    );
    assert!(outcomes[0].result.is_ok());
    match &outcomes[1].result {
        Err(CrmError::Rejected { code, message }) => {
            assert_eq!(code, "ERR_SCHEMA_VALIDATION_FAILED");
            assert_eq!(message, "Owner is not an active user");
        }
        other => panic!("the refused record gave {other:?}"),
    }
    assert!(
        outcomes[2].result.is_ok(),
        "a refusal does not stop the others"
    );
    assert!(matches!(&outcomes[3].result, Err(CrmError::NotFound(m)) if m == "Deal not found"));
    assert_eq!(
        statuses(&calls),
        [Some(200), Some(400), Some(200), Some(404)],
        "one PATCH per record, refusals not retried"
    );
    assert!(calls.iter().all(|c| c.method == "PATCH"));
}

#[tokio::test]
async fn each_resource_patches_its_own_endpoint_and_leads_use_v1() {
    let server = MockServer::start().await;
    let lead = "adf21080-0e10-11eb-879b-05d71fb426ec";
    for p in [
        format!("/api/v1/leads/{lead}"),
        "/api/v2/persons/11".to_owned(),
        "/api/v2/organizations/21".to_owned(),
        "/api/v2/activities/31".to_owned(),
    ] {
        Mock::given(method("PATCH"))
            .and(path(p))
            .and(body_json(json!({ "owner_id": 202 })))
            .respond_with(ok(single(json!({ "owner_id": 202 }))))
            .expect(1)
            .mount(&server)
            .await;
    }
    let crm = client(&server);
    for (resource, record) in [
        (Resource::Leads, CrmId::from(lead)),
        (Resource::Contacts, id(11)),
        (Resource::Organizations, id(21)),
        (Resource::Tasks, id(31)),
    ] {
        let outcomes = crm.reassign(resource, &[record], &id(202)).await.unwrap();
        assert!(
            outcomes[0].result.is_ok(),
            "{resource}: {:?}",
            outcomes[0].result
        );
    }
    // An id that can't be a deal's is refused without a request.
    let outcomes = crm
        .reassign(Resource::Deals, &[CrmId::from("../users/1")], &id(202))
        .await
        .unwrap();
    assert!(matches!(
        &outcomes[0].result,
        Err(CrmError::Permanent { code, .. }) if code == "invalid_id"
    ));
}

#[tokio::test]
async fn a_permission_error_fails_the_whole_reassignment() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/api/v2/persons/1"))
        .respond_with(error(
            403,
            "You do not have permission to change the owner.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/v2/persons/2"))
        .respond_with(ok(single(json!({ "id": 2 }))))
        .expect(0)
        .mount(&server)
        .await;
    match client(&server)
        .reassign(Resource::Contacts, &[id(1), id(2)], &id(202))
        .await
    {
        Err(CrmError::Permanent {
            status: 403,
            message,
            ..
        }) => assert_eq!(message, "You do not have permission to change the owner."),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn seats_are_deactivated_and_reactivated_by_active_flag() {
    let server = MockServer::start().await;
    for flag in [false, true] {
        Mock::given(method("PUT"))
            .and(path("/api/v1/users/55"))
            .and(body_json(json!({ "active_flag": flag })))
            .respond_with(ok(single(json!({ "id": 55, "active_flag": flag }))))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("DELETE"))
        .respond_with(ok(single(json!({}))))
        .expect(0)
        .mount(&server)
        .await;
    let crm = client(&server);
    assert_eq!(crm.capabilities().name, "Pipedrive");
    assert_eq!(crm.capabilities().deactivate, SeatAbility::Api);
    crm.change_seat(&id(55), SeatChange::Deactivate)
        .await
        .unwrap();
    crm.change_seat(&id(55), SeatChange::Reactivate)
        .await
        .unwrap();
    match crm.change_seat(&id(55), SeatChange::Delete).await {
        Err(CrmError::Permanent { code, message, .. }) => {
            assert_eq!(code, "unsupported");
            assert!(message.contains("Pipedrive"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_seat_change_on_a_missing_user_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/api/v1/users/56"))
        .respond_with(error(404, "User not found"))
        .expect(1)
        .mount(&server)
        .await;
    assert!(matches!(
        client(&server)
            .change_seat(&id(56), SeatChange::Deactivate)
            .await,
        Err(CrmError::NotFound(_))
    ));
}

#[tokio::test]
async fn creates_an_activity_and_finds_it_again_by_marker() {
    let server = MockServer::start().await;
    let content = "Deactivate jane@example.com in Pipedrive\nReason: left. [offboard:job-42]";
    Mock::given(method("POST"))
        .and(path("/api/v2/activities"))
        .and(body_json(json!({
            "subject": "Deactivate jane@example.com in Pipedrive",
            "owner_id": 17,
            "due_date": "2026-12-03",
            "note": content
        })))
        .respond_with(ok(single(
            json!({ "id": 9001, "subject": "x", "owner_id": 17, "done": false }),
        )))
        .expect(1)
        .mount(&server)
        .await;
    let open = |items: Vec<Value>, cursor: Option<&str>, next: Option<&str>| {
        let mut m = Mock::given(method("GET"))
            .and(path("/api/v2/activities"))
            .and(query_param("owner_id", "17"))
            .and(query_param("done", "false"));
        m = match cursor {
            Some(c) => m.and(query_param("cursor", c)),
            None => m.and(query_param_is_missing("cursor")),
        };
        m.respond_with(ok(cursor_page(items, next)))
    };
    open(
        vec![json!({ "id": 8, "owner_id": 17, "done": false, "subject": "Other", "note": "[offboard:job-7]" })],
        None,
        Some("next"),
    )
    .mount(&server)
    .await;
    open(
        vec![
            json!({ "id": 9001, "owner_id": 17, "done": false, "subject": "Deactivate", "note": content }),
            json!({ "id": 12, "owner_id": 17, "done": false, "is_deleted": true, "note": content }),
        ],
        Some("next"),
        None,
    )
    .mount(&server)
    .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/activities"))
        .and(query_param("owner_id", "17"))
        .and(query_param("done", "true"))
        .respond_with(ok(cursor_page(
            vec![
                json!({ "id": 10, "owner_id": 17, "done": true, "subject": "Done", "note": "[offboard:job-41]" }),
                json!({ "id": 9, "owner_id": 17, "done": true, "subject": "Done", "note": "[offboard:job-41] again" }),
            ],
            None,
        )))
        .expect(2)
        .mount(&server)
        .await;
    let crm = client(&server);
    let task = NewTask {
        content: content.to_owned(),
        owner_id: id(17),
        due_date: Some("2026-12-03T17:00:00+02:00".to_owned()),
    };
    assert_eq!(crm.create_task(&task).await.unwrap(), id(9001));
    let (found, calls) = recorded(crm.find_task(&id(17), "[offboard:job-42]")).await;
    assert_eq!(found.unwrap(), Some(id(9001)), "not the deleted one");
    assert_eq!(
        calls.len(),
        2,
        "an open match needs no look at done activities"
    );
    assert_eq!(
        crm.find_task(&id(17), "[offboard:job-41]").await.unwrap(),
        Some(id(9)),
        "a done one proves the task exists; the oldest first, ids as numbers"
    );
    assert_eq!(
        crm.find_task(&id(17), "[offboard:job-43]").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn an_activity_post_is_not_retried_after_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/activities"))
        .respond_with(error(502, "Bad gateway"))
        .expect(1)
        .mount(&server)
        .await;
    let task = NewTask {
        content: "x [offboard:job-1]".to_owned(),
        owner_id: id(17),
        due_date: None,
    };
    match client(&server).create_task(&task).await {
        Err(CrmError::Transient(message)) => assert!(message.contains("not retried"), "{message}"),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Errors and rate limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn error_classes() {
    let server = MockServer::start().await;
    let cases: [(u16, &str); 5] = [
        (401, "unauthorized access"),
        (402, "Company account is not open"),
        (403, "Forbidden"),
        (405, "Method not allowed"),
        (415, "Feature is not enabled"),
    ];
    for (n, (status, message)) in cases.iter().enumerate() {
        Mock::given(method("GET"))
            .and(path(format!("/api/v1/users/{}", n + 1)))
            .respond_with(error(*status, message))
            .expect(1)
            .mount(&server)
            .await;
    }
    // The shared transport retries every 5xx; the answer is still permanent, since
    // Pipedrive says 501 means the functionality does not exist.
    Mock::given(method("GET"))
        .and(path("/api/v1/users/99"))
        .respond_with(error(501, "Not implemented"))
        .expect(1..=4)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/persons"))
        .respond_with(error(410, "Old resource permanently unavailable"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/organizations"))
        .respond_with(error(503, "Scheduled maintenance"))
        .expect(4)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/me"))
        .respond_with(ok(
            json!({ "success": false, "error": "Something odd", "data": null }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    for (n, (status, message)) in cases.iter().enumerate() {
        match crm.get_user(&id(n as i64 + 1)).await {
            Err(CrmError::Permanent {
                status: s,
                message: m,
                ..
            }) => {
                assert_eq!(s, *status);
                assert_eq!(&m, message, "the boilerplate error_info is dropped");
            }
            other => panic!("{status} gave {other:?}"),
        }
    }
    assert!(matches!(
        crm.get_user(&id(99)).await,
        Err(CrmError::Permanent { status: 501, .. })
    ));
    assert!(matches!(
        crm.list_owned(Resource::Contacts, &id(1)).await,
        Err(CrmError::NotFound(m)) if m.contains("permanently unavailable")
    ));
    let (result, calls) = recorded(crm.list_owned(Resource::Organizations, &id(1))).await;
    match result {
        Err(CrmError::Transient(m)) => assert!(m.contains("Scheduled maintenance"), "{m}"),
        other => panic!("503 gave {other:?}"),
    }
    assert_eq!(calls.len(), 4, "a 5xx is retried (max_retries = 3)");
    assert!(matches!(
        crm.token_user().await,
        Err(CrmError::Permanent { status: 200, message, .. }) if message == "Something odd"
    ));
}

#[tokio::test]
async fn a_429_without_headers_backs_off_retries_and_slows_the_budget() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/101"))
        .respond_with(rate_limited())
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/101"))
        .respond_with(ok(single(user(101, "jane@example.com"))))
        .expect(1)
        .mount(&server)
        .await;
    let (crm, budget) = client_with_budget(&server);
    let (found, calls) = recorded(crm.get_user(&id(101))).await;
    assert_eq!(found.unwrap().map(|u| u.id), Some(id(101)));
    assert_eq!(statuses(&calls), [Some(429), Some(200)]);
    assert_eq!(budget.slowdown(), 2, "a 429 halves the rate");
}

#[tokio::test]
async fn a_429_with_rate_limit_headers_waits_for_the_window_reset() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/api/v2/deals/1"))
        .respond_with(
            rate_limited()
                .insert_header("x-ratelimit-limit", "40")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "1"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/v2/deals/1"))
        .respond_with(ok(single(json!({ "id": 1, "owner_id": 2 }))))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    let outcomes = client(&server)
        .reassign(Resource::Deals, &[id(1)], &id(2))
        .await
        .unwrap();
    assert!(outcomes[0].result.is_ok());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited only {elapsed:?}"
    );
}

#[tokio::test]
async fn a_spent_window_pauses_the_next_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/me"))
        .respond_with(
            ok(single(json!({ "id": 42 })))
                .insert_header("x-ratelimit-limit", "40")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "1"),
        )
        .expect(2)
        .mount(&server)
        .await;
    let crm = client(&server);
    crm.token_user().await.unwrap();
    let started = Instant::now();
    crm.token_user().await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "the second request went out after {elapsed:?}, into a spent window"
    );
}

#[tokio::test]
async fn a_long_reset_is_handed_back_to_the_caller() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/1"))
        .respond_with(rate_limited().insert_header("x-ratelimit-reset", "3600"))
        .expect(1)
        .mount(&server)
        .await;
    match client(&server).get_user(&id(1)).await {
        Err(CrmError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn rate_limited_until_out_of_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .respond_with(rate_limited())
        .expect(4)
        .mount(&server)
        .await;
    let (result, calls) = recorded(client(&server).list_users()).await;
    assert!(
        matches!(result, Err(CrmError::RateLimited { retry_after: None })),
        "{result:?}"
    );
    assert_eq!(calls.len(), 4, "first attempt + max_retries (3)");
}

// ---------------------------------------------------------------------------
// Audit sink
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_attempt_is_reported_to_the_audit_sink() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/find"))
        .respond_with(ok(
            json!({ "success": true, "data": [user(8, "jane@example.com")] }),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/deals"))
        .respond_with(error(500, "Internal error"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/deals"))
        .respond_with(ok(cursor_page(
            vec![json!({ "id": 1, "owner_id": 8, "status": "open" })],
            None,
        )))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/v2/deals/1"))
        .respond_with(ok(single(json!({ "id": 1, "owner_id": 9 }))))
        .mount(&server)
        .await;
    let crm = client(&server);
    let ((), calls) = recorded(async {
        let jane = crm
            .find_user_by_email("jane@example.com")
            .await
            .unwrap()
            .unwrap();
        let deals = crm.list_owned(Resource::Deals, &jane.id).await.unwrap();
        let ids: Vec<CrmId> = deals.into_iter().map(|d| d.id).collect();
        crm.reassign(Resource::Deals, &ids, &id(9)).await.unwrap();
    })
    .await;
    let shown: Vec<(String, String, Option<u16>)> = calls
        .iter()
        .map(|c| (c.method.clone(), c.path.clone(), c.status))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "GET".to_owned(),
                "/api/v1/users/find?term=jane%40example.com&search_by_email=1".to_owned(),
                Some(200)
            ),
            (
                "GET".to_owned(),
                "/api/v2/deals?owner_id=8&limit=500".to_owned(),
                Some(500)
            ),
            (
                "GET".to_owned(),
                "/api/v2/deals?owner_id=8&limit=500".to_owned(),
                Some(200)
            ),
            ("PATCH".to_owned(), "/api/v2/deals/1".to_owned(), Some(200)),
        ]
    );
    assert!(calls.iter().all(|c| !c.path.contains(TOKEN)));
}
