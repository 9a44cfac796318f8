//! The sandbox speaking HubSpot over real HTTP: Bearer auth, owners (owner id ≠
//! user id) and users, search paging and its 10,000 cap, batch updates with
//! per-record errors and the 100-input limit, user removal, tasks, and the
//! rate limit with HubSpot's headers, on the shared organisation model.

use std::time::Duration;

use offboard_domain::Resource;
use offboard_sandbox::{HUBSPOT_OWNER_BASE, Sandbox, SandboxCrm, SandboxOptions, Seed, Ticket};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "hs-test-token";
const JANE: i64 = 101;
const RITA: i64 = 103;
const IVAN_INACTIVE: i64 = 104;

fn owner(user: i64) -> String {
    (HUBSPOT_OWNER_BASE + user).to_string()
}

async fn start(rps: Option<u32>) -> Sandbox {
    start_with(Seed::demo(), rps).await
}

async fn start_with(seed: Seed, rps: Option<u32>) -> Sandbox {
    Sandbox::start(SandboxOptions {
        crm: SandboxCrm::Hubspot,
        token: Some(TOKEN.into()),
        seed,
        rps,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts")
}

async fn call(
    sb: &Sandbox,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Client::new()
        .request(method, format!("{}{path}", sb.base_url()))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

fn search(owner_id: &str, after: Option<&str>, limit: u32) -> Value {
    let mut body = json!({
        "filterGroups": [{ "filters": [
            { "propertyName": "hubspot_owner_id", "operator": "EQ", "value": owner_id }
        ] }],
        "sorts": [{ "propertyName": "hs_object_id", "direction": "ASCENDING" }],
        "properties": ["hubspot_owner_id", "hs_is_closed", "hs_task_status"],
        "limit": limit,
    });
    if let Some(a) = after {
        body["after"] = json!(a);
    }
    body
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_hubspots_envelope() {
    let sb = start(None).await;
    let resp = Client::new()
        .get(format!("{}/crm/v3/owners", sb.base_url()))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert!(body["correlationId"].is_string());
}

#[tokio::test]
async fn owners_are_found_by_email_and_their_id_is_not_the_user_id() {
    let sb = start(None).await;
    let (status, body) = call(
        &sb,
        Method::GET,
        "/crm/v3/owners?email=jane.doe@example.com&archived=false",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let jane = &body["results"][0];
    assert_eq!(jane["id"], owner(JANE));
    assert_eq!(jane["userId"], JANE);
    assert_eq!(jane["archived"], false);
    let (status, ivan) = call(
        &sb,
        Method::GET,
        &format!(
            "/crm/v3/owners/{}?idProperty=id&archived=true",
            owner(IVAN_INACTIVE)
        ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ivan["userId"],
        Value::Null,
        "an inactive user's owner keeps only userIdIncludingInactive"
    );
    assert_eq!(ivan["userIdIncludingInactive"], IVAN_INACTIVE);
    let (status, _) = call(
        &sb,
        Method::GET,
        &format!("/crm/v3/owners/{}?archived=false", owner(IVAN_INACTIVE)),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "archived owners only with archived=true"
    );
    let (status, admin) = call(&sb, Method::GET, "/settings/v3/users/1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(admin["superAdmin"], true);
}

#[tokio::test]
async fn search_pages_by_after_to_the_end_and_refuses_past_the_cap() {
    let sb = start(None).await;
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let (status, page) = call(
            &sb,
            Method::POST,
            "/crm/v3/objects/contacts/search",
            Some(search(&owner(JANE), after.as_deref(), 3)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for r in page["results"].as_array().unwrap() {
            assert_eq!(r["properties"]["hubspot_owner_id"], owner(JANE));
            seen.push(r["id"].as_str().unwrap().parse::<i64>().unwrap());
        }
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    let counts = sb.state().open_counts(JANE).await;
    assert_eq!(seen.len(), counts.get(Resource::Contacts).open);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ascending ids");
    let (status, body) = call(
        &sb,
        Method::POST,
        "/crm/v3/objects/deals/search",
        Some(search(&owner(JANE), Some("9900"), 200)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn a_batch_moves_what_it_can_and_names_each_failure() {
    let sb = start(None).await;
    let (_, deals) = call(
        &sb,
        Method::POST,
        "/crm/v3/objects/deals/search",
        Some(search(&owner(JANE), None, 2)),
    )
    .await;
    let ids: Vec<String> = deals["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let batch = json!({ "inputs": [
        { "id": ids[0], "properties": { "hubspot_owner_id": owner(RITA) } },
        { "id": "999999999", "properties": { "hubspot_owner_id": owner(RITA) } },
    ] });
    let (status, body) = call(
        &sb,
        Method::POST,
        "/crm/v3/objects/deals/batch/update",
        Some(batch),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["results"][0]["id"], ids[0].as_str());
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["999999999"]));

    let inactive = json!({ "inputs": [
        { "id": ids[1], "properties": { "hubspot_owner_id": owner(IVAN_INACTIVE) } },
    ] });
    let (status, body) = call(
        &sb,
        Method::POST,
        "/crm/v3/objects/deals/batch/update",
        Some(inactive),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(body["errors"][0]["category"], "VALIDATION_ERROR");
    assert_eq!(body["errors"][0]["context"]["ids"], json!([ids[1]]));
    assert_eq!(body["results"], json!([]));

    let (status, ok) = call(
        &sb,
        Method::POST,
        "/crm/v3/objects/deals/batch/update",
        Some(json!({ "inputs": [{ "id": ids[1], "properties": { "hubspot_owner_id": owner(RITA) } }] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert!(ok.get("errors").is_none());

    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({ "id": ids[0], "properties": { "hubspot_owner_id": owner(RITA) } }))
        .collect();
    let (status, _) = call(
        &sb,
        Method::POST,
        "/crm/v3/objects/deals/batch/update",
        Some(json!({ "inputs": too_many })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "more than 100 inputs");
}

#[tokio::test]
async fn tickets_are_searched_moved_and_closed_by_their_pipeline_stage() {
    let mut seed = Seed::demo();
    let ticket = |id, closed| Ticket {
        id,
        owner_id: JANE,
        subject: format!("ticket {id}"),
        closed,
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
    };
    seed.tickets = vec![ticket(7001, false), ticket(7002, true)];
    let sb = start_with(seed, None).await;

    let mut body = search(&owner(JANE), None, 10);
    body["properties"] = json!(["hubspot_owner_id", "hs_pipeline_stage"]);
    let (status, found) = call(
        &sb,
        Method::POST,
        "/crm/v3/objects/tickets/search",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let stages: Vec<(&str, &str)> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap(),
                r["properties"]["hs_pipeline_stage"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(stages, [("7001", "1"), ("7002", "4")]);

    let (status, pipelines) = call(&sb, Method::GET, "/crm/v3/pipelines/tickets", None).await;
    assert_eq!(status, StatusCode::OK);
    let closed: Vec<&str> = pipelines["results"][0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["metadata"]["ticketState"] == "CLOSED")
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(closed, ["4"], "the closed ticket's stage is the closed one");

    let (status, _) = call(
        &sb,
        Method::POST,
        "/crm/v3/objects/tickets/batch/update",
        Some(json!({ "inputs": [{ "id": "7001", "properties": { "hubspot_owner_id": owner(RITA) } }] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rita = sb.state().open_counts(RITA).await;
    assert_eq!(rita.get(Resource::Tickets).open, 1);
    let jane = sb.state().open_counts(JANE).await;
    assert_eq!((jane.tickets.open, jane.tickets.closed), (0, 1));
}

#[tokio::test]
async fn tasks_are_created_and_a_removed_user_is_gone() {
    let sb = start(None).await;
    let (status, task) = call(
        &sb,
        Method::POST,
        "/crm/v3/objects/tasks",
        Some(json!({ "properties": {
            "hs_task_subject": "Remove jane", "hs_task_body": "[offboard:x]",
            "hs_timestamp": "2026-12-04T01:00:00.000Z", "hubspot_owner_id": owner(1),
            "hs_task_status": "NOT_STARTED"
        } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["properties"]["hs_task_body"], "[offboard:x]");
    let (status, _) = call(
        &sb,
        Method::POST,
        "/crm/v3/objects/tasks",
        Some(json!({ "properties": { "hs_task_subject": "x" } })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "hs_timestamp is required");

    // Ivan (inactive) owns nothing open in the demo org, so he can be removed.
    let (status, _) = call(
        &sb,
        Method::DELETE,
        &format!("/settings/v3/users/{IVAN_INACTIVE}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &sb,
        Method::GET,
        &format!("/settings/v3/users/{IVAN_INACTIVE}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &sb,
        Method::DELETE,
        &format!("/settings/v3/users/{JANE}"),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "Jane still owns open records"
    );
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_hubspots_headers() {
    let sb = start(Some(1)).await;
    let mut last = None;
    for _ in 0..11 {
        let resp = Client::new()
            .get(format!("{}/crm/v3/owners", sb.base_url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        last = Some(resp);
    }
    let resp = last.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = resp.headers();
    assert_eq!(h["x-hubspot-ratelimit-interval-milliseconds"], "10000");
    assert_eq!(h["x-hubspot-ratelimit-max"], "10");
    assert_eq!(h["x-hubspot-ratelimit-remaining"], "0");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errorType"], "RATE_LIMIT");
    sb.state().advance_clock(Duration::from_secs(10));
    let (status, _) = call(&sb, Method::GET, "/crm/v3/owners", None).await;
    assert_eq!(status, StatusCode::OK, "the window slid");
}
