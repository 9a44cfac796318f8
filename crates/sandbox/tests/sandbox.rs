//! The Sell sandbox over real HTTP: the shapes, paging, auth, limits, faults and
//! control routes that the demo, rehearsals and the Sell client's tests rely on.

use std::{collections::BTreeSet, time::Duration};

use offboard_domain::{Resource, UserStatus};
use offboard_sandbox::{Fault, Sandbox, SandboxOptions, Seed};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "test-token";
const JANE: i64 = 101;
const SAM: i64 = 102;
const IVAN_INACTIVE: i64 = 104;
const MAX: i64 = 100;

async fn start(opts: SandboxOptions) -> Sandbox {
    Sandbox::start(opts).await.expect("sandbox starts")
}

async fn demo() -> Sandbox {
    start(SandboxOptions::default()).await
}

fn client() -> Client {
    Client::builder()
        .user_agent("offboard-tests/1.0")
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A Sell API call with the test token; returns status and JSON body.
async fn call(
    sb: &Sandbox,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client()
        .request(method, format!("{}{path}", sb.base_url()))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(sb: &Sandbox, path: &str) -> (StatusCode, Value) {
    call(sb, Method::GET, path, None).await
}

async fn put_owner(sb: &Sandbox, resource: &str, id: i64, owner: i64) -> (StatusCode, Value) {
    let body = json!({ "data": { "owner_id": owner } });
    call(sb, Method::PUT, &format!("/v2/{resource}/{id}"), Some(body)).await
}

fn error_code(body: &Value) -> &str {
    body["errors"][0]["error"]["code"].as_str().unwrap_or("")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn sample(name: &str) -> Value {
    let text = match name {
        "users" => include_str!("../src/testdata/users-list.json"),
        "deals" => include_str!("../src/testdata/deals-page.json"),
        "stages" => include_str!("../src/testdata/stages-list.json"),
        _ => include_str!("../src/testdata/error-429.json"),
    };
    serde_json::from_str(text).unwrap()
}

/// Checks a Sell error envelope has the sample's shape and the given status.
fn assert_error_envelope(body: &Value, http_status: &str, code: &str) {
    let want = sample("error");
    assert_eq!(keys(body), keys(&want), "{body}");
    assert_eq!(keys(&body["meta"]), keys(&want["meta"]), "{body}");
    assert_eq!(body["meta"]["type"], "errors");
    assert_eq!(body["meta"]["http_status"], http_status);
    let err = &body["errors"][0];
    assert_eq!(err["meta"]["type"], "error");
    for field in ["code", "message", "details"] {
        assert!(err["error"][field].is_string(), "{field} in {body}");
    }
    assert_eq!(error_code(body), code, "{body}");
}

fn first_deal_of(seed: &Seed, owner: i64, open: bool) -> i64 {
    let closing: BTreeSet<i64> = seed
        .stages
        .iter()
        .filter(|s| s.is_closing())
        .map(|s| s.id)
        .collect();
    seed.deals
        .iter()
        .find(|d| d.owner_id == owner && closing.contains(&d.stage_id) != open)
        .map(|d| d.id)
        .unwrap()
}

#[tokio::test]
async fn lists_page_clamp_and_end_without_next_page() {
    let sb = demo().await;
    let (status, page1) = get(&sb, &format!("/v2/leads?owner_id={JANE}&per_page=500")).await;
    assert_eq!(status, 200);
    assert_eq!(
        page1["items"].as_array().unwrap().len(),
        100,
        "per_page clamped to 100"
    );
    assert_eq!(page1["meta"]["type"], "collection");
    assert_eq!(page1["meta"]["count"], 100);
    let next = page1["meta"]["links"]["next_page"].as_str().unwrap();
    assert!(next.starts_with(&sb.base_url()), "{next}");
    assert!(
        next.contains(&format!("owner_id={JANE}")) && next.contains("page=2&per_page=100"),
        "{next}"
    );

    let res = client().get(next).bearer_auth(TOKEN).send().await.unwrap();
    let page2: Value = res.json().await.unwrap();
    assert_eq!(page2["items"].as_array().unwrap().len(), 4);
    assert_eq!(page2["meta"]["count"], 4);
    let links = page2["meta"]["links"].as_object().unwrap();
    assert!(
        !links.contains_key("next_page"),
        "no next_page on the last page: {links:?}"
    );
    assert!(links.contains_key("self") && links.contains_key("first_page"));

    let all: BTreeSet<i64> = [&page1, &page2]
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap())
        .map(|i| {
            assert_eq!(i["data"]["owner_id"], JANE);
            assert_eq!(i["meta"]["type"], "lead");
            i["data"]["id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(all.len(), 104, "two pages, no overlap");

    let (_, default) = get(&sb, "/v2/contacts").await;
    assert_eq!(
        default["items"].as_array().unwrap().len(),
        25,
        "default per_page"
    );
    let (_, beyond) = get(
        &sb,
        &format!("/v2/leads?owner_id={JANE}&per_page=100&page=9"),
    )
    .await;
    assert_eq!(beyond["items"], json!([]));
    assert!(beyond["meta"]["links"].get("next_page").is_none());
    let (_, one) = get(&sb, "/v2/leads?owner_id=999").await;
    assert_eq!(
        (one["meta"]["count"].clone(), one["items"].clone()),
        (json!(0), json!([]))
    );
}

#[tokio::test]
async fn shapes_match_the_sell_samples() {
    let sb = demo().await;
    let (_, users) = get(&sb, "/v2/users?email=JANE.DOE@example.com").await;
    let want = sample("users");
    assert_eq!(keys(&users), keys(&want));
    assert_eq!(keys(&users["meta"]), keys(&want["meta"]));
    assert_eq!(
        keys(&users["items"][0]["data"]),
        keys(&want["items"][0]["data"])
    );
    assert_eq!(users["items"][0]["meta"], json!({ "type": "user" }));
    assert_eq!(
        users["items"][0]["data"]["id"], JANE,
        "e-mail matches case-insensitively"
    );
    assert_eq!(users["meta"]["count"], 1);
    assert!(
        users["meta"]["links"]["self"]
            .as_str()
            .unwrap()
            .contains("email=JANE.DOE%40example.com")
    );

    let (_, deals) = get(&sb, &format!("/v2/deals?owner_id={JANE}&per_page=2")).await;
    let want = sample("deals");
    assert_eq!(
        keys(&deals["items"][0]["data"]),
        keys(&want["items"][0]["data"])
    );
    assert_eq!(
        keys(&deals["items"][0]["meta"]),
        keys(&want["items"][0]["meta"])
    );
    assert_eq!(keys(&deals["meta"]["links"]), keys(&want["meta"]["links"]));

    let (status, one) = get(&sb, &format!("/v2/users/{JANE}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&one),
        BTreeSet::from(["data".to_owned(), "meta".to_owned()])
    );
    assert_eq!(one["meta"], json!({ "type": "user" }));
    let (_, me) = get(&sb, "/v2/users/self").await;
    assert_eq!(
        (me["data"]["email"].as_str(), me["data"]["role"].as_str()),
        (Some("admin@example.com"), Some("admin"))
    );

    let (_, stages) = get(&sb, "/v2/stages?per_page=100").await;
    let want = sample("stages");
    let items = stages["items"].as_array().unwrap();
    assert_eq!(keys(&items[0]["data"]), keys(&want["items"][0]["data"]));
    let pipelines: BTreeSet<i64> = items
        .iter()
        .map(|s| s["data"]["pipeline_id"].as_i64().unwrap())
        .collect();
    assert_eq!(pipelines.len(), 2);
    for category in ["won", "lost"] {
        let n = items
            .iter()
            .filter(|s| s["data"]["category"] == category)
            .count();
        assert_eq!(n, 2, "one {category} stage per pipeline");
    }

    let (_, filtered) = get(&sb, "/v2/users?ids=1,2&status=active").await;
    assert_eq!(filtered["meta"]["count"], 2);
    let (_, inactive) = get(&sb, "/v2/users?status=inactive").await;
    assert_eq!(inactive["items"][0]["data"]["id"], IVAN_INACTIVE);
    let (_, open_tasks) = get(&sb, &format!("/v2/tasks?owner_id={JANE}&completed=false")).await;
    assert!(
        open_tasks["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["data"]["completed"] == false)
    );
    assert_eq!(open_tasks["meta"]["count"], 4);
}

#[tokio::test]
async fn auth_and_user_agent_errors_use_the_sell_envelope() {
    let sb = start(SandboxOptions {
        token: Some(TOKEN.into()),
        ..SandboxOptions::default()
    })
    .await;
    let url = format!("{}/v2/users", sb.base_url());

    let res = client().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_error_envelope(
        &res.json().await.unwrap(),
        "401 Unauthorized",
        "unauthorized",
    );
    let res = client()
        .get(&url)
        .bearer_auth("someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "only the configured token");
    let res = client()
        .get(&url)
        .header("authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let no_agent = Client::new(); // reqwest sends no User-Agent by default
    let res = no_agent.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_error_envelope(
        &res.json().await.unwrap(),
        "400 Bad Request",
        "invalid_user_agent",
    );

    let res = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Without a configured token any non-empty token works.
    let open = demo().await;
    let res = client()
        .get(format!("{}/v2/users", open.base_url()))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let (status, body) = get(&open, "/v2/nothing-here").await;
    assert_eq!(status, 404);
    assert_error_envelope(&body, "404 Not Found", "not_found");
    let (status, body) = call(&open, Method::DELETE, "/v2/leads/1", None).await;
    assert_eq!(status, 405);
    assert_error_envelope(&body, "405 Method Not Allowed", "method_not_allowed");
    let (status, body) = get(&open, "/v2/leads?owner_id=jane").await;
    assert_eq!(status, 400);
    assert_error_envelope(&body, "400 Bad Request", "invalid_param");
    let (status, body) = get(&open, "/v2/users/not-a-number").await;
    assert_eq!(status, 404);
    assert_error_envelope(&body, "404 Not Found", "not_found");
}

#[tokio::test]
async fn put_reassigns_only_to_active_users() {
    let sb = demo().await;
    let seed = sb.state().snapshot().await;
    let deal = first_deal_of(&seed, JANE, true);

    let (status, body) = put_owner(&sb, "deals", deal, IVAN_INACTIVE).await;
    assert_eq!(status, 422, "inactive owner");
    assert_error_envelope(&body, "422 Unprocessable Entity", "invalid");
    assert_eq!(body["errors"][0]["error"]["field"], "owner_id");
    let (status, _) = put_owner(&sb, "deals", deal, 9_999).await;
    assert_eq!(status, 422, "unknown owner");
    let (status, body) = call(
        &sb,
        Method::PUT,
        &format!("/v2/deals/{deal}"),
        Some(json!({ "owner_id": MAX })),
    )
    .await;
    assert_eq!(status, 422, "body without data");
    assert_error_envelope(&body, "422 Unprocessable Entity", "missing_field");
    let res = client()
        .put(format!("{}/v2/deals/{deal}", sb.base_url()))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let (status, body) = put_owner(&sb, "deals", 1, MAX).await;
    assert_eq!(status, 404, "unknown record");
    assert_error_envelope(&body, "404 Not Found", "not_found");
    let state = sb.state();
    assert_eq!(state.stats().writes_for(Resource::Deals, deal), 0);
    let now = state.snapshot().await;
    assert_eq!(
        now.deals.iter().find(|d| d.id == deal).unwrap().owner_id,
        JANE
    );

    // A deleted user can't own records either.
    state.delete(IVAN_INACTIVE).await.unwrap();
    let (status, _) = put_owner(&sb, "deals", deal, IVAN_INACTIVE).await;
    assert_eq!(status, 422, "deleted owner");

    let (status, body) = put_owner(&sb, "deals", deal, MAX).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["owner_id"], MAX);
    assert_eq!(body["meta"], json!({ "type": "deal", "version": 2 }));
    let (_, again) = get(&sb, &format!("/v2/deals/{deal}")).await;
    assert_eq!(again["data"]["owner_id"], MAX);
    let stats = state.stats();
    assert_eq!(stats.puts_for(Resource::Deals, deal), 6);
    assert_eq!(stats.writes_for(Resource::Deals, deal), 1);
}

#[tokio::test]
async fn the_rate_limit_answers_429_past_r_requests_in_a_second() {
    let sb = start(SandboxOptions {
        rps: Some(5),
        ..SandboxOptions::default()
    })
    .await;
    let url = format!("{}/v2/users/self", sb.base_url());
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let res = c.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        if res.status() == 429 {
            assert!(
                res.headers().get("retry-after").is_none(),
                "Sell sends no Retry-After"
            );
            let body: Value = res.json().await.unwrap();
            assert_error_envelope(&body, "429 Too Many Requests", "rate_limit_exceeded");
            statuses.push(429);
        } else {
            statuses.push(res.status().as_u16());
        }
    }
    assert_eq!(
        &statuses[..6],
        [200, 200, 200, 200, 200, 429],
        "{statuses:?}"
    );

    let other = c
        .get(&url)
        .bearer_auth("another-token")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "the limit is per token");

    sb.state().advance_clock(Duration::from_secs(1));
    let res = c.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200, "the window slid");
    assert!(sb.state().stats().rate_limited >= 1);
}

#[tokio::test]
async fn a_faulted_put_leaves_the_record_unchanged() {
    let sb = start(SandboxOptions {
        fault_rate: 1.0,
        ..SandboxOptions::default()
    })
    .await;
    let seed = sb.state().snapshot().await;
    let leads: Vec<i64> = seed
        .leads
        .iter()
        .filter(|l| l.owner_id == JANE)
        .map(|l| l.id)
        .take(9)
        .collect();
    let mut dropped = 0;
    for &id in &leads {
        let res = client()
            .put(format!("{}/v2/leads/{id}", sb.base_url()))
            .bearer_auth(TOKEN)
            .json(&json!({ "data": { "owner_id": MAX } }))
            .send()
            .await;
        match res {
            Ok(res) => {
                let status = res.status();
                assert!(status == 500 || status == 503, "{status}");
                let body: Value = res.json().await.unwrap();
                let code = if status == 500 {
                    "internal_server_error"
                } else {
                    "service_unavailable"
                };
                assert_error_envelope(&body, &format!("{status}"), code);
            }
            Err(e) => {
                assert!(
                    !e.is_timeout(),
                    "a drop is a closed connection, not a hang: {e}"
                );
                dropped += 1;
            }
        }
    }
    assert!(dropped > 0, "some faults drop the connection");
    let after = sb.state().snapshot().await;
    for id in &leads {
        assert_eq!(
            after.leads.iter().find(|l| l.id == *id).unwrap().owner_id,
            JANE,
            "lead {id} untouched"
        );
    }
    let stats = sb.state().stats();
    assert_eq!(stats.faults, leads.len() as u64);
    assert!(stats.writes.is_empty());
    assert_eq!(stats.puts_for(Resource::Leads, leads[0]), 1);
    let log = sb.state().request_log();
    assert_eq!(
        log.iter()
            .filter(|e| e.fault == Some(Fault::Dropped))
            .count(),
        dropped
    );
    assert!(
        log.iter()
            .filter(|e| e.fault == Some(Fault::Dropped))
            .all(|e| e.status.is_none())
    );
}

#[tokio::test]
async fn control_routes_change_what_the_api_shows() {
    let sb = demo().await;
    let base = sb.base_url();
    let c = client();
    let control = |action: &str, id: i64| {
        c.post(format!("{base}/__sandbox/users/{id}/{action}"))
            .send()
    };

    let res = control("deactivate", JANE).await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, jane) = get(&sb, &format!("/v2/users/{JANE}")).await;
    assert_eq!(jane["data"]["status"], "inactive");
    let (_, inactive) = get(&sb, "/v2/users?status=inactive&per_page=100").await;
    assert!(
        inactive["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["data"]["id"] == JANE)
    );
    assert_eq!(control("reactivate", JANE).await.unwrap().status(), 200);
    assert_eq!(
        sb.state().user(JANE).await.unwrap().status,
        UserStatus::Active
    );

    // Sell refuses to delete a user who still owns open records.
    let res = control("delete", SAM).await.unwrap();
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "open_records");
    let (status, _) = get(&sb, &format!("/v2/users/{SAM}")).await;
    assert_eq!(status, 200);

    let res = control("delete", IVAN_INACTIVE).await.unwrap();
    assert_eq!(res.status(), 200);
    let (status, body) = get(&sb, &format!("/v2/users/{IVAN_INACTIVE}")).await;
    assert_eq!(status, 404);
    assert_error_envelope(&body, "404 Not Found", "not_found");
    let (_, by_email) = get(&sb, "/v2/users?email=ivan.inactive@example.com").await;
    assert_eq!(by_email["items"], json!([]));
    assert_eq!(
        control("reactivate", IVAN_INACTIVE).await.unwrap().status(),
        409
    );
    assert_eq!(control("deactivate", 4242).await.unwrap().status(), 404);

    let state: Value = c
        .get(format!("{base}/__sandbox/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ivan = state["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == IVAN_INACTIVE)
        .unwrap();
    assert!(ivan["deleted_at"].is_string());
    let counts: Value = c
        .get(format!("{base}/__sandbox/users/{JANE}/counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["counts"]["leads"]["open"], 104);

    let log = c
        .get(format!("{base}/__sandbox/requests"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("/v2/users?status=inactive"), "{log}");
    assert!(
        !log.contains(TOKEN) && !log.contains("__sandbox"),
        "no tokens, no control calls: {log}"
    );
    let stats: Value = c
        .get(format!("{base}/__sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["by_status"]["404"], 1);

    let res = c
        .post(format!("{base}/__sandbox/reset"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let (status, _) = get(&sb, &format!("/v2/users/{IVAN_INACTIVE}")).await;
    assert_eq!(status, 200, "reset brings the seed back");
    let res = c
        .get(format!("{base}/__sandbox/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_posted_task_appears_in_the_tasks_list() {
    let sb = demo().await;
    let task = json!({ "data": {
        "content": "offboard: deactivate jane.doe@example.com in Settings > Manage > Users",
        "owner_id": 1,
        "due_date": "2026-12-16T17:00:00Z",
    }});
    let (status, body) = call(&sb, Method::POST, "/v2/tasks", Some(task)).await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["type"], "task");
    let id = body["data"]["id"].as_i64().unwrap();
    assert_eq!(body["data"]["owner_id"], 1);
    assert_eq!(body["data"]["completed"], false);
    assert_eq!(body["data"]["due_date"], "2026-12-16T17:00:00Z");

    let (_, list) = get(&sb, "/v2/tasks?owner_id=1&completed=false&per_page=100").await;
    let found = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["data"]["id"] == id)
        .unwrap();
    assert!(
        found["data"]["content"]
            .as_str()
            .unwrap()
            .contains("jane.doe@example.com")
    );
    let (status, _) = get(&sb, &format!("/v2/tasks/{id}")).await;
    assert_eq!(status, 200);

    let bad = [
        json!({ "data": { "content": "x", "owner_id": IVAN_INACTIVE } }),
        json!({ "data": { "owner_id": 1 } }),
        json!({ "data": { "content": "x", "due_date": "next tuesday" } }),
        json!({ "content": "x" }),
    ];
    for body in bad {
        let (status, answer) = call(&sb, Method::POST, "/v2/tasks", Some(body.clone())).await;
        assert_eq!(status, 422, "{body}");
        assert_error_envelope(&answer, "422 Unprocessable Entity", error_code(&answer));
    }
}

#[tokio::test]
async fn a_generated_org_is_served_and_counted() {
    let seed = Seed::generate(30, 42);
    let sb = start(SandboxOptions {
        seed: seed.clone(),
        ..SandboxOptions::default()
    })
    .await;
    let rep = seed.leads[0].owner_id;
    let (_, leads) = get(&sb, &format!("/v2/leads?owner_id={rep}&per_page=100")).await;
    assert_eq!(leads["meta"]["count"], 30);
    let counts = sb.state().open_counts(rep).await;
    assert_eq!(counts.leads.open, 30);
    assert_eq!(counts.deals.open + counts.deals.closed, 30);
    assert!(counts.deals.closed > 0 && counts.tasks.closed > 0);
    let (_, ops) = get(&sb, "/v2/users?email=sales-ops@example.com").await;
    assert_eq!(ops["items"][0]["data"]["status"], "active");

    let closed = first_deal_of(&seed, rep, false);
    let (status, _) = put_owner(&sb, "deals", closed, 2).await;
    assert_eq!(
        status, 200,
        "the API itself moves closed deals too; open_only is offboard's choice"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn bad_options_are_refused_and_shutdown_frees_the_port() {
    let bad = SandboxOptions {
        fault_rate: 1.5,
        ..SandboxOptions::default()
    };
    assert_eq!(
        Sandbox::start(bad).await.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let mut seed = Seed::demo();
    seed.leads[0].owner_id = 9_999;
    let bad = SandboxOptions {
        seed,
        ..SandboxOptions::default()
    };
    assert_eq!(
        Sandbox::start(bad).await.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );

    let sb = demo().await;
    let addr = sb.local_addr();
    let url = format!("{}/v2/users/self", sb.base_url());
    assert!(client().get(&url).bearer_auth(TOKEN).send().await.is_ok());
    sb.shutdown().await;
    let again = start(SandboxOptions {
        listen: addr,
        ..SandboxOptions::default()
    })
    .await;
    assert_eq!(again.local_addr(), addr);
}
