//! The Sell client against a wiremock Sell: paging, open/closed rules, headers,
//! request bodies, error envelopes, retries (and what must not be retried), pacing
//! and the audit sink. Bodies follow `shared/samples/sell/`.

use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use offboard_core::{
    config::Secret,
    crm::{
        Crm, CrmError, NewTask, Resource,
        calls::{CallRecord, record_calls},
        pacing::{LocalBudget, RateBudget},
        sell::{SellClient, SellSettings},
    },
};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param, query_param_is_missing},
};

const TOKEN: &str = "test-token-123";

/// One record's reassignment as one result: Sell writes one record per call, so
/// the call's outcome and the record's are the same thing.
async fn reassign_one(
    crm: &SellClient,
    resource: Resource,
    id: i64,
    owner: i64,
) -> Result<(), CrmError> {
    let mut outcomes = crm.reassign(resource, &[id.into()], &owner.into()).await?;
    assert_eq!(outcomes.len(), 1, "one outcome per record");
    outcomes.remove(0).result
}

/// Fast retries so failure tests don't sleep for seconds; a generous rate so only
/// the pacing tests are paced.
fn fast() -> SellSettings {
    SellSettings {
        requests_per_second: 1000,
        max_in_flight: 8,
        timeout: Duration::from_secs(5),
        max_retries: 3,
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..SellSettings::default()
    }
}

fn client(server: &MockServer, settings: SellSettings) -> SellClient {
    SellClient::new(&server.uri(), Secret::new(TOKEN.to_owned()), settings).unwrap()
}

/// A client with a budget of its own, so the test can look at it.
fn client_with_budget(
    server: &MockServer,
    settings: SellSettings,
) -> (SellClient, Arc<LocalBudget>) {
    let budget = Arc::new(LocalBudget::new(settings.budget()));
    let shared: Arc<dyn RateBudget> = budget.clone();
    let client = SellClient::with_budget(
        &server.uri(),
        Secret::new(TOKEN.to_owned()),
        settings,
        shared,
    )
    .unwrap();
    (client, budget)
}

/// A list page as Sell sends it; `next_page` only when `next` is set.
fn page(items: Vec<Value>, next: Option<u32>) -> Value {
    let mut links = json!({ "self": "https://api.getbase.com/v2/x?page=1&per_page=100" });
    if let Some(n) = next {
        links["next_page"] = json!(format!(
            "https://api.getbase.com/v2/x?page={n}&per_page=100"
        ));
    }
    json!({
        "items": items.into_iter().map(|d| json!({ "data": d, "meta": { "type": "x" } })).collect::<Vec<_>>(),
        "meta": { "type": "collection", "count": 0, "links": links }
    })
}

fn user(id: i64, email: &str) -> Value {
    json!({
        "id": id, "name": "Jane Doe", "email": email, "status": "active", "role": "user",
        "confirmed": true, "reports_to": 100, "team_name": "EMEA", "zendesk_user_id": "381233812",
        "created_at": "2024-02-01T09:00:00Z", "deleted_at": null
    })
}

fn error_body(code: &str, message: &str, status: &str) -> Value {
    json!({
        "errors": [{ "error": { "code": code, "message": message, "details": format!("{message}.") },
                     "meta": { "type": "error" } }],
        "meta": { "type": "errors", "http_status": status, "logref": "4d8b-2e61-9f3a" }
    })
}

fn rate_limited() -> ResponseTemplate {
    ResponseTemplate::new(429).set_body_json(error_body(
        "rate_limit_exceeded",
        "Rate limit exceeded",
        "429 Too Many Requests",
    ))
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
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

#[tokio::test]
async fn lists_every_page_until_next_page_is_absent() {
    let server = MockServer::start().await;
    let leads = |ids: std::ops::Range<i64>| {
        ids.map(|id| json!({ "id": id, "owner_id": 101 }))
            .collect::<Vec<_>>()
    };
    for (n, ids, next) in [
        (1, 1..101, Some(2)),
        (2, 101..201, Some(3)),
        (3, 201..208, None),
    ] {
        Mock::given(method("GET"))
            .and(path("/v2/leads"))
            .and(query_param("owner_id", "101"))
            .and(query_param("page", n.to_string()))
            .and(query_param("per_page", "100"))
            .respond_with(ok(page(leads(ids), next)))
            .expect(1)
            .mount(&server)
            .await;
    }
    let crm = client(&server, fast());
    let (records, calls) = recorded(crm.list_owned(Resource::Leads, &101.into())).await;
    let records = records.unwrap();
    assert_eq!(records.len(), 207);
    assert!(records.iter().all(|r| r.open && r.owner_id == 101));
    assert_eq!(
        records
            .iter()
            .map(|r| r.id.as_i64().unwrap())
            .collect::<Vec<_>>(),
        (1..208).collect::<Vec<_>>()
    );
    let paths: Vec<_> = calls
        .iter()
        .map(|c| (c.method.as_str(), c.path.as_str(), c.status))
        .collect();
    assert_eq!(
        paths,
        [
            (
                "GET",
                "/v2/leads?owner_id=101&page=1&per_page=100",
                Some(200)
            ),
            (
                "GET",
                "/v2/leads?owner_id=101&page=2&per_page=100",
                Some(200)
            ),
            (
                "GET",
                "/v2/leads?owner_id=101&page=3&per_page=100",
                Some(200)
            ),
        ]
    );
    assert!(calls.iter().all(|c| c.error.is_none()));
}

#[tokio::test]
async fn deals_are_closed_by_stage_category_in_every_pipeline() {
    let server = MockServer::start().await;
    let stage = |id: i64, category: &str, pipeline: i64| json!({ "id": id, "name": category, "category": category, "active": true, "pipeline_id": pipeline });
    // Two pipelines over two pages; fetched once however many deal listings follow.
    Mock::given(method("GET"))
        .and(path("/v2/stages"))
        .and(query_param("page", "1"))
        .respond_with(ok(page(
            vec![
                stage(1, "incoming", 1),
                stage(2, "qualified", 1),
                stage(3, "won", 1),
                stage(4, "lost", 1),
            ],
            Some(2),
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/stages"))
        .and(query_param("page", "2"))
        .respond_with(ok(page(
            vec![
                stage(11, "incoming", 2),
                stage(12, "qualified", 2),
                stage(13, "won", 2),
                stage(14, "lost", 2),
            ],
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let deals: Vec<Value> = [(5001, 2), (5002, 3), (5003, 4), (5004, 12), (5005, 13), (5006, 14), (5007, 11)]
        .into_iter()
        .map(|(id, stage)| json!({ "id": id, "owner_id": 101, "stage_id": stage, "name": "deal", "value": "1.00" }))
        .collect();
    Mock::given(method("GET"))
        .and(path("/v2/deals"))
        .and(query_param("owner_id", "101"))
        .respond_with(ok(page(deals, None)))
        .expect(2)
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    for _ in 0..2 {
        let records = crm.list_owned(Resource::Deals, &101.into()).await.unwrap();
        let open: Vec<i64> = records
            .iter()
            .filter(|r| r.open)
            .map(|r| r.id.as_i64().unwrap())
            .collect();
        let closed: Vec<i64> = records
            .iter()
            .filter(|r| !r.open)
            .map(|r| r.id.as_i64().unwrap())
            .collect();
        assert_eq!(open, [5001, 5004, 5007]);
        assert_eq!(closed, [5002, 5003, 5005, 5006]);
    }
}

#[tokio::test]
async fn completed_tasks_are_not_open() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/tasks"))
        .and(query_param("owner_id", "101"))
        .respond_with(ok(page(
            vec![
                json!({ "id": 1, "owner_id": 101, "content": "call", "completed": false }),
                json!({ "id": 2, "owner_id": 101, "content": "done", "completed": true }),
                json!({ "id": 3, "owner_id": 101, "content": "no flag" }),
            ],
            None,
        )))
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let records = crm.list_owned(Resource::Tasks, &101.into()).await.unwrap();
    let open: Vec<(i64, bool)> = records
        .iter()
        .map(|r| (r.id.as_i64().unwrap(), r.open))
        .collect();
    assert_eq!(open, [(1, true), (2, false), (3, true)]);
    assert!(
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .all(|r| r.url.path() != "/v2/stages")
    );
}

#[tokio::test]
async fn sends_bearer_token_accept_and_user_agent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/users/101"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("accept", "application/json"))
        .and(header(
            "user-agent",
            concat!("offboard/", env!("CARGO_PKG_VERSION")),
        ))
        .respond_with(ok(
            json!({ "data": user(101, "jane.doe@example.com"), "meta": { "type": "user" } }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let user = crm
        .get_user(&101.into())
        .await
        .unwrap()
        .expect("the headers matched");
    assert_eq!(user.email, "jane.doe@example.com");
    assert_eq!(user.reports_to, Some(100.into()));
    assert!(user.is_active());
}

#[tokio::test]
async fn a_missing_user_is_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/users/9"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error_body(
            "not_found",
            "User not found",
            "404 Not Found",
        )))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        client(&server, fast()).get_user(&9.into()).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn finds_users_by_email_case_insensitively() {
    let server = MockServer::start().await;
    // Sell may filter case-sensitively: the typed address finds nothing, lower case does.
    Mock::given(method("GET"))
        .and(path("/v2/users"))
        .and(query_param("email", "Jane.Doe@Example.com"))
        .respond_with(ok(page(vec![], None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/users"))
        .and(query_param("email", "jane.doe@example.com"))
        .respond_with(ok(page(vec![user(101, "Jane.Doe@example.COM")], None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/users"))
        .and(query_param("email", "nobody@example.com"))
        .respond_with(ok(page(vec![user(7, "somebody-else@example.com")], None)))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let found = crm
        .find_user_by_email("Jane.Doe@Example.com")
        .await
        .unwrap();
    assert_eq!(found.map(|u| u.id), Some(101.into()));
    assert_eq!(
        crm.find_user_by_email("nobody@example.com").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn lists_all_users() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/users"))
        .and(query_param("page", "1"))
        .and(query_param_is_missing("email"))
        .respond_with(ok(page(
            vec![user(1, "a@example.com"), user(2, "b@example.com")],
            Some(2),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/users"))
        .and(query_param("page", "2"))
        .respond_with(ok(page(vec![user(3, "c@example.com")], None)))
        .mount(&server)
        .await;
    let users = client(&server, fast()).list_users().await.unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| u.id.as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[tokio::test]
async fn reassign_puts_only_the_new_owner() {
    let server = MockServer::start().await;
    for resource in ["leads", "contacts", "deals", "tasks"] {
        Mock::given(method("PUT"))
            .and(path(format!("/v2/{resource}/5001")))
            .and(header("content-type", "application/json"))
            .and(body_json(json!({ "data": { "owner_id": 202 } })))
            .respond_with(ok(
                json!({ "data": { "id": 5001, "owner_id": 202 }, "meta": { "type": "x" } }),
            ))
            .expect(1)
            .mount(&server)
            .await;
    }
    let crm = client(&server, fast());
    let (results, calls) = recorded(async {
        let mut results = vec![];
        for &resource in offboard_core::crm::sell::CAPABILITIES.resources {
            results.push(reassign_one(&crm, resource, 5001, 202).await);
        }
        results
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(calls.len(), 4);
    assert!(
        calls
            .iter()
            .all(|c| c.method == "PUT" && c.status == Some(200))
    );
    assert_eq!(calls[2].path, "/v2/deals/5001");
}

#[tokio::test]
async fn creates_a_task_and_finds_it_again_by_marker() {
    let server = MockServer::start().await;
    let content = "Deactivate Jane Doe in Settings › Manage › Users [offboard:job-42]";
    Mock::given(method("POST"))
        .and(path("/v2/tasks"))
        .and(body_json(json!({ "data": { "content": content, "owner_id": 1, "due_date": "2026-12-16T17:00:00Z" } })))
        .respond_with(ok(json!({ "data": { "id": 9001, "content": content, "owner_id": 1, "completed": false },
                                "meta": { "type": "task" } })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/tasks"))
        .and(query_param("owner_id", "1"))
        .and(query_param("page", "1"))
        .respond_with(ok(page(
            vec![json!({ "id": 8000, "content": "unrelated", "completed": false })],
            Some(2),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/tasks"))
        .and(query_param("owner_id", "1"))
        .and(query_param("page", "2"))
        .respond_with(ok(page(
            vec![json!({ "id": 9001, "content": content, "completed": false })],
            None,
        )))
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let task = NewTask {
        content: content.to_owned(),
        owner_id: 1.into(),
        due_date: Some("2026-12-16T17:00:00Z".to_owned()),
    };
    assert_eq!(crm.create_task(&task).await.unwrap(), 9001);
    assert_eq!(
        crm.find_task(&1.into(), "[offboard:job-42]").await.unwrap(),
        Some(9001.into())
    );
    assert_eq!(
        crm.find_task(&1.into(), "[offboard:job-43]").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn error_envelopes_become_typed_errors_and_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/users/1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error_body(
            "unauthorized",
            "Invalid access token",
            "401 Unauthorized",
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/deals/1"))
        .respond_with(ResponseTemplate::new(422).set_body_json(error_body(
            "invalid",
            "Owner is inactive",
            "422 Unprocessable Entity",
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/deals/2"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error_body(
            "not_found",
            "Deal not found",
            "404 Not Found",
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/users/2"))
        .respond_with(ResponseTemplate::new(403).set_body_string("<html>forbidden</html>"))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server, fast());

    match crm.get_user(&1.into()).await.unwrap_err() {
        CrmError::Permanent {
            status,
            code,
            message,
        } => {
            assert_eq!((status, code.as_str()), (401, "unauthorized"));
            assert_eq!(
                message,
                "Invalid access token (Invalid access token.) (logref 4d8b-2e61-9f3a)"
            );
        }
        other => panic!("401 gave {other:?}"),
    }
    match reassign_one(&crm, Resource::Deals, 1, 7).await.unwrap_err() {
        CrmError::Rejected { code, message } => {
            assert_eq!(code, "invalid");
            assert!(message.starts_with("Owner is inactive"), "{message}");
        }
        other => panic!("422 gave {other:?}"),
    }
    match reassign_one(&crm, Resource::Deals, 2, 7).await.unwrap_err() {
        CrmError::NotFound(message) => assert!(message.contains("Deal not found"), "{message}"),
        other => panic!("404 gave {other:?}"),
    }
    match crm.get_user(&2.into()).await.unwrap_err() {
        CrmError::Permanent {
            status,
            code,
            message,
        } => {
            assert_eq!((status, code.as_str()), (403, "http_403"));
            assert!(message.contains("forbidden"), "{message}");
        }
        other => panic!("403 gave {other:?}"),
    }
}

#[tokio::test]
async fn a_429_is_retried_and_slows_the_budget() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/users/101"))
        .respond_with(rate_limited())
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/users/101"))
        .respond_with(ok(json!({ "data": user(101, "jane.doe@example.com") })))
        .expect(1)
        .mount(&server)
        .await;
    let (crm, budget) = client_with_budget(&server, fast());
    let (user, calls) = recorded(crm.get_user(&101.into())).await;
    assert_eq!(user.unwrap().map(|u| u.id), Some(101.into()));
    assert_eq!(statuses(&calls), [Some(429), Some(200)]);
    assert_eq!(budget.slowdown(), 2, "a 429 halves the rate");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v2/leads/1"))
        .respond_with(rate_limited().insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/leads/1"))
        .respond_with(ok(json!({ "data": { "id": 1, "owner_id": 2 } })))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let started = Instant::now();
    reassign_one(&crm, Resource::Leads, 1, 2).await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited only {elapsed:?}"
    );
}

#[tokio::test]
async fn x_ratelimit_reset_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/users/1"))
        .respond_with(rate_limited().insert_header("X-RateLimit-Reset", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/users/1"))
        .respond_with(ok(json!({ "data": user(1, "a@example.com") })))
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let started = Instant::now();
    assert!(crm.get_user(&1.into()).await.unwrap().is_some());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_long_retry_after_is_handed_back_to_the_caller() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/users/1"))
        .respond_with(rate_limited().insert_header("Retry-After", "3600"))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let started = Instant::now();
    match crm.get_user(&1.into()).await.unwrap_err() {
        CrmError::RateLimited { retry_after } => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)))
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn rate_limited_until_out_of_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/users/1"))
        .respond_with(rate_limited())
        .expect(4)
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let (result, calls) = recorded(crm.get_user(&1.into())).await;
    assert!(
        matches!(result, Err(CrmError::RateLimited { retry_after: None })),
        "{result:?}"
    );
    assert_eq!(calls.len(), 4, "first attempt + max_retries (3)");
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/contacts"))
        .respond_with(ResponseTemplate::new(500).set_body_json(error_body(
            "server_error",
            "Oops",
            "500 Internal Server Error",
        )))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/contacts"))
        .respond_with(ok(page(vec![json!({ "id": 1, "owner_id": 101 })], None)))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let (records, calls) = recorded(crm.list_owned(Resource::Contacts, &101.into())).await;
    assert_eq!(records.unwrap().len(), 1);
    assert_eq!(statuses(&calls), [Some(500), Some(500), Some(200)]);
    assert!(
        calls
            .iter()
            .all(|c| c.path == "/v2/contacts?owner_id=101&page=1&per_page=100")
    );
}

#[tokio::test]
async fn a_task_post_is_not_retried_after_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/tasks"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let task = NewTask {
        content: "x".to_owned(),
        owner_id: 1.into(),
        due_date: None,
    };
    let (result, calls) = recorded(crm.create_task(&task)).await;
    match result.unwrap_err() {
        CrmError::Transient(message) => assert!(message.contains("not retried"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(statuses(&calls), [Some(500)]);
}

#[tokio::test]
async fn a_task_post_is_not_retried_after_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/tasks"))
        .respond_with(ok(json!({ "data": { "id": 1 } })).set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(
        &server,
        SellSettings {
            timeout: Duration::from_millis(200),
            ..fast()
        },
    );
    let task = NewTask {
        content: "x".to_owned(),
        owner_id: 1.into(),
        due_date: None,
    };
    let (result, calls) = recorded(crm.create_task(&task)).await;
    assert!(matches!(result, Err(CrmError::Transient(_))), "{result:?}");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].status, None);
    assert!(
        calls[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_task_post_is_retried_after_a_429() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/tasks"))
        .respond_with(rate_limited())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/tasks"))
        .respond_with(ok(json!({ "data": { "id": 77 } })))
        .mount(&server)
        .await;
    let crm = client(&server, fast());
    let task = NewTask {
        content: "x".to_owned(),
        owner_id: 1.into(),
        due_date: None,
    };
    let (id, calls) = recorded(crm.create_task(&task)).await;
    assert_eq!(id.unwrap(), 77);
    assert_eq!(statuses(&calls), [Some(429), Some(200)]);
}

#[tokio::test]
async fn a_put_is_retried_after_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v2/tasks/3"))
        .respond_with(ok(json!({ "data": { "id": 3 } })).set_delay(Duration::from_secs(2)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/tasks/3"))
        .respond_with(ok(json!({ "data": { "id": 3 } })))
        .mount(&server)
        .await;
    let crm = client(
        &server,
        SellSettings {
            timeout: Duration::from_millis(200),
            ..fast()
        },
    );
    let (result, calls) = recorded(reassign_one(&crm, Resource::Tasks, 3, 9)).await;
    result.unwrap();
    assert_eq!(statuses(&calls), [None, Some(200)]);
}

#[tokio::test]
async fn connection_failures_are_reported_and_retried_even_for_posts() {
    // A port nobody listens on: the request never leaves, so even a POST may retry.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let crm = SellClient::new(
        &format!("http://127.0.0.1:{port}"),
        Secret::new(TOKEN.to_owned()),
        SellSettings {
            max_retries: 2,
            ..fast()
        },
    )
    .unwrap();
    let task = NewTask {
        content: "x".to_owned(),
        owner_id: 1.into(),
        due_date: None,
    };
    let (result, calls) = recorded(crm.create_task(&task)).await;
    match result {
        Err(CrmError::Transient(message)) => {
            assert!(message.ends_with("(gave up after 3 attempts)"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.len(), 3);
    for call in &calls {
        assert_eq!(
            (call.method.as_str(), call.path.as_str(), call.status),
            ("POST", "/v2/tasks", None)
        );
        let error = call.error.as_deref().unwrap_or_default();
        assert!(error.contains("connect"), "{error}");
        assert!(!error.contains(TOKEN));
    }
}

#[tokio::test]
async fn concurrent_calls_share_the_rate_budget() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/users/1"))
        .respond_with(ok(json!({ "data": user(1, "a@example.com") })))
        .mount(&server)
        .await;
    let (n, rps) = (20u32, 20u32);
    let crm = client(
        &server,
        SellSettings {
            requests_per_second: rps,
            ..fast()
        },
    );
    let started = Instant::now();
    let calls = (0..n).map(|_| {
        // Clones share the budget: this is how jobs share a token.
        let crm = crm.clone();
        tokio::spawn(async move { crm.get_user(&1.into()).await })
    });
    for result in futures::future::join_all(calls).await {
        assert!(result.unwrap().unwrap().is_some());
    }
    let elapsed = started.elapsed();
    let ideal = Duration::from_secs_f64(f64::from(n) / f64::from(rps));
    assert!(
        elapsed >= ideal.mul_f64(0.8),
        "{n} calls at {rps}/s took {elapsed:?}"
    );
}

/// Records when each request arrives; with a fixed response delay that tells how
/// many were in flight at once.
struct Arrivals {
    at: Arc<Mutex<Vec<Instant>>>,
    delay: Duration,
}

impl Respond for Arrivals {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.at.lock().unwrap().push(Instant::now());
        ok(json!({ "data": { "id": 1, "owner_id": 2 } })).set_delay(self.delay)
    }
}

#[tokio::test]
async fn max_in_flight_is_never_exceeded() {
    let server = MockServer::start().await;
    let at = Arc::new(Mutex::new(vec![]));
    let delay = Duration::from_millis(200);
    Mock::given(method("PUT"))
        .respond_with(Arrivals {
            at: at.clone(),
            delay,
        })
        .expect(12)
        .mount(&server)
        .await;
    let max_in_flight = 3;
    let crm = client(
        &server,
        SellSettings {
            max_in_flight,
            ..fast()
        },
    );
    let puts = (0..12).map(|id| {
        let crm = crm.clone();
        tokio::spawn(async move { reassign_one(&crm, Resource::Leads, id, 2).await })
    });
    for result in futures::future::join_all(puts).await {
        result.unwrap().unwrap();
    }
    let mut at = at.lock().unwrap().clone();
    at.sort();
    // A request arriving less than `delay` after another overlaps it (minus slack
    // for the time between the server answering and the client freeing the slot).
    let window = delay - Duration::from_millis(30);
    let most = at
        .iter()
        .map(|&start| {
            at.iter()
                .filter(|&&t| t >= start && t - start < window)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most <= max_in_flight,
        "{most} requests in flight, limit {max_in_flight}"
    );
    // Not `== max_in_flight`: on a loaded machine one batch may straggle.
    assert!(most >= 2, "the slots were not used concurrently");
}

#[tokio::test]
async fn metrics_name_endpoints_without_ids() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v2/deals/5001"))
        .respond_with(rate_limited())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/deals/5001"))
        .respond_with(ok(json!({ "data": { "id": 5001 } })))
        .mount(&server)
        .await;
    reassign_one(&client(&server, fast()), Resource::Deals, 5001, 7)
        .await
        .unwrap();
    let text = handle.render();
    assert!(
        text.contains("offboard_crm_request_duration_seconds"),
        "{text}"
    );
    assert!(text.contains(r#"endpoint="/v2/deals/:id""#), "{text}");
    assert!(
        text.contains(r#"status="429""#) && text.contains(r#"status="200""#),
        "{text}"
    );
    assert!(
        text.contains("offboard_crm_rate_limit_waits_total 1"),
        "{text}"
    );
    assert!(!text.contains("5001"), "an id leaked into a label: {text}");
}
