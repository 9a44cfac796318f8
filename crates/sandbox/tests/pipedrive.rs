//! The sandbox speaking Pipedrive over real HTTP: auth, users and seats, cursor
//! and offset paging, owner changes and their rules, activities, the rate limit
//! and faults, all on the same organisation model the Sell dialect serves.

use std::{collections::BTreeSet, time::Duration};

use offboard_domain::{Resource, UserStatus};
use offboard_sandbox::{
    Contact, Sandbox, SandboxCrm, SandboxOptions, Seed, lead_id_from_uuid, lead_uuid,
};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "pd-test-token";
const ADMIN: i64 = 1;
const SALES_OPS: i64 = 2;
const JANE: i64 = 101;
const RITA: i64 = 103;
const IVAN_INACTIVE: i64 = 104;
/// Organizations the tests add to the demo org, which has persons only.
const ACME: i64 = 29_001;
const GLOBEX: i64 = 29_002;

/// The demo org plus two organizations of Jane's and four of her leads archived.
fn seed() -> Seed {
    let mut seed = Seed::demo();
    for (id, name) in [(ACME, "Acme Inc"), (GLOBEX, "Globex Corp")] {
        let org: Contact = serde_json::from_value(
            json!({ "id": id, "owner_id": JANE, "is_organization": true, "name": name }),
        )
        .unwrap();
        seed.contacts.push(org);
    }
    let janes: Vec<i64> = seed
        .leads
        .iter()
        .filter(|l| l.owner_id == JANE)
        .map(|l| l.id)
        .collect();
    seed.archived_leads.extend(&janes[..4]);
    seed
}

fn options() -> SandboxOptions {
    SandboxOptions {
        crm: SandboxCrm::Pipedrive,
        token: Some(TOKEN.into()),
        seed: seed(),
        ..SandboxOptions::default()
    }
}

async fn start(opts: SandboxOptions) -> Sandbox {
    Sandbox::start(opts).await.expect("sandbox starts")
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.json().await.unwrap_or(Value::Null))
}

/// A Pipedrive call with the test token in `x-api-token`.
async fn call(
    sb: &Sandbox,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client()
        .request(method, format!("{}{path}", sb.base_url()))
        .header("x-api-token", TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let (status, _, body) = send(req).await;
    (status, body)
}

async fn get(sb: &Sandbox, path: &str) -> (StatusCode, Value) {
    call(sb, Method::GET, path, None).await
}

async fn patch_owner(sb: &Sandbox, path: &str, owner: i64) -> (StatusCode, Value) {
    call(sb, Method::PATCH, path, Some(json!({ "owner_id": owner }))).await
}

/// Pipedrive's failure body: `success: false` and an `error` text.
fn assert_failure(body: &Value) {
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(body["error_info"].is_string(), "{body}");
}

/// Walks a v2 list from the first page to the one whose `next_cursor` is null.
async fn walk(sb: &Sandbox, path: &str) -> (Vec<Value>, usize) {
    let (mut items, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let (status, body) = get(sb, &url).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        items.extend(body["data"].as_array().unwrap().iter().cloned());
        pages += 1;
        match &body["additional_data"]["next_cursor"] {
            Value::Null => return (items, pages),
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("next_cursor {other}"),
        }
    }
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(|i| i["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn every_way_of_passing_the_token_works_and_bad_ones_get_pipedrives_401() {
    let sb = start(options()).await;
    let url = format!("{}/api/v1/users/me", sb.base_url());
    for req in [
        client().get(&url),
        client().get(&url).header("x-api-token", "wrong"),
        client().get(format!("{url}?api_token=wrong")),
        client().get(&url).bearer_auth("wrong"),
    ] {
        let (status, headers, body) = send(req).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["errorCode"], 401, "{body}");
        assert_failure(&body);
        assert!(headers.get("x-ratelimit-limit").is_none());
    }
    for req in [
        client().get(&url).header("x-api-token", TOKEN),
        client().get(format!("{url}?api_token={TOKEN}")),
        client().get(&url).bearer_auth(TOKEN),
    ] {
        let (status, _, body) = send(req).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["id"], ADMIN);
    }
    let log = sb.state().request_log();
    assert_eq!(log.len(), 7);
    assert!(log.iter().all(|e| !e.path.contains(TOKEN)), "{log:?}");
    assert!(log.iter().any(|e| e.path.ends_with("api_token=***")));
}

#[tokio::test]
async fn users_are_found_by_email_and_me_is_the_token_owner() {
    let sb = start(options()).await;
    let (status, body) = get(
        &sb,
        "/api/v1/users/find?term=jane.doe%40example.com&search_by_email=1",
    )
    .await;
    assert_eq!(status, 200);
    let found = body["data"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{body}");
    let jane = &found[0];
    assert_eq!(
        (&jane["id"], &jane["name"], &jane["email"]),
        (
            &json!(JANE),
            &json!("Jane Doe"),
            &json!("jane.doe@example.com")
        )
    );
    assert_eq!(
        (&jane["active_flag"], &jane["is_admin"]),
        (&json!(true), &json!(0))
    );
    assert!(
        jane.get("reports_to").is_none(),
        "Pipedrive has no manager field"
    );
    let (_, body) = get(&sb, "/api/v1/users/find?term=DOE&search_by_email=1").await;
    assert_eq!(ids(body["data"].as_array().unwrap()), [JANE]);
    let (_, body) = get(
        &sb,
        "/api/v1/users/find?term=nobody%40example.com&search_by_email=1",
    )
    .await;
    assert_eq!(body["data"], json!([]));
    let (status, body) = get(&sb, "/api/v1/users/find").await;
    assert_eq!(status, 400);
    assert_failure(&body);

    let (_, me) = get(&sb, "/api/v1/users/me").await;
    assert_eq!(
        (&me["data"]["id"], &me["data"]["is_admin"]),
        (&json!(ADMIN), &json!(1))
    );
    assert_eq!(me["data"]["is_you"], true);
    let (_, all) = get(&sb, "/api/v1/users").await;
    let users = all["data"].as_array().unwrap();
    assert_eq!(users.len(), 9);
    let ivan = users.iter().find(|u| u["id"] == IVAN_INACTIVE).unwrap();
    assert_eq!(ivan["active_flag"], false);
    assert_eq!(users.iter().filter(|u| u["is_you"] == true).count(), 1);
    let (status, body) = get(&sb, "/api/v1/users/999").await;
    assert_eq!(status, 404);
    assert_failure(&body);

    let other = start(SandboxOptions {
        token_owner: Some(SALES_OPS),
        ..options()
    })
    .await;
    let (_, me) = get(&other, "/api/v1/users/me").await;
    assert_eq!(me["data"]["id"], SALES_OPS);
    let bad = Sandbox::start(SandboxOptions {
        token_owner: Some(999),
        ..options()
    })
    .await;
    assert_eq!(bad.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn cursor_paging_reaches_the_last_page_and_survives_reassignment() {
    let sb = start(options()).await;
    let counts = sb.state().open_counts(JANE).await;
    let (deals, pages) = walk(
        &sb,
        &format!("/api/v2/deals?owner_id={JANE}&status=open&limit=2"),
    )
    .await;
    assert_eq!(deals.len(), counts.get(Resource::Deals).open);
    assert_eq!(pages, counts.get(Resource::Deals).open.div_ceil(2).max(1));
    assert!(
        deals
            .iter()
            .all(|d| d["status"] == "open" && d["owner_id"] == JANE)
    );
    let won_or_lost = walk(
        &sb,
        &format!("/api/v2/deals?owner_id={JANE}&status=won,lost"),
    )
    .await
    .0;
    assert_eq!(won_or_lost.len(), counts.get(Resource::Deals).closed);
    let persons = walk(&sb, &format!("/api/v2/persons?owner_id={JANE}&limit=3"))
        .await
        .0;
    assert_eq!(persons.len(), counts.get(Resource::Contacts).open);
    let orgs = walk(
        &sb,
        &format!("/api/v2/organizations?owner_id={JANE}&limit=1"),
    )
    .await
    .0;
    assert_eq!(ids(&orgs), [ACME, GLOBEX]);

    // Moving every open activity while walking the filtered list skips none:
    // the cursor names the next id, not an offset.
    let path = format!("/api/v2/activities?owner_id={JANE}&done=false&limit=1");
    let (mut moved, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let url = cursor
            .as_ref()
            .map_or(path.clone(), |c| format!("{path}&cursor={c}"));
        let (_, page) = get(&sb, &url).await;
        for a in page["data"].as_array().unwrap() {
            let id = a["id"].as_i64().unwrap();
            let (status, body) = patch_owner(&sb, &format!("/api/v2/activities/{id}"), RITA).await;
            assert_eq!(status, 200, "{body}");
            moved.push(id);
        }
        match page["additional_data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(moved.len(), counts.get(Resource::Tasks).open);
    assert_eq!(
        sb.state().open_counts(JANE).await.get(Resource::Tasks).open,
        0
    );

    for bad in [
        "limit=501",
        "limit=0",
        "limit=x",
        "cursor=eyJhY3Rpdml0eSI6NDJ9",
        "sort_by=add_time",
    ] {
        let (status, body) = get(&sb, &format!("/api/v2/deals?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_failure(&body);
    }
    let (_, full) = get(&sb, "/api/v2/deals?limit=500").await;
    assert_eq!(full["additional_data"]["next_cursor"], Value::Null);
}

#[tokio::test]
async fn leads_page_by_offset_have_uuids_and_archived_ones_are_apart() {
    let sb = start(options()).await;
    let seed = seed();
    let archived = seed.archived_leads.clone();
    let open = seed
        .leads
        .iter()
        .filter(|l| l.owner_id == JANE && !archived.contains(&l.id))
        .count();
    assert_eq!(open, 100);
    let (mut start, mut seen) = (0, BTreeSet::new());
    loop {
        let (status, body) = get(
            &sb,
            &format!(
                "/api/v1/leads?owner_id={JANE}&archived_status=not_archived&start={start}&limit=30"
            ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let page = &body["additional_data"]["pagination"];
        assert_eq!(
            (&page["start"], &page["limit"]),
            (&json!(start), &json!(30))
        );
        for lead in body["data"].as_array().unwrap() {
            assert_eq!(lead["is_archived"], false);
            assert_eq!(lead["owner_id"], JANE);
            let uuid = lead["id"].as_str().unwrap();
            assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{uuid}");
            assert!(seen.insert(lead_id_from_uuid(uuid).unwrap()));
        }
        if page["more_items_in_collection"] == false {
            assert!(page.get("next_start").is_none(), "{page}");
            break;
        }
        start = page["next_start"].as_u64().unwrap() as usize;
    }
    assert_eq!(seen.len(), open);
    assert!(seen.is_disjoint(&archived));

    let (_, body) = get(&sb, &format!("/api/v1/leads/archived?owner_id={JANE}")).await;
    let got: BTreeSet<i64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| lead_id_from_uuid(l["id"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(got, archived);
    let counts = sb.state().open_counts(JANE).await;
    assert_eq!((counts.leads.open, counts.leads.closed), (100, 4));

    let lead = *seen.iter().next().unwrap();
    let uuid = lead_uuid(lead);
    let (status, body) = get(&sb, &format!("/api/v1/leads/{uuid}")).await;
    assert_eq!(
        (status, &body["data"]["id"]),
        (StatusCode::OK, &json!(uuid))
    );
    let (status, body) = patch_owner(&sb, &format!("/api/v1/leads/{uuid}"), RITA).await;
    assert_eq!(
        (status, &body["data"]["owner_id"]),
        (StatusCode::OK, &json!(RITA))
    );
    assert_eq!(sb.state().stats().writes_for(Resource::Leads, lead), 1);
    for missing in [lead_uuid(1), "not-a-uuid".to_owned()] {
        let (status, body) = patch_owner(&sb, &format!("/api/v1/leads/{missing}"), RITA).await;
        assert_eq!(status, 404, "{body}");
        assert_failure(&body);
    }
}

#[tokio::test]
async fn owner_changes_need_an_active_owner_and_leave_the_record_alone_otherwise() {
    let sb = start(options()).await;
    let state = sb.state();
    let (_, deals) = get(
        &sb,
        &format!("/api/v2/deals?owner_id={JANE}&status=open&limit=1"),
    )
    .await;
    let deal = deals["data"][0]["id"].as_i64().unwrap();
    let before = state.snapshot().await;
    for owner in [IVAN_INACTIVE, 999] {
        let (status, body) = patch_owner(&sb, &format!("/api/v2/deals/{deal}"), owner).await;
        assert_eq!(status, 400, "{body}");
        assert_failure(&body);
    }
    let (status, body) = call(
        &sb,
        Method::PATCH,
        &format!("/api/v2/deals/{deal}"),
        Some(json!({ "owner_id": RITA, "hot": true })),
    )
    .await;
    assert_eq!(
        status, 400,
        "unknown fields are refused, not dropped: {body}"
    );
    assert_eq!(
        state.snapshot().await,
        before,
        "refused writes change nothing"
    );
    assert_eq!(state.stats().writes_for(Resource::Deals, deal), 0);
    assert_eq!(state.stats().puts_for(Resource::Deals, deal), 3);

    let (status, body) = patch_owner(&sb, &format!("/api/v2/deals/{deal}"), RITA).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["success"], &body["data"]["owner_id"]),
        (&json!(true), &json!(RITA))
    );
    let (_, again) = get(&sb, &format!("/api/v2/deals/{deal}")).await;
    assert_eq!(again["data"]["owner_id"], RITA);

    for (path, resource, id) in [
        (
            format!("/api/v2/organizations/{ACME}"),
            Resource::Organizations,
            ACME,
        ),
        (
            format!("/api/v2/persons/{}", persons_of(&sb, JANE).await[0]),
            Resource::Contacts,
            persons_of(&sb, JANE).await[0],
        ),
    ] {
        let (status, body) = patch_owner(&sb, &path, RITA).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(state.stats().writes_for(resource, id), 1);
    }
    let counts = state.open_counts(JANE).await;
    assert_eq!(counts.organizations.open, 1);
    assert!(state.stats().written_twice().is_empty());

    for path in [
        "/api/v2/deals/1".to_owned(),
        "/api/v2/activities/abc".to_owned(),
        format!("/api/v2/persons/{GLOBEX}"),
        format!("/api/v2/organizations/{}", persons_of(&sb, JANE).await[0]),
    ] {
        let (status, body) = patch_owner(&sb, &path, RITA).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_failure(&body);
        let (status, _) = get(&sb, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, body) = get(&sb, "/api/v2/nothing").await;
    assert_eq!(status, 404);
    assert_failure(&body);
}

async fn persons_of(sb: &Sandbox, owner: i64) -> Vec<i64> {
    ids(&walk(sb, &format!("/api/v2/persons?owner_id={owner}"))
        .await
        .0)
}

#[tokio::test]
async fn a_seat_is_deactivated_and_reactivated_through_active_flag() {
    let sb = start(options()).await;
    let state = sb.state();
    let put = |id: i64, body: Value| {
        let sb = &sb;
        async move { call(sb, Method::PUT, &format!("/api/v1/users/{id}"), Some(body)).await }
    };
    let (status, body) = put(JANE, json!({ "active_flag": false })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["data"]["id"], &body["data"]["active_flag"]),
        (&json!(JANE), &json!(false))
    );
    assert_eq!(state.user(JANE).await.unwrap().status, UserStatus::Inactive);
    let (_, body) = get(&sb, &format!("/api/v1/users/{JANE}")).await;
    assert_eq!(body["data"]["active_flag"], false);
    let (status, _) = patch_owner(&sb, &format!("/api/v2/organizations/{ACME}"), JANE).await;
    assert_eq!(status, 400, "no new records for a deactivated user");

    let (status, body) = put(JANE, json!({ "active_flag": true })).await;
    assert_eq!(
        (status, &body["data"]["active_flag"]),
        (StatusCode::OK, &json!(true))
    );
    assert_eq!(state.user(JANE).await.unwrap().status, UserStatus::Active);

    for bad in [
        json!({}),
        json!({ "active_flag": "no" }),
        json!({ "name": "X", "active_flag": true }),
    ] {
        let (status, body) = put(JANE, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = put(999, json!({ "active_flag": false })).await;
    assert_eq!(status, 404);
    let (status, _) = call(&sb, Method::DELETE, &format!("/api/v1/users/{JANE}"), None).await;
    assert_eq!(status, 405, "Pipedrive users can't be deleted by API");

    let not_admin = start(SandboxOptions {
        token_owner: Some(SALES_OPS),
        ..options()
    })
    .await;
    let (status, body) = call(
        &not_admin,
        Method::PUT,
        &format!("/api/v1/users/{JANE}"),
        Some(json!({ "active_flag": false })),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        not_admin.state().user(JANE).await.unwrap().status,
        UserStatus::Active
    );
}

#[tokio::test]
async fn rate_limit_headers_count_down_and_429_past_the_two_second_window() {
    let sb = start(SandboxOptions {
        rps: Some(2),
        ..options()
    })
    .await;
    let url = format!("{}/api/v1/users/me", sb.base_url());
    let req = || client().get(&url).header("x-api-token", TOKEN);
    let header = |h: &reqwest::header::HeaderMap, name: &str| -> u64 {
        h.get(name).unwrap().to_str().unwrap().parse().unwrap()
    };
    for remaining in (0..4).rev() {
        let (status, h, _) = send(req()).await;
        assert_eq!(status, 200);
        assert_eq!(
            header(&h, "x-ratelimit-limit"),
            4,
            "2 per second = 4 per 2-second window"
        );
        assert_eq!(header(&h, "x-ratelimit-remaining"), remaining);
        assert!((1..=2).contains(&header(&h, "x-ratelimit-reset")));
    }
    let (status, h, body) = send(req()).await;
    assert_eq!(status, 429);
    assert_eq!(body["errorCode"], 429);
    assert_failure(&body);
    assert_eq!(header(&h, "x-ratelimit-remaining"), 0);
    let (status, h, _) = send(
        client()
            .get(format!("{}/api/v2/deals/1", sb.base_url()))
            .header("x-api-token", TOKEN),
    )
    .await;
    assert_eq!(status, 429, "404s count too, and are refused first");
    assert!(h.get("x-ratelimit-limit").is_some());
    sb.state().advance_clock(Duration::from_secs(2));
    let (status, h, _) = send(req()).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-ratelimit-remaining"), 3);
    assert_eq!(sb.state().stats().rate_limited, 2);
}

#[tokio::test]
async fn a_faulted_write_is_never_applied() {
    let sb = start(SandboxOptions {
        fault_rate: 1.0,
        ..options()
    })
    .await;
    let state = sb.state();
    let before = state.snapshot().await;
    let deal = before.deals.iter().find(|d| d.owner_id == JANE).unwrap().id;
    let lead = before.leads.iter().find(|l| l.owner_id == JANE).unwrap().id;
    let mut statuses = BTreeSet::new();
    for _ in 0..6 {
        for path in [
            format!("/api/v2/deals/{deal}"),
            format!("/api/v1/leads/{}", lead_uuid(lead)),
        ] {
            let res = client()
                .patch(format!("{}{path}", sb.base_url()))
                .header("x-api-token", TOKEN)
                .json(&json!({ "owner_id": RITA }))
                .send()
                .await;
            match res {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap();
                    assert_failure(&body);
                    statuses.insert(status);
                }
                Err(_) => {
                    statuses.insert(0);
                }
            }
        }
    }
    assert!(
        statuses.is_subset(&BTreeSet::from([0, 500, 503])),
        "{statuses:?}"
    );
    assert_eq!(state.snapshot().await, before);
    let stats = state.stats();
    assert_eq!(stats.faults, 12);
    assert_eq!(
        (
            stats.puts_for(Resource::Deals, deal),
            stats.writes_for(Resource::Deals, deal)
        ),
        (6, 0)
    );
    assert_eq!(
        (
            stats.puts_for(Resource::Leads, lead),
            stats.writes_for(Resource::Leads, lead)
        ),
        (6, 0)
    );
}

#[tokio::test]
async fn an_activity_for_the_admin_is_created_and_listed() {
    let sb = start(options()).await;
    let state = sb.state();
    let body = json!({
        "subject": "offboard: deactivate Jane Doe",
        "type": "task",
        "owner_id": ADMIN,
        "due_date": "2026-12-01",
        "due_time": "09:30",
        "note": "Settings › Manage users › Jane Doe › Deactivate",
        "person_id": persons_of(&sb, JANE).await[0],
    });
    let (status, created) = call(&sb, Method::POST, "/api/v2/activities", Some(body)).await;
    assert_eq!(status, 200, "{created}");
    let a = &created["data"];
    let id = a["id"].as_i64().unwrap();
    assert_eq!(
        (&a["owner_id"], &a["creator_user_id"], &a["done"]),
        (&json!(ADMIN), &json!(ADMIN), &json!(false))
    );
    assert_eq!(
        (&a["due_date"], &a["due_time"]),
        (&json!("2026-12-01"), &json!("09:30"))
    );
    assert_eq!(a["note"], "Settings › Manage users › Jane Doe › Deactivate");
    let (_, open) = get(
        &sb,
        &format!("/api/v2/activities?owner_id={ADMIN}&done=false"),
    )
    .await;
    assert!(ids(open["data"].as_array().unwrap()).contains(&id));
    let seed = state.snapshot().await;
    let task = seed.tasks.iter().find(|t| t.id == id).unwrap();
    assert_eq!(task.content, "offboard: deactivate Jane Doe");
    assert!(seed.task_notes.contains_key(&id));
    assert_eq!(state.stats().writes_for(Resource::Tasks, id), 1);

    let (status, done) = call(
        &sb,
        Method::PATCH,
        &format!("/api/v2/activities/{id}"),
        Some(json!({ "done": true })),
    )
    .await;
    assert_eq!(
        (status, &done["data"]["done"]),
        (StatusCode::OK, &json!(true))
    );

    for bad in [
        json!({ "owner_id": ADMIN }),
        json!({ "subject": "x", "owner_id": IVAN_INACTIVE }),
        json!({ "subject": "x", "due_date": "tomorrow" }),
        json!({ "subject": "x", "deal_id": 1 }),
        json!({ "subject": "x", "priority_of_doom": 1 }),
    ] {
        let (status, body) = call(&sb, Method::POST, "/api/v2/activities", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_failure(&body);
    }
    let (status, body) = call(
        &sb,
        Method::POST,
        "/api/v2/activities",
        Some(json!({ "subject": "defaults" })),
    )
    .await;
    assert_eq!(
        (status, &body["data"]["owner_id"]),
        (StatusCode::OK, &json!(ADMIN))
    );
}

#[tokio::test]
async fn counts_and_control_routes_speak_pipedrive_and_sell_is_unchanged() {
    let sb = start(options()).await;
    let state = sb.state();
    let seed = seed();
    let janes = |f: &dyn Fn(&Contact) -> bool| {
        seed.contacts
            .iter()
            .filter(|c| c.owner_id == JANE && f(c))
            .count()
    };
    let c = state.open_counts(JANE).await;
    assert_eq!(c.contacts.open, janes(&|c| !c.is_organization));
    assert_eq!(c.organizations.open, 2);
    assert_eq!((c.leads.open, c.leads.closed), (100, 4));
    let body: Value = client()
        .get(format!("{}/__sandbox/users/{JANE}/counts", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["counts"]["organizations"]["open"], 2);
    let res = client()
        .post(format!(
            "{}/__sandbox/users/{JANE}/deactivate",
            sb.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, jane) = get(&sb, &format!("/api/v1/users/{JANE}")).await;
    assert_eq!(jane["data"]["active_flag"], false);
    assert_eq!(state.crm(), SandboxCrm::Pipedrive);

    let sell = start(SandboxOptions {
        seed: seed.clone(),
        ..SandboxOptions::default()
    })
    .await;
    let c = sell.state().open_counts(JANE).await;
    assert_eq!(
        c.contacts.open,
        janes(&|_| true),
        "Sell's contacts hold companies too"
    );
    assert_eq!(
        (c.organizations.open, c.leads.open, c.leads.closed),
        (0, 104, 0)
    );
    let res = client()
        .get(format!("{}/api/v1/users/me", sell.base_url()))
        .header("x-api-token", TOKEN)
        .header("user-agent", "t")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "a Sell sandbox knows no Pipedrive routes or tokens"
    );
    assert_eq!("pipedrive".parse::<SandboxCrm>(), Ok(SandboxCrm::Pipedrive));
    assert_eq!("zendesk_sell".parse::<SandboxCrm>(), Ok(SandboxCrm::Sell));
    assert_eq!("hubspot".parse::<SandboxCrm>(), Ok(SandboxCrm::Hubspot));
    assert_eq!(
        "salesforce".parse::<SandboxCrm>(),
        Ok(SandboxCrm::Salesforce)
    );
    assert!("dynamics".parse::<SandboxCrm>().is_err());
}
