//! The HubSpot client against a wiremock HubSpot: owners and users (owner id ≠
//! user id), search paging to the last page and past the 10,000-result cap,
//! batch reassignment with per-record failures, the user removal, tasks, each
//! error class, and 429s with and without HubSpot's rate-limit headers. Bodies
//! follow the shapes in `crm::hubspot`'s module docs.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use offboard_core::{
    config::Secret,
    crm::{
        Crm, CrmError, CrmId, NewTask, Resource, SeatChange, UserRole, UserStatus,
        calls::{CallRecord, record_calls},
        hubspot::HubSpotClient,
        pacing::{LocalBudget, RateBudget},
    },
};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{body_partial_json, header, method, path, query_param},
};

mod support;

use support::{fast, ok};

const TOKEN: &str = "pat-na1-test-token";

fn client(server: &MockServer) -> HubSpotClient {
    HubSpotClient::new(&server.uri(), Secret::new(TOKEN.to_owned()), fast()).unwrap()
}

fn client_with_budget(server: &MockServer) -> (HubSpotClient, Arc<LocalBudget>) {
    let budget = Arc::new(LocalBudget::new(fast().budget()));
    let shared: Arc<dyn RateBudget> = budget.clone();
    let client =
        HubSpotClient::with_budget(&server.uri(), Secret::new(TOKEN.to_owned()), fast(), shared)
            .unwrap();
    (client, budget)
}

fn owner(id: i64, user_id: Option<i64>, email: &str, archived: bool) -> Value {
    json!({
        "id": id.to_string(), "email": email, "type": "PERSON",
        "firstName": "Jane", "lastName": "Doe",
        "userId": user_id, "userIdIncludingInactive": 9000 + id,
        "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2026-02-01T00:00:00Z",
        "archived": archived, "teams": []
    })
}

fn page(results: Vec<Value>, next: Option<&str>) -> Value {
    match next {
        Some(after) => {
            json!({ "results": results, "paging": { "next": { "after": after, "link": "x" } } })
        }
        None => json!({ "results": results }),
    }
}

fn object(id: i64, props: Value) -> Value {
    json!({ "id": id.to_string(), "properties": props, "archived": false,
            "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z" })
}

fn error(status: u16, category: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "status": "error", "message": message, "category": category,
        "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf"
    }))
}

fn rate_limited() -> ResponseTemplate {
    ResponseTemplate::new(429).set_body_json(json!({
        "status": "error", "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT", "correlationId": "c033cdaa", "policyName": "TEN_SECONDLY_ROLLING"
    }))
}

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

async fn settings_user(server: &MockServer, user_id: i64, super_admin: bool) {
    Mock::given(method("GET"))
        .and(path(format!("/settings/v3/users/{user_id}")))
        .respond_with(ok(json!({
            "id": user_id.to_string(), "email": "x@example.com", "superAdmin": super_admin,
            "roleIds": [], "primaryTeamId": null
        })))
        .mount(server)
        .await;
}

// ---------------------------------------------------------------------------
// Owners and users
// ---------------------------------------------------------------------------

#[tokio::test]
async fn finds_a_user_by_email_as_their_owner_id_with_bearer_auth() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners"))
        .and(query_param("email", "jane.doe@example.com"))
        .and(query_param("archived", "false"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ok(page(
            vec![
                owner(41, Some(9041), "joanne.doe@example.com", false),
                owner(42, Some(9042), "Jane.Doe@Example.com", false),
            ],
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    settings_user(&server, 9042, true).await;
    let user = client(&server)
        .find_user_by_email("jane.doe@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.id, id(42), "the owner id, which records point at");
    assert_eq!(user.email, "Jane.Doe@Example.com");
    assert_eq!(user.name, "Jane Doe");
    assert_eq!(user.status, UserStatus::Active);
    assert_eq!(user.role, UserRole::Admin, "superAdmin in the settings API");
    assert_eq!(user.reports_to, None);
}

#[tokio::test]
async fn a_leaver_already_deactivated_is_found_among_archived_owners() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners"))
        .and(query_param("archived", "false"))
        .respond_with(ok(page(vec![], None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners"))
        .and(query_param("archived", "true"))
        .respond_with(ok(page(
            vec![owner(43, None, "bo@example.com", true)],
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    settings_user(&server, 9043, false).await;
    let user = client(&server)
        .find_user_by_email("bo@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.id, id(43));
    assert_eq!(user.status, UserStatus::Inactive);
    assert!(!user.is_deleted(), "the settings API still has the user");
}

#[tokio::test]
async fn get_user_tries_archived_then_says_none_and_a_removed_user_reads_deleted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners/44"))
        .and(query_param("idProperty", "id"))
        .and(query_param("archived", "false"))
        .respond_with(error(404, "OBJECT_NOT_FOUND", "resource not found"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners/44"))
        .and(query_param("archived", "true"))
        .respond_with(ok(owner(44, None, "gone@example.com", true)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/settings/v3/users/9044"))
        .respond_with(error(404, "OBJECT_NOT_FOUND", "user not found"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners/45"))
        .respond_with(error(404, "OBJECT_NOT_FOUND", "resource not found"))
        .expect(2)
        .mount(&server)
        .await;
    let crm = client(&server);
    let removed = crm.get_user(&id(44)).await.unwrap().unwrap();
    assert!(removed.is_deleted());
    assert_eq!(removed.deleted_at.as_deref(), Some("2026-02-01T00:00:00Z"));
    assert_eq!(crm.get_user(&id(45)).await.unwrap(), None);
    assert_eq!(
        crm.get_user(&CrmId::from("../settings/v3/users/1"))
            .await
            .unwrap(),
        None,
        "an id that is no owner id is nobody, and is never put in a path"
    );
}

#[tokio::test]
async fn lists_every_owner_active_and_archived_following_after_to_the_end() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners"))
        .and(query_param("archived", "false"))
        .and(query_param("after", "AAA"))
        .respond_with(ok(page(vec![owner(2, Some(9002), "b@x.com", false)], None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners"))
        .and(query_param("archived", "false"))
        .respond_with(ok(page(
            vec![owner(1, Some(9001), "a@x.com", false)],
            Some("AAA"),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners"))
        .and(query_param("archived", "true"))
        .respond_with(ok(page(vec![owner(3, None, "c@x.com", true)], None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/settings/v3/users"))
        .respond_with(ok(page(
            vec![
                json!({ "id": "9001", "email": "a@x.com", "superAdmin": true }),
                json!({ "id": "9002", "email": "b@x.com" }),
            ],
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let users = client(&server).list_users().await.unwrap();
    let ids: Vec<&CrmId> = users.iter().map(|u| &u.id).collect();
    assert_eq!(ids, [&id(1), &id(2), &id(3)]);
    assert_eq!(users[0].role, UserRole::Admin);
    assert_eq!(users[1].role, UserRole::User);
    assert!(
        users[2].is_deleted(),
        "archived, and the settings API has no user"
    );
}

#[tokio::test]
async fn the_token_is_no_user() {
    let server = MockServer::start().await;
    let (out, calls) = recorded(client(&server).token_user()).await;
    assert_eq!(out.unwrap(), None);
    assert!(calls.is_empty());
}

// ---------------------------------------------------------------------------
// Owned records
// ---------------------------------------------------------------------------

#[tokio::test]
async fn list_owned_searches_by_owner_and_pages_to_the_end() {
    let server = MockServer::start().await;
    let filter = json!({ "filterGroups": [{ "filters": [
        { "propertyName": "hubspot_owner_id", "operator": "EQ", "value": "42" }
    ] }], "sorts": [{ "propertyName": "hs_object_id", "direction": "ASCENDING" }], "limit": 200 });
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/deals/search"))
        .and(body_partial_json(json!({ "after": "200" })))
        .respond_with(ok(json!({ "total": 3, "results": [
            object(3, json!({ "hubspot_owner_id": "42", "hs_is_closed": "false" }))
        ] })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/deals/search"))
        .and(body_partial_json(filter))
        .respond_with(ok(json!({ "total": 3, "results": [
            object(1, json!({ "hubspot_owner_id": "42", "hs_is_closed": "false", "dealstage": "appointmentscheduled" })),
            object(2, json!({ "hubspot_owner_id": "42", "hs_is_closed": "true", "dealstage": "closedwon" }))
        ], "paging": { "next": { "after": "200" } } })))
        .expect(1)
        .mount(&server)
        .await;
    let records = client(&server)
        .list_owned(Resource::Deals, &id(42))
        .await
        .unwrap();
    let seen: Vec<(CrmId, bool)> = records.iter().map(|r| (r.id.clone(), r.open)).collect();
    assert_eq!(seen, [(id(1), true), (id(2), false), (id(3), true)]);
    assert!(records.iter().all(|r| r.owner_id == id(42)));
}

#[tokio::test]
async fn organizations_are_companies_and_tasks_open_until_completed_and_leads_are_none() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/companies/search"))
        .respond_with(ok(json!({ "total": 1, "results": [
            object(7, json!({ "hubspot_owner_id": "42" }))
        ] })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tasks/search"))
        .respond_with(ok(json!({ "total": 2, "results": [
            object(8, json!({ "hubspot_owner_id": "42", "hs_task_status": "NOT_STARTED" })),
            object(9, json!({ "hubspot_owner_id": "42", "hs_task_status": "COMPLETED" }))
        ] })))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    let companies = crm
        .list_owned(Resource::Organizations, &id(42))
        .await
        .unwrap();
    assert_eq!(companies.len(), 1);
    assert!(companies[0].open);
    let tasks = crm.list_owned(Resource::Tasks, &id(42)).await.unwrap();
    assert_eq!(
        tasks.iter().map(|t| t.open).collect::<Vec<_>>(),
        [true, false]
    );
    let (leads, calls) = recorded(crm.list_owned(Resource::Leads, &id(42))).await;
    assert!(leads.unwrap().is_empty());
    assert!(calls.is_empty(), "HubSpot has no leads object to ask");
}

#[tokio::test]
async fn tickets_are_open_until_their_pipeline_says_their_stage_is_closed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tickets/search"))
        .respond_with(ok(json!({ "total": 3, "results": [
            object(11, json!({ "hubspot_owner_id": "42", "hs_pipeline_stage": "1" })),
            object(12, json!({ "hubspot_owner_id": "42", "hs_pipeline_stage": "4" })),
            object(13, json!({ "hubspot_owner_id": "42", "hs_pipeline_stage": "unknown" }))
        ] })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/pipelines/tickets"))
        .respond_with(ok(json!({ "results": [{ "id": "0", "stages": [
            { "id": "1", "metadata": { "ticketState": "OPEN" } },
            { "id": "4", "metadata": { "ticketState": "CLOSED" } }
        ] }] })))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    let tickets = crm.list_owned(Resource::Tickets, &id(42)).await.unwrap();
    assert_eq!(
        tickets
            .iter()
            .map(|t| (t.id.as_str(), t.open))
            .collect::<Vec<_>>(),
        [("11", true), ("12", false), ("13", true)],
        "a stage no pipeline names is taken as open"
    );
}

#[tokio::test]
async fn no_tickets_means_no_pipeline_read() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tickets/search"))
        .respond_with(ok(json!({ "total": 0, "results": [] })))
        .mount(&server)
        .await;
    let (tickets, calls) = recorded(client(&server).list_owned(Resource::Tickets, &id(42))).await;
    assert!(tickets.unwrap().is_empty());
    assert_eq!(calls.len(), 1, "{calls:?}");
}

/// A HubSpot search over a book of `BOOK` contacts (ids 1..=BOOK): honours the
/// `hs_object_id GT` filter and the `after` offset, and refuses (400) a page
/// that would reach past 10,000 results, as HubSpot does.
fn big_book(request: &Request) -> ResponseTemplate {
    const BOOK: i64 = 10_450;
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return error(400, "VALIDATION_ERROR", "unreadable body");
    };
    let filters = body["filterGroups"][0]["filters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let floor = filters
        .iter()
        .find(|f| f["propertyName"] == "hs_object_id" && f["operator"] == "GT")
        .and_then(|f| f["value"].as_str()?.parse::<i64>().ok())
        .unwrap_or(0);
    let limit = body["limit"].as_i64().unwrap_or(10);
    let after = body["after"]
        .as_str()
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(0);
    if after + limit > 10_000 {
        return error(
            400,
            "VALIDATION_ERROR",
            "paging beyond 10,000 results is not supported",
        );
    }
    let matching: Vec<i64> = (floor + 1..=BOOK).collect();
    let slice: Vec<Value> = matching
        .iter()
        .skip(after as usize)
        .take(limit as usize)
        .map(|n| object(*n, json!({ "hubspot_owner_id": "42" })))
        .collect();
    let next = after + limit;
    let mut answer = json!({ "total": matching.len(), "results": slice });
    if (next as usize) < matching.len() {
        answer["paging"] = json!({ "next": { "after": next.to_string() } });
    }
    ok(answer)
}

#[tokio::test]
async fn a_book_past_the_10000_cap_is_listed_in_id_partitions() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .respond_with(big_book)
        .mount(&server)
        .await;
    let (records, calls) = recorded(client(&server).list_owned(Resource::Contacts, &id(42))).await;
    let records = records.unwrap();
    assert_eq!(records.len(), 10_450);
    let mut ids: Vec<i64> = records.iter().filter_map(|r| r.id.as_i64()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 10_450, "no record twice");
    assert_eq!(ids.last(), Some(&10_450));
    assert!(
        calls.iter().all(|c| c.status == Some(200)),
        "no page past the cap was asked for"
    );
    assert_eq!(calls.len(), 50 + 3, "50 pages, then a partition of 450");
}

// ---------------------------------------------------------------------------
// Reassignment
// ---------------------------------------------------------------------------

#[tokio::test]
async fn reassign_sends_one_batch_and_reads_each_records_outcome() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/update"))
        .and(body_partial_json(json!({ "inputs": [
            { "id": "1", "properties": { "hubspot_owner_id": "77" } },
            { "id": "2", "properties": { "hubspot_owner_id": "77" } },
            { "id": "3", "properties": { "hubspot_owner_id": "77" } }
        ] })))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE",
            "results": [ object(1, json!({ "hubspot_owner_id": "77" })) ],
            "numErrors": 2,
            "errors": [
                { "status": "error", "category": "OBJECT_NOT_FOUND",
                  "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
                  "context": { "ids": ["2"] }, "errors": [], "links": {} },
                { "status": "error", "category": "VALIDATION_ERROR",
                  "message": "Property values were not valid", "context": { "ids": ["3"] },
                  "errors": [], "links": {} }
            ],
            "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:01Z"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let ids = [id(1), id(2), id(3), CrmId::from("not-a-number")];
    let (outcomes, calls) =
        recorded(client(&server).reassign(Resource::Contacts, &ids, &id(77))).await;
    let outcomes = outcomes.unwrap();
    assert_eq!(calls.len(), 1, "one call for the whole batch");
    assert_eq!(
        outcomes.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        ids
    );
    assert!(outcomes[0].result.is_ok());
    assert!(matches!(outcomes[1].result, Err(CrmError::NotFound(_))));
    assert!(matches!(
        &outcomes[2].result,
        Err(CrmError::Rejected { code, .. }) if code == "VALIDATION_ERROR"
    ));
    assert!(matches!(
        &outcomes[3].result,
        Err(CrmError::Permanent { code, .. }) if code == "invalid_id"
    ));
}

#[tokio::test]
async fn a_refused_owner_rejects_the_whole_batch_and_auth_errors_fail_the_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/deals/batch/update"))
        .respond_with(error(
            400,
            "VALIDATION_ERROR",
            "Property values were not valid: 5 is not a valid owner",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tasks/batch/update"))
        .respond_with(error(
            403,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    let outcomes = crm
        .reassign(Resource::Deals, &[id(1), id(2)], &id(5))
        .await
        .unwrap();
    assert!(outcomes.iter().all(|o| matches!(
        &o.result,
        Err(CrmError::Rejected { message, .. }) if message.contains("not a valid owner")
    )));
    assert!(matches!(
        crm.reassign(Resource::Tasks, &[id(1)], &id(5)).await,
        Err(CrmError::Permanent { status: 403, code, .. }) if code == "MISSING_SCOPES"
    ));
    let too_many: Vec<CrmId> = (1..=101).map(id).collect();
    assert!(matches!(
        crm.reassign(Resource::Deals, &too_many, &id(5)).await,
        Err(CrmError::Permanent { code, .. }) if code == "too_many_records"
    ));
}

#[tokio::test]
async fn an_owner_write_is_retried_after_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/companies/batch/update"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/companies/batch/update"))
        .respond_with(ok(
            json!({ "status": "COMPLETE", "results": [object(5, json!({}))] }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let (outcomes, calls) =
        recorded(client(&server).reassign(Resource::Organizations, &[id(5)], &id(7))).await;
    assert!(outcomes.unwrap()[0].result.is_ok());
    assert_eq!(
        statuses(&calls),
        [Some(502), Some(200)],
        "setting the same owner twice is harmless"
    );
}

// ---------------------------------------------------------------------------
// Seats
// ---------------------------------------------------------------------------

#[tokio::test]
async fn delete_removes_the_settings_user_behind_the_owner() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners/42"))
        .and(query_param("archived", "false"))
        .respond_with(ok(owner(42, Some(9042), "jane@example.com", false)))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/settings/v3/users/9042"))
        .respond_with(ResponseTemplate::new(204))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/settings/v3/users/9042"))
        .respond_with(error(404, "OBJECT_NOT_FOUND", "user not found"))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    crm.change_seat(&id(42), SeatChange::Delete).await.unwrap();
    crm.change_seat(&id(42), SeatChange::Delete)
        .await
        .expect("a user already removed is the state asked for");
    for change in [SeatChange::Deactivate, SeatChange::Reactivate] {
        let (out, calls) = recorded(crm.change_seat(&id(42), change)).await;
        assert!(
            matches!(out, Err(CrmError::Permanent { code, .. }) if code == "unsupported"),
            "{change:?}"
        );
        assert!(calls.is_empty());
    }
}

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn creates_a_task_and_finds_it_again_by_marker() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tasks"))
        .and(body_partial_json(json!({ "properties": {
            "hs_task_subject": "Remove jane@example.com from HubSpot",
            "hs_task_body": "Remove jane@example.com from HubSpot\n[offboard:job-1]",
            "hs_timestamp": "2026-12-04T01:00:00.000Z",
            "hubspot_owner_id": "7",
            "hs_task_status": "NOT_STARTED"
        } })))
        .respond_with(ResponseTemplate::new(201).set_body_json(object(
            555,
            json!({ "hs_task_subject": "Remove jane@example.com from HubSpot" }),
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tasks/search"))
        .and(body_partial_json(json!({ "filterGroups": [{ "filters": [
            { "propertyName": "hubspot_owner_id", "operator": "EQ", "value": "7" },
            { "propertyName": "hs_task_status", "operator": "NEQ", "value": "COMPLETED" }
        ] }] })))
        .respond_with(ok(json!({ "total": 1, "results": [
            object(554, json!({ "hs_task_subject": "Other", "hs_task_body": "[offboard:job-0]" }))
        ] })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tasks/search"))
        .and(body_partial_json(json!({ "filterGroups": [{ "filters": [
            { "propertyName": "hubspot_owner_id", "operator": "EQ", "value": "7" },
            { "propertyName": "hs_task_status", "operator": "EQ", "value": "COMPLETED" }
        ] }] })))
        .respond_with(ok(json!({ "total": 1, "results": [
            object(555, json!({ "hs_task_body": "…\n[offboard:job-1]", "hs_task_status": "COMPLETED" }))
        ] })))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    let created = crm
        .create_task(&NewTask {
            content: "Remove jane@example.com from HubSpot\n[offboard:job-1]".into(),
            owner_id: id(7),
            due_date: Some("2026-12-03T17:00:00-08:00".into()),
        })
        .await
        .unwrap();
    assert_eq!(created, id(555));
    assert_eq!(
        crm.find_task(&id(7), "[offboard:job-1]").await.unwrap(),
        Some(id(555)),
        "a completed task still proves it was created"
    );
}

#[tokio::test]
async fn a_task_post_is_not_retried_after_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/tasks"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let out = client(&server)
        .create_task(&NewTask {
            content: "x".into(),
            owner_id: id(7),
            due_date: None,
        })
        .await;
    assert!(matches!(out, Err(CrmError::Transient(m)) if m.contains("not retried")));
}

// ---------------------------------------------------------------------------
// Errors and rate limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn error_classes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners"))
        .and(query_param("email", "unauthorized@x.com"))
        .respond_with(error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners"))
        .and(query_param("email", "down@x.com"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>down</html>"))
        .expect(4)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners"))
        .and(query_param("email", "odd@x.com"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/deals/search"))
        .respond_with(ResponseTemplate::new(500))
        .expect(4)
        .mount(&server)
        .await;
    let crm = client(&server);
    match crm.find_user_by_email("unauthorized@x.com").await {
        Err(CrmError::Permanent {
            status: 401,
            code,
            message,
        }) => {
            assert_eq!(code, "INVALID_AUTHENTICATION");
            assert!(message.contains("correlationId"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let (out, calls) = recorded(crm.find_user_by_email("down@x.com")).await;
    assert!(matches!(out, Err(CrmError::Transient(m)) if m.contains("503")));
    assert_eq!(calls.len(), 4, "a GET's 5xx is retried (max_retries = 3)");
    assert!(matches!(
        crm.find_user_by_email("odd@x.com").await,
        Err(CrmError::Permanent { status: 200, code, .. }) if code == "unreadable_response"
    ));
    let (out, calls) = recorded(crm.list_owned(Resource::Deals, &id(1))).await;
    assert!(out.unwrap_err().is_transient());
    assert_eq!(
        calls.len(),
        4,
        "a search is read-only, so its 5xx is retried too"
    );
}

#[tokio::test]
async fn a_429_without_headers_backs_off_retries_and_slows_the_budget() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners/42"))
        .respond_with(rate_limited())
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners/42"))
        .respond_with(ok(owner(42, None, "j@x.com", false)))
        .expect(1)
        .mount(&server)
        .await;
    let (crm, budget) = client_with_budget(&server);
    let (found, calls) = recorded(crm.get_user(&id(42))).await;
    assert_eq!(found.unwrap().map(|u| u.id), Some(id(42)));
    // The 404 is the settings lookup of the owner's (inactive) user.
    assert_eq!(statuses(&calls), [Some(429), Some(200), Some(404)]);
    assert_eq!(budget.slowdown(), 2, "a 429 halves the rate");
}

#[tokio::test]
async fn a_429_with_hubspot_headers_waits_out_the_window() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/deals/batch/update"))
        .respond_with(
            rate_limited()
                .insert_header("X-HubSpot-RateLimit-Interval-Milliseconds", "1000")
                .insert_header("X-HubSpot-RateLimit-Max", "190")
                .insert_header("X-HubSpot-RateLimit-Remaining", "0"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/deals/batch/update"))
        .respond_with(ok(
            json!({ "status": "COMPLETE", "results": [object(1, json!({}))] }),
        ))
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
        .and(path("/crm/v3/owners/42"))
        .respond_with(
            ok(owner(42, None, "j@x.com", false))
                .insert_header("X-HubSpot-RateLimit-Interval-Milliseconds", "1000")
                .insert_header("X-HubSpot-RateLimit-Remaining", "0"),
        )
        .expect(2)
        .mount(&server)
        .await;
    let crm = client(&server);
    crm.get_user(&id(42)).await.unwrap();
    let started = Instant::now();
    crm.get_user(&id(42)).await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "the second request went out after {elapsed:?}, into a spent window"
    );
}

#[tokio::test]
async fn a_spent_daily_allowance_is_handed_back_to_the_caller() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners/42"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(
                    json!({ "status": "error", "message": "You have reached your daily limit.",
                    "errorType": "RATE_LIMIT", "policyName": "DAILY", "correlationId": "c0" }),
                )
                .insert_header("X-HubSpot-RateLimit-Daily", "250000")
                .insert_header("X-HubSpot-RateLimit-Daily-Remaining", "0"),
        )
        .expect(1)
        .mount(&server)
        .await;
    match client(&server).get_user(&id(42)).await {
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
        .and(path("/settings/v3/users"))
        .respond_with(rate_limited())
        .expect(4)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/owners"))
        .respond_with(ok(page(vec![], None)))
        .mount(&server)
        .await;
    assert!(matches!(
        client(&server).list_users().await,
        Err(CrmError::RateLimited { .. })
    ));
}
