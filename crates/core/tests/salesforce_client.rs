//! The Salesforce client against a wiremock Salesforce: users by e-mail, id and
//! list (SOQL as sent, escaping included), paging through `nextRecordsUrl` to
//! the last batch and refusing one that never ends, owned records open and
//! closed per object, collection writes of 200 with per-record failures, seat
//! changes by `IsActive`, tasks found by the marker in their Subject, each error
//! class, and `Sforce-Limit-Info`. Bodies follow the shapes in
//! `crm::salesforce`'s module docs.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use offboard_core::{
    config::Secret,
    crm::{
        Crm, CrmError, CrmId, NewTask, RecordRef, Resource, SeatChange, UserRole, UserStatus,
        calls::{CallRecord, record_calls},
        pacing::{BudgetSettings, LocalBudget, RateBudget},
        salesforce::SalesforceClient,
    },
};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{body_json, body_partial_json, header, method, path, query_param},
};

mod support;

use support::{fast, ok};

const TOKEN: &str = "00Dxx0000001gPL!AQ4AQFakeAccessToken";
const DATA: &str = "/services/data/v66.0";
const QUERY: &str = "/services/data/v66.0/query";
const USER_FIELDS: &str = "Id, Name, Email, IsActive, ManagerId, UserType, Profile.Name, Profile.PermissionsModifyAllData";

fn client(server: &MockServer) -> SalesforceClient {
    SalesforceClient::new(
        &server.uri(),
        "v66.0",
        Secret::new(TOKEN.to_owned()),
        fast(),
    )
    .unwrap()
}

fn user(id: &str, email: &str, active: bool, admin: bool) -> Value {
    json!({
        "attributes": { "type": "User", "url": format!("{DATA}/sobjects/User/{id}") },
        "Id": id, "Name": "Jane Doe", "Email": email, "IsActive": active,
        "ManagerId": "005MGR000000001AAA", "UserType": "Standard",
        "Profile": {
            "attributes": { "type": "Profile", "url": format!("{DATA}/sobjects/Profile/00e1") },
            "Name": if admin { "System Administrator" } else { "Standard User" },
            "PermissionsModifyAllData": admin
        }
    })
}

fn record(object: &str, id: &str, extra: Value) -> Value {
    let mut r = json!({
        "attributes": { "type": object, "url": format!("{DATA}/sobjects/{object}/{id}") },
        "Id": id, "OwnerId": "005REP000000001AAA"
    });
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(extra.clone());
    }
    r
}

fn page(records: Vec<Value>, next: Option<&str>) -> Value {
    match next {
        Some(url) => {
            json!({ "totalSize": 9, "done": false, "nextRecordsUrl": url, "records": records })
        }
        None => json!({ "totalSize": records.len(), "done": true, "records": records }),
    }
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!([{ "message": message, "errorCode": code, "fields": [] }]))
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

fn id(s: &str) -> CrmId {
    CrmId::from(s)
}

/// A query mock answering `soql` exactly.
fn soql(q: &str) -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path(QUERY))
        .and(query_param("q", q))
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

#[tokio::test]
async fn finds_a_user_by_email_ignoring_case_and_preferring_the_active_one() {
    let server = MockServer::start().await;
    soql(&format!(
        "SELECT {USER_FIELDS} FROM User WHERE Email = 'jane.doe@example.com' ORDER BY Id"
    ))
    .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
    .respond_with(ok(page(
        vec![
            user("005A00000000001AAA", "jane.doe@example.com", false, false),
            user("005A00000000002AAA", "Jane.Doe@Example.com", true, true),
            user(
                "005A00000000003AAA",
                "jane.doe@example.com.invalid",
                true,
                false,
            ),
        ],
        None,
    )))
    .expect(1)
    .mount(&server)
    .await;
    let found = client(&server)
        .find_user_by_email(" jane.doe@example.com ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, id("005A00000000002AAA"), "the active one");
    assert_eq!(found.email, "Jane.Doe@Example.com");
    assert_eq!(found.name, "Jane Doe");
    assert_eq!(found.status, UserStatus::Active);
    assert_eq!(found.role, UserRole::Admin, "Modify All Data");
    assert_eq!(found.reports_to, Some(id("005MGR000000001AAA")));
}

#[tokio::test]
async fn an_inactive_leaver_is_still_found_and_a_quote_is_escaped() {
    let server = MockServer::start().await;
    soql(&format!(
        "SELECT {USER_FIELDS} FROM User WHERE Email = 'o\\'hara@example.com' ORDER BY Id"
    ))
    .respond_with(ok(page(
        vec![user(
            "005A00000000004AAA",
            "O'Hara@example.com",
            false,
            false,
        )],
        None,
    )))
    .expect(1)
    .mount(&server)
    .await;
    soql(&format!(
        "SELECT {USER_FIELDS} FROM User WHERE Email = 'nobody@example.com' ORDER BY Id"
    ))
    .respond_with(ok(page(vec![], None)))
    .expect(1)
    .mount(&server)
    .await;
    let crm = client(&server);
    let found = crm
        .find_user_by_email("o'hara@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.status, UserStatus::Inactive);
    assert_eq!(found.role, UserRole::User);
    assert!(!found.is_deleted(), "Salesforce never deletes users");
    assert_eq!(
        crm.find_user_by_email("nobody@example.com").await.unwrap(),
        None
    );
    let (none, calls) = recorded(crm.find_user_by_email("  ")).await;
    assert_eq!(none.unwrap(), None);
    assert!(calls.is_empty());
}

#[tokio::test]
async fn get_user_queries_by_id_and_says_none_for_no_row() {
    let server = MockServer::start().await;
    soql(&format!(
        "SELECT {USER_FIELDS} FROM User WHERE Id = '005A00000000005AAA' ORDER BY Id"
    ))
    .respond_with(ok(page(
        vec![user("005A00000000005AAA", "j@x.com", true, false)],
        None,
    )))
    .expect(1)
    .mount(&server)
    .await;
    soql(&format!(
        "SELECT {USER_FIELDS} FROM User WHERE Id = '005A00000000006AAA' ORDER BY Id"
    ))
    .respond_with(ok(page(vec![], None)))
    .expect(1)
    .mount(&server)
    .await;
    let crm = client(&server);
    let u = crm
        .get_user(&id("005A00000000005AAA"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.id, id("005A00000000005AAA"));
    assert_eq!(crm.get_user(&id("005A00000000006AAA")).await.unwrap(), None);
    let (none, calls) = recorded(crm.get_user(&id("005' OR Name != '"))).await;
    assert_eq!(none.unwrap(), None, "no id can look like that");
    assert!(calls.is_empty());
}

#[tokio::test]
async fn list_users_follows_next_records_url_through_three_batches() {
    let server = MockServer::start().await;
    soql(&format!(
        "SELECT {USER_FIELDS} FROM User WHERE UserType = 'Standard' ORDER BY Id"
    ))
    .respond_with(ok(page(
        vec![user("005A00000000001AAA", "a@x.com", true, false)],
        Some("/services/data/v66.0/query/01gRO0000016PIAYA2-2000"),
    )))
    .expect(1)
    .mount(&server)
    .await;
    Mock::given(method("GET"))
        .and(path("/services/data/v66.0/query/01gRO0000016PIAYA2-2000"))
        .respond_with(ok(page(
            vec![
                user("005A00000000002AAA", "b@x.com", false, false),
                user("005A00000000003AAA", "c@x.com", true, false),
            ],
            Some("/services/data/v66.0/query/01gRO0000016PIAYA2-4000"),
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/services/data/v66.0/query/01gRO0000016PIAYA2-4000"))
        .respond_with(ok(page(
            vec![user("005A00000000004AAA", "d@x.com", true, true)],
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let (users, calls) = recorded(client(&server).list_users()).await;
    let users = users.unwrap();
    assert_eq!(calls.len(), 3);
    assert!(
        calls[1].path.ends_with("-2000") && !calls[1].path.contains('?'),
        "the locator is asked for as is: {}",
        calls[1].path
    );
    assert_eq!(
        users.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(),
        ["a@x.com", "b@x.com", "c@x.com", "d@x.com"]
    );
    assert_eq!(users[1].status, UserStatus::Inactive);
    assert_eq!(users[3].role, UserRole::Admin);
}

#[tokio::test]
async fn a_query_that_never_says_done_is_refused() {
    let server = MockServer::start().await;
    // The same locator again would loop at once.
    soql(&format!(
        "SELECT {USER_FIELDS} FROM User WHERE UserType = 'Standard' ORDER BY Id"
    ))
    .respond_with(ok(page(
        vec![],
        Some("/services/data/v66.0/query/01gLOOP-2000"),
    )))
    .mount(&server)
    .await;
    Mock::given(method("GET"))
        .and(path("/services/data/v66.0/query/01gLOOP-2000"))
        .respond_with(ok(page(
            vec![],
            Some("/services/data/v66.0/query/01gLOOP-2000"),
        )))
        .expect(1)
        .mount(&server)
        .await;
    assert!(matches!(
        client(&server).list_users().await,
        Err(CrmError::Permanent { status: 200, .. })
    ));

    // A fresh locator every time: stopped by the page cap.
    let server = MockServer::start().await;
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    Mock::given(method("GET"))
        .respond_with(move |_: &Request| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            ok(page(
                vec![],
                Some(&format!("/services/data/v66.0/query/01gEND-{}", n + 1)),
            ))
        })
        .mount(&server)
        .await;
    let out = client(&server)
        .list_owned(Resource::Contacts, &id("005REP000000001AAA"))
        .await;
    assert!(
        matches!(&out, Err(CrmError::Permanent { code, .. }) if code == "too_many_pages"),
        "{out:?}"
    );
    assert_eq!(served.load(Ordering::SeqCst), 2_000);
}

#[tokio::test]
async fn the_token_user_comes_from_userinfo() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/services/oauth2/userinfo"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ok(json!({
            "sub": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005INT000000001AAA",
            "user_id": "005INT000000001AAA", "organization_id": "00Dxx0000001gPLEAY",
            "preferred_username": "integration@acme.example", "email": "integration@acme.example"
        })))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        client(&server).token_user().await.unwrap(),
        Some(id("005INT000000001AAA"))
    );
}

// ---------------------------------------------------------------------------
// Owned records
// ---------------------------------------------------------------------------

#[tokio::test]
async fn owned_records_per_object_open_and_closed() {
    let server = MockServer::start().await;
    let owner = "005REP000000001AAA";
    let cases = [
        (Resource::Leads, "Lead", ", IsConverted", "IsConverted"),
        (Resource::Contacts, "Contact", "", ""),
        (Resource::Organizations, "Account", "", ""),
        (Resource::Deals, "Opportunity", ", IsClosed", "IsClosed"),
        (Resource::Tasks, "Task", ", IsClosed", "IsClosed"),
        (Resource::Tickets, "Case", ", IsClosed", "IsClosed"),
    ];
    for (_, object, select, flag) in cases {
        let rows = if flag.is_empty() {
            vec![
                record(object, "R1", json!({})),
                record(object, "R2", json!({})),
            ]
        } else {
            vec![
                record(object, "R1", json!({ flag: false })),
                record(object, "R2", json!({ flag: true })),
            ]
        };
        soql(&format!(
            "SELECT Id, OwnerId{select} FROM {object} WHERE OwnerId = '{owner}' ORDER BY Id"
        ))
        .respond_with(ok(page(rows, None)))
        .expect(1)
        .mount(&server)
        .await;
    }
    let crm = client(&server);
    for (resource, _, _, flag) in cases {
        let records = crm.list_owned(resource, &id(owner)).await.unwrap();
        assert_eq!(records.len(), 2, "{resource}");
        assert_eq!(records[0].id, id("R1"));
        assert_eq!(records[0].owner_id, id(owner));
        assert!(records[0].open, "{resource}");
        assert_eq!(
            records[1].open,
            flag.is_empty(),
            "{resource}: closed or converted"
        );
    }
}

// ---------------------------------------------------------------------------
// Reassignment
// ---------------------------------------------------------------------------

fn record_ids(n: usize) -> Vec<CrmId> {
    (0..n).map(|i| id(&format!("006A{i:014}"))).collect()
}

#[tokio::test]
async fn reassign_sends_one_collection_of_200_and_reads_each_outcome_in_order() {
    let server = MockServer::start().await;
    let ids = record_ids(200);
    Mock::given(method("PATCH"))
        .and(path(format!("{DATA}/composite/sobjects")))
        .and(body_partial_json(json!({ "allOrNone": false })))
        .respond_with(|req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let records = body["records"].as_array().cloned().unwrap_or_default();
            let results: Vec<Value> = records
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    assert_eq!(r["attributes"]["type"], "Opportunity");
                    assert_eq!(r["OwnerId"], "005NEW000000001AAA");
                    let rid = r["id"].clone();
                    match i {
                        3 => json!({ "success": false, "errors": [{ "statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": [] }] }),
                        7 => json!({ "id": rid, "success": false, "errors": [{ "statusCode": "INACTIVE_OWNER_OR_USER", "message": "operation performed with inactive user [005NEW000000001AAA] as owner of opportunity", "fields": [] }] }),
                        199 => json!({ "id": rid, "success": false, "errors": [{ "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "Owner must be in the EMEA team", "fields": [] }] }),
                        _ => json!({ "id": rid, "success": true, "errors": [] }),
                    }
                })
                .collect();
            assert_eq!(results.len(), 200);
            ok(Value::Array(results))
        })
        .expect(1)
        .mount(&server)
        .await;
    let (outcomes, calls) =
        recorded(client(&server).reassign(Resource::Deals, &ids, &id("005NEW000000001AAA"))).await;
    let outcomes = outcomes.unwrap();
    assert_eq!(calls.len(), 1, "one call for the whole collection");
    assert_eq!(
        outcomes.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        ids
    );
    assert!(matches!(outcomes[3].result, Err(CrmError::NotFound(_))));
    assert!(matches!(
        &outcomes[7].result,
        Err(CrmError::Rejected { code, .. }) if code == "INACTIVE_OWNER_OR_USER"
    ));
    assert!(matches!(
        &outcomes[199].result,
        Err(CrmError::Rejected { code, message }) if code == "FIELD_CUSTOM_VALIDATION_EXCEPTION" && message.contains("EMEA")
    ));
    assert_eq!(outcomes.iter().filter(|o| o.result.is_ok()).count(), 197);
}

#[tokio::test]
async fn reassign_names_each_record_and_refuses_more_than_200() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(format!("{DATA}/composite/sobjects")))
        .and(body_json(json!({ "allOrNone": false, "records": [
            { "attributes": { "type": "Lead" }, "id": "00QA00000000001AAA", "OwnerId": "005NEW000000001AAA" },
            { "attributes": { "type": "Lead" }, "id": "00QA00000000002AAA", "OwnerId": "005NEW000000001AAA" }
        ] })))
        .respond_with(ok(json!([
            { "id": "00QA00000000001AAA", "success": true, "errors": [] },
            { "id": "00QA00000000002AAA", "success": true, "errors": [] }
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    let ids = [
        id("00QA00000000001AAA"),
        id("not/an-id"),
        id("00QA00000000002AAA"),
    ];
    let outcomes = crm
        .reassign(Resource::Leads, &ids, &id("005NEW000000001AAA"))
        .await
        .unwrap();
    assert!(outcomes[0].result.is_ok());
    assert!(matches!(
        &outcomes[1].result,
        Err(CrmError::Permanent { code, .. }) if code == "invalid_id"
    ));
    assert!(outcomes[2].result.is_ok());
    let (out, calls) =
        recorded(crm.reassign(Resource::Leads, &record_ids(201), &id("005NEW000000001AAA"))).await;
    assert!(matches!(out, Err(CrmError::Permanent { code, .. }) if code == "too_many_records"));
    assert!(calls.is_empty());
}

#[tokio::test]
async fn one_collection_carries_several_objects_and_answers_each_with_its_resource() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(format!("{DATA}/composite/sobjects")))
        .and(body_json(json!({ "allOrNone": false, "records": [
            { "attributes": { "type": "Lead" }, "id": "00QA00000000001AAA", "OwnerId": "005NEW000000001AAA" },
            { "attributes": { "type": "Opportunity" }, "id": "006A00000000001AAA", "OwnerId": "005NEW000000001AAA" },
            { "attributes": { "type": "Case" }, "id": "500A00000000001AAA", "OwnerId": "005NEW000000001AAA" }
        ] })))
        .respond_with(ok(json!([
            { "id": "00QA00000000001AAA", "success": true, "errors": [] },
            { "success": false, "errors": [{ "statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": [] }] },
            { "id": "500A00000000001AAA", "success": true, "errors": [] }
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    let records = [
        (Resource::Leads, "00QA00000000001AAA"),
        (Resource::Deals, "006A00000000001AAA"),
        (Resource::Tickets, "500A00000000001AAA"),
    ]
    .map(|(resource, i)| RecordRef {
        resource,
        id: id(i),
    });
    let outcomes = crm
        .reassign_records(&records, &id("005NEW000000001AAA"))
        .await
        .unwrap();
    let tags: Vec<(Resource, CrmId)> = outcomes.iter().map(|(r, o)| (*r, o.id.clone())).collect();
    assert_eq!(
        tags,
        records
            .iter()
            .map(|r| (r.resource, r.id.clone()))
            .collect::<Vec<_>>()
    );
    assert!(outcomes[0].1.result.is_ok());
    assert!(matches!(outcomes[1].1.result, Err(CrmError::NotFound(_))));
    assert!(outcomes[2].1.result.is_ok());

    // Eleven runs of one type are more chunks than one request may hold:
    // refused before anything is sent.
    let alternating: Vec<RecordRef> = (0..11)
        .map(|i| RecordRef {
            resource: if i % 2 == 0 {
                Resource::Leads
            } else {
                Resource::Deals
            },
            id: id(&format!("00QA0000000{i:04}AAA")),
        })
        .collect();
    let (out, calls) =
        recorded(crm.reassign_records(&alternating, &id("005NEW000000001AAA"))).await;
    assert!(matches!(out, Err(CrmError::Permanent { code, .. }) if code == "too_many_chunks"));
    assert!(calls.is_empty());
}

#[tokio::test]
async fn an_owner_write_is_retried_after_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(format!("{DATA}/composite/sobjects")))
        .respond_with(error(
            500,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred",
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{DATA}/composite/sobjects")))
        .respond_with(ok(
            json!([{ "id": "001A00000000001AAA", "success": true, "errors": [] }]),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let (outcomes, calls) = recorded(client(&server).reassign(
        Resource::Organizations,
        &[id("001A00000000001AAA")],
        &id("005NEW000000001AAA"),
    ))
    .await;
    assert!(outcomes.unwrap()[0].result.is_ok());
    assert_eq!(
        statuses(&calls),
        [Some(500), Some(200)],
        "setting the same owner twice is harmless"
    );
}

// ---------------------------------------------------------------------------
// Seats
// ---------------------------------------------------------------------------

#[tokio::test]
async fn seat_changes_set_is_active_and_delete_is_unsupported() {
    let server = MockServer::start().await;
    let user_path = format!("{DATA}/sobjects/User/005REP000000001AAA");
    Mock::given(method("PATCH"))
        .and(path(user_path.as_str()))
        .and(body_json(json!({ "IsActive": false })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(user_path.as_str()))
        .and(body_json(json!({ "IsActive": true })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{DATA}/sobjects/User/005GONE00000001AAA")))
        .respond_with(error(
            404,
            "NOT_FOUND",
            "The requested resource does not exist",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    let rep = id("005REP000000001AAA");
    crm.change_seat(&rep, SeatChange::Deactivate).await.unwrap();
    crm.change_seat(&rep, SeatChange::Reactivate).await.unwrap();
    let (out, calls) = recorded(crm.change_seat(&rep, SeatChange::Delete)).await;
    assert!(matches!(out, Err(CrmError::Permanent { code, .. }) if code == "unsupported"));
    assert!(calls.is_empty());
    assert!(matches!(
        crm.change_seat(&id("005GONE00000001AAA"), SeatChange::Deactivate)
            .await,
        Err(CrmError::NotFound(m)) if m.contains("NOT_FOUND")
    ));
}

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn creates_a_task_with_the_marker_in_its_subject_and_finds_it_again() {
    let server = MockServer::start().await;
    let content = format!(
        "offboard: please DEACTIVATE the Salesforce user Jane <jane@example.com> in Setup › Users. {} [offboard job 0190-abc]",
        "Why: termination. ".repeat(20)
    );
    let subject = {
        let mut seen = String::new();
        let m = Arc::new(std::sync::Mutex::new(String::new()));
        let m2 = m.clone();
        Mock::given(method("POST"))
            .and(path(format!("{DATA}/sobjects/Task")))
            .and(body_partial_json(json!({
                "OwnerId": "005ADM000000001AAA",
                "Description": content,
                "ActivityDate": "2026-12-03",
                "Status": "Not Started"
            })))
            .respond_with(move |req: &Request| {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                if let Ok(mut s) = m2.lock() {
                    *s = body["Subject"].as_str().unwrap_or_default().to_owned();
                }
                ResponseTemplate::new(201).set_body_json(
                    json!({ "id": "00TA00000000009AAA", "success": true, "errors": [] }),
                )
            })
            .expect(1)
            .mount(&server)
            .await;
        let crm = client(&server);
        let created = crm
            .create_task(&NewTask {
                content: content.clone(),
                owner_id: id("005ADM000000001AAA"),
                due_date: Some("2026-12-03T17:00:00-08:00".into()),
            })
            .await
            .unwrap();
        assert_eq!(created, id("00TA00000000009AAA"));
        if let Ok(s) = m.lock() {
            seen.clone_from(&s);
        }
        seen
    };
    assert!(subject.chars().count() <= 255, "{subject}");
    assert!(subject.ends_with("[offboard job 0190-abc]"), "{subject}");
    assert!(
        subject.starts_with("offboard: please DEACTIVATE"),
        "{subject}"
    );

    soql("SELECT Id, IsClosed, Subject FROM Task WHERE OwnerId = '005ADM000000001AAA' AND Subject LIKE '%[offboard job 0190-abc]%' ORDER BY Id")
        .respond_with(ok(page(
            vec![
                record("Task", "00TA00000000001AAA", json!({ "IsClosed": true, "Subject": "old [offboard job 0190-abc]" })),
                record("Task", "00TA00000000002AAA", json!({ "IsClosed": false, "Subject": "other [offboard job 0190-abcd]" })),
                record("Task", "00TA00000000009AAA", json!({ "IsClosed": false, "Subject": subject })),
            ],
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    soql("SELECT Id, IsClosed, Subject FROM Task WHERE OwnerId = '005ADM000000001AAA' AND Subject LIKE '%[offboard job done]%' ORDER BY Id")
        .respond_with(ok(page(
            vec![record("Task", "00TA00000000003AAA", json!({ "IsClosed": true, "Subject": "x [offboard job done]" }))],
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    let admin = id("005ADM000000001AAA");
    assert_eq!(
        crm.find_task(&admin, "[offboard job 0190-abc]")
            .await
            .unwrap(),
        Some(id("00TA00000000009AAA")),
        "the open one first"
    );
    assert_eq!(
        crm.find_task(&admin, "[offboard job done]").await.unwrap(),
        Some(id("00TA00000000003AAA")),
        "a closed task still proves it was created"
    );
}

#[tokio::test]
async fn a_task_post_is_not_retried_after_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{DATA}/sobjects/Task")))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let out = client(&server)
        .create_task(&NewTask {
            content: "x [offboard job 1]".into(),
            owner_id: id("005ADM000000001AAA"),
            due_date: None,
        })
        .await;
    assert!(matches!(out, Err(CrmError::Transient(m)) if m.contains("not retried")));
}

// ---------------------------------------------------------------------------
// Errors and limits
// ---------------------------------------------------------------------------

fn by_email(email: &str) -> wiremock::MockBuilder {
    soql(&format!(
        "SELECT {USER_FIELDS} FROM User WHERE Email = '{email}' ORDER BY Id"
    ))
}

#[tokio::test]
async fn error_classes() {
    let server = MockServer::start().await;
    by_email("expired@x.com")
        .respond_with(error(
            401,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ))
        .expect(1)
        .mount(&server)
        .await;
    by_email("limit@x.com")
        .respond_with(error(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    by_email("denied@x.com")
        .respond_with(error(
            403,
            "INSUFFICIENT_ACCESS",
            "insufficient access rights on object id",
        ))
        .expect(1)
        .mount(&server)
        .await;
    by_email("malformed@x.com")
        .respond_with(error(400, "MALFORMED_QUERY", "unexpected token: 'FORM'"))
        .expect(1)
        .mount(&server)
        .await;
    by_email("blip@x.com")
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    by_email("blip@x.com")
        .respond_with(ok(page(
            vec![user("005A00000000001AAA", "blip@x.com", true, false)],
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    by_email("down@x.com")
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>down</html>"))
        .expect(4)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/services/oauth2/userinfo"))
        .respond_with(error(
            404,
            "NOT_FOUND",
            "The requested resource does not exist",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server);
    assert!(matches!(
        crm.find_user_by_email("expired@x.com").await,
        Err(CrmError::Permanent { status: 401, code, .. }) if code == "INVALID_SESSION_ID"
    ));
    let (out, calls) = recorded(crm.find_user_by_email("limit@x.com")).await;
    match out {
        Err(CrmError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        calls.len(),
        1,
        "a spent allocation is handed back, not retried"
    );
    assert!(matches!(
        crm.find_user_by_email("denied@x.com").await,
        Err(CrmError::Permanent { status: 403, code, .. }) if code == "INSUFFICIENT_ACCESS"
    ));
    assert!(matches!(
        crm.find_user_by_email("malformed@x.com").await,
        Err(CrmError::Permanent { status: 400, code, .. }) if code == "MALFORMED_QUERY"
    ));
    let (found, calls) = recorded(crm.find_user_by_email("blip@x.com")).await;
    assert!(found.unwrap().is_some());
    assert_eq!(statuses(&calls), [Some(500), Some(200)]);
    let (out, calls) = recorded(crm.find_user_by_email("down@x.com")).await;
    assert!(matches!(out, Err(CrmError::Transient(m)) if m.contains("503")));
    assert_eq!(calls.len(), 4, "a GET's 5xx is retried (max_retries = 3)");
    assert!(matches!(crm.token_user().await, Err(CrmError::NotFound(_))));
}

#[tokio::test]
async fn limit_info_is_exported_and_a_spent_allocation_pauses_the_token() {
    let handle = offboard_core::metrics::handle();
    let server = MockServer::start().await;
    by_email("seen@x.com")
        .respond_with(
            ok(page(vec![], None)).insert_header("Sforce-Limit-Info", "api-usage=4217/15000"),
        )
        .expect(1)
        .mount(&server)
        .await;
    by_email("spent@x.com")
        .respond_with(ok(page(vec![], None)).insert_header(
            "Sforce-Limit-Info",
            "api-usage=15000/15000; api-bursts=0/750",
        ))
        .expect(2)
        .mount(&server)
        .await;
    let budget = Arc::new(LocalBudget::new(BudgetSettings {
        max_pause: Duration::from_millis(400),
        ..fast().budget()
    }));
    let shared: Arc<dyn RateBudget> = budget;
    let crm = SalesforceClient::with_budget(
        &server.uri(),
        "66.0",
        Secret::new(TOKEN.to_owned()),
        fast(),
        shared,
    )
    .unwrap();
    crm.find_user_by_email("seen@x.com").await.unwrap();
    let text = handle.render();
    assert!(
        text.contains("offboard_crm_api_usage{crm=\"salesforce\"} 4217"),
        "{text}"
    );
    assert!(
        text.contains("offboard_crm_api_limit{crm=\"salesforce\"} 15000"),
        "{text}"
    );
    crm.find_user_by_email("spent@x.com").await.unwrap();
    let started = Instant::now();
    crm.find_user_by_email("spent@x.com").await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(350),
        "the request after a spent allocation went out after {elapsed:?}"
    );
}
