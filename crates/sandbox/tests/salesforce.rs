//! The sandbox speaking Salesforce over real HTTP: Bearer auth, SOQL on users
//! and the owned objects with their open/closed flags, query paging through
//! `nextRecordsUrl`, sObject collection updates (partial failure, allOrNone,
//! the 200-record limit), seat changes, userinfo, task creation, SOQL errors,
//! and the daily allocation with `Sforce-Limit-Info`, on the shared model.

use offboard_domain::Resource;
use offboard_sandbox::{Sandbox, SandboxCrm, SandboxOptions, Seed, Ticket};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "sf-test-token";
const V: &str = "/services/data/v62.0";
const ADMIN: i64 = 1;
const JANE: i64 = 101;
const RITA: i64 = 103;
const IVAN_INACTIVE: i64 = 104;

/// The 18-character id, computed independently of the sandbox's codec.
fn sfid(prefix: &str, n: i64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut body = Vec::new();
    let mut n = n as u64;
    for _ in 0..12 {
        body.push(DIGITS[(n % 62) as usize]);
        n /= 62;
    }
    body.reverse();
    let id15 = format!("{prefix}{}", String::from_utf8(body).unwrap());
    let suffix: String = id15
        .as_bytes()
        .chunks(5)
        .map(|c| {
            let bits = c
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_uppercase())
                .fold(0, |a, (i, _)| a | (1 << i));
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits] as char
        })
        .collect();
    id15 + &suffix
}

fn user(n: i64) -> String {
    sfid("005", n)
}

/// The demo org plus a few Cases and one converted lead for Jane.
fn seed() -> Seed {
    let mut seed = Seed::demo();
    for (id, owner, closed) in [
        (1, JANE, false),
        (2, JANE, true),
        (3, JANE, false),
        (4, RITA, false),
    ] {
        seed.tickets.push(Ticket {
            id,
            owner_id: owner,
            subject: format!("Printer on fire #{id}"),
            closed,
            created_at: "2026-01-05T09:00:00Z".into(),
            updated_at: "2026-01-05T09:00:00Z".into(),
        });
    }
    let first_lead = seed.leads.iter().find(|l| l.owner_id == JANE).unwrap().id;
    seed.archived_leads.insert(first_lead);
    seed
}

async fn start_with(seed: Seed, rps: Option<u32>) -> Sandbox {
    Sandbox::start(SandboxOptions {
        crm: SandboxCrm::Salesforce,
        token: Some(TOKEN.into()),
        seed,
        rps,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts")
}

async fn start() -> Sandbox {
    start_with(seed(), None).await
}

fn req(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
    Client::new()
        .request(method, format!("{}{path}", sb.base_url()))
        .bearer_auth(TOKEN)
}

async fn send(r: RequestBuilder) -> (StatusCode, Value) {
    let resp = r.send().await.expect("sent");
    let status = resp.status();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn soql(sb: &Sandbox, q: &str) -> (StatusCode, Value) {
    send(req(sb, Method::GET, &format!("{V}/query")).query(&[("q", q)])).await
}

/// Every record of a query, following `nextRecordsUrl` to the end.
async fn soql_all(sb: &Sandbox, q: &str, batch: Option<u32>) -> (Vec<Value>, usize, usize) {
    let mut r = req(sb, Method::GET, &format!("{V}/query/")).query(&[("q", q)]);
    if let Some(b) = batch {
        r = r.header("Sforce-Query-Options", format!("batchSize={b}"));
    }
    let (status, mut body) = send(r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let total = body["totalSize"].as_u64().unwrap() as usize;
    let mut records = Vec::new();
    let mut pages = 1;
    loop {
        records.extend(body["records"].as_array().unwrap().iter().cloned());
        if body["done"] == true {
            assert!(body.get("nextRecordsUrl").is_none());
            break;
        }
        let next = body["nextRecordsUrl"].as_str().unwrap().to_owned();
        assert!(next.starts_with(&format!("{V}/query/")), "{next}");
        let (status, b) = send(req(sb, Method::GET, &next)).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        body = b;
        pages += 1;
    }
    (records, total, pages)
}

fn composite(all_or_none: bool, records: Vec<Value>) -> Value {
    json!({ "allOrNone": all_or_none, "records": records })
}

fn owner_change(kind: &str, id: &str, owner: &str) -> Value {
    json!({ "attributes": { "type": kind }, "id": id, "OwnerId": owner })
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_an_invalid_session() {
    let sb = start().await;
    for auth in [Some("Bearer wrong"), None] {
        let mut r = Client::new().get(format!("{}{V}/query?q=SELECT+Id+FROM+User", sb.base_url()));
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        let (status, body) = send(r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }])
        );
    }
}

#[tokio::test]
async fn users_are_found_by_email_case_insensitively_with_their_profile() {
    let sb = start().await;
    let (status, body) = soql(
        &sb,
        "SELECT Id, Name, Email, IsActive, ManagerId, UserType, Username, Profile.Name, \
         Profile.PermissionsModifyAllData FROM User WHERE Email = 'JANE.DOE@example.com'",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["totalSize"].as_u64(), body["done"].as_bool()),
        (Some(1), Some(true))
    );
    let jane = &body["records"][0];
    assert_eq!(jane["Id"], user(JANE));
    assert_eq!(jane["attributes"]["type"], "User");
    assert_eq!(
        jane["attributes"]["url"],
        format!("{V}/sobjects/User/{}", user(JANE))
    );
    assert_eq!(jane["Email"], "jane.doe@example.com");
    assert_eq!(jane["IsActive"], true);
    assert_eq!(jane["ManagerId"], user(100));
    assert_eq!(jane["UserType"], "Standard");
    assert_eq!(jane["Profile"]["attributes"]["type"], "Profile");
    assert_eq!(jane["Profile"]["Name"], "Standard User");
    assert_eq!(jane["Profile"]["PermissionsModifyAllData"], false);

    let (_, body) = soql(
        &sb,
        &format!(
            "SELECT Id, Profile.Name, Profile.PermissionsModifyAllData FROM User WHERE Id = '{}'",
            &user(ADMIN)[..15]
        ),
    )
    .await;
    assert_eq!(
        body["totalSize"], 1,
        "a 15-character id matches too: {body}"
    );
    assert_eq!(
        body["records"][0]["Profile"]["Name"],
        "System Administrator"
    );
    assert_eq!(
        body["records"][0]["Profile"]["PermissionsModifyAllData"],
        true
    );

    let (_, body) = soql(&sb, "SELECT Id FROM User WHERE IsActive = false").await;
    let ids: Vec<&str> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&user(IVAN_INACTIVE).as_str()), "{ids:?}");
}

#[tokio::test]
async fn a_deleted_model_user_is_an_inactive_salesforce_user() {
    let sb = start().await;
    sb.state().delete(IVAN_INACTIVE).await.unwrap();
    let (_, body) = soql(
        &sb,
        &format!(
            "SELECT Id, IsActive FROM User WHERE Id = '{}'",
            user(IVAN_INACTIVE)
        ),
    )
    .await;
    assert_eq!(body["totalSize"], 1);
    assert_eq!(body["records"][0]["IsActive"], false);
}

#[tokio::test]
async fn owned_records_carry_their_open_and_closed_flags() {
    let sb = start().await;
    let counts = sb.state().open_counts(JANE).await;
    let owner = user(JANE);
    let count = |body: &Value| body["totalSize"].as_u64().unwrap() as usize;
    let (_, all) = soql(
        &sb,
        &format!("SELECT Id, IsConverted FROM Lead WHERE OwnerId = '{owner}'"),
    )
    .await;
    let (_, open) = soql(
        &sb,
        &format!("SELECT Id FROM Lead WHERE OwnerId = '{owner}' AND IsConverted = false"),
    )
    .await;
    assert_eq!(
        (count(&open), count(&all) - count(&open)),
        (counts.leads.open, counts.leads.closed)
    );
    assert_eq!(counts.leads.closed, 1);
    assert!(all["records"][0]["Id"].as_str().unwrap().starts_with("00Q"));

    let (_, contacts) = soql(
        &sb,
        &format!("SELECT Id, Name FROM Contact WHERE OwnerId = '{owner}'"),
    )
    .await;
    assert_eq!(count(&contacts), counts.contacts.open);
    let (_, accounts) = soql(
        &sb,
        &format!("SELECT Id, Name FROM Account WHERE OwnerId = '{owner}'"),
    )
    .await;
    assert_eq!(count(&accounts), counts.organizations.open);
    if let Some(a) = accounts["records"].get(0) {
        assert!(a["Id"].as_str().unwrap().starts_with("001"));
    }

    let (_, open) = soql(&sb, &format!("SELECT Id, StageName, IsClosed FROM Opportunity WHERE OwnerId = '{owner}' AND IsClosed = false")).await;
    let (_, closed) = soql(
        &sb,
        &format!("SELECT Id FROM Opportunity WHERE OwnerId = '{owner}' AND IsClosed = true"),
    )
    .await;
    assert_eq!(
        (count(&open), count(&closed)),
        (counts.deals.open, counts.deals.closed)
    );
    assert!(counts.deals.closed > 0);
    assert!(open["records"][0]["StageName"].is_string());

    let (_, open) = soql(&sb, &format!("SELECT Id, Subject, Status, IsClosed FROM Task WHERE OwnerId = '{owner}' AND IsClosed = false")).await;
    let (_, closed) = soql(
        &sb,
        &format!("SELECT Id FROM Task WHERE OwnerId = '{owner}' AND IsClosed != false"),
    )
    .await;
    assert_eq!(
        (count(&open), count(&closed)),
        (counts.tasks.open, counts.tasks.closed)
    );
    assert_eq!(open["records"][0]["Status"], "Not Started");

    let (_, open) = soql(
        &sb,
        &format!(
            "SELECT Id, Subject, IsClosed FROM Case WHERE OwnerId = '{owner}' AND IsClosed = false"
        ),
    )
    .await;
    let (_, closed) = soql(
        &sb,
        &format!("SELECT Id FROM Case WHERE OwnerId = '{owner}' AND IsClosed = true"),
    )
    .await;
    assert_eq!((count(&open), count(&closed)), (2, 1));
    assert_eq!((counts.tickets.open, counts.tickets.closed), (2, 1));
    assert_eq!(open["records"][0]["Id"], sfid("500", 1));
    assert_eq!(open["records"][0]["Subject"], "Printer on fire #1");
}

#[tokio::test]
async fn queries_page_through_next_records_url_to_the_end() {
    let seed = Seed::generate(450, 7);
    let rep = seed
        .users
        .iter()
        .find(|u| seed.leads.iter().filter(|l| l.owner_id == u.id).count() == 450)
        .unwrap()
        .id;
    let sb = start_with(seed, None).await;
    let q = format!(
        "SELECT Id, OwnerId FROM Lead WHERE OwnerId = '{}' ORDER BY Id ASC",
        user(rep)
    );
    let (records, total, pages) = soql_all(&sb, &q, Some(200)).await;
    assert_eq!((records.len(), total, pages), (450, 450, 3));
    let ids: Vec<&str> = records.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 450, "no record twice");
    // Without the header a batch is 2,000: all in one.
    let (_, total, pages) = soql_all(&sb, &q, None).await;
    assert_eq!((total, pages), (450, 1));
    // LIMIT caps totalSize.
    let (records, total, _) = soql_all(&sb, &format!("{q} LIMIT 7"), Some(200)).await;
    assert_eq!((records.len(), total), (7, 7));
    // Reassigning between batches doesn't lose records: the locator keeps the matches.
    let (status, first) = send(
        req(&sb, Method::GET, &format!("{V}/query"))
            .query(&[("q", q.as_str())])
            .header("Sforce-Query-Options", "batchSize=200"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let moved: Vec<Value> = first["records"]
        .as_array()
        .unwrap()
        .iter()
        .take(200)
        .map(|r| owner_change("Lead", r["Id"].as_str().unwrap(), &user(ADMIN)))
        .collect();
    let (status, _) = send(
        req(&sb, Method::PATCH, &format!("{V}/composite/sobjects")).json(&composite(false, moved)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, second) = send(req(
        &sb,
        Method::GET,
        first["nextRecordsUrl"].as_str().unwrap(),
    ))
    .await;
    assert_eq!(second["records"].as_array().unwrap().len(), 200);
    assert_ne!(second["records"][0]["Id"], first["records"][0]["Id"]);
    let (status, body) = send(req(&sb, Method::GET, &format!("{V}/query/01gnope-200"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn a_collection_update_fails_per_record_and_applies_the_rest() {
    let sb = start().await;
    let (_, deals) = soql(
        &sb,
        &format!(
            "SELECT Id FROM Opportunity WHERE OwnerId = '{}' AND IsClosed = false",
            user(JANE)
        ),
    )
    .await;
    let d1 = deals["records"][0]["Id"].as_str().unwrap().to_owned();
    let d2 = deals["records"][1]["Id"].as_str().unwrap().to_owned();
    let records = vec![
        owner_change("Opportunity", &d1, &user(RITA)),
        owner_change("Opportunity", &d2, &user(IVAN_INACTIVE)),
        owner_change("Opportunity", &sfid("006", 999_999), &user(RITA)),
        json!({ "attributes": { "type": "Opportunity" }, "id": d2, "StageName": "Won" }),
        owner_change("Lead", &d2, &user(RITA)),
    ];
    let (status, body) = send(
        req(&sb, Method::PATCH, &format!("{V}/composite/sobjects"))
            .json(&composite(false, records)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = body.as_array().unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(r[0], json!({ "id": d1, "success": true, "errors": [] }));
    assert_eq!(r[1]["success"], false);
    assert_eq!(r[1]["errors"][0]["statusCode"], "INACTIVE_OWNER_OR_USER");
    assert_eq!(r[2]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
    assert_eq!(
        r[3]["errors"][0]["statusCode"],
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    assert_eq!(r[3]["errors"][0]["fields"], json!(["StageName"]));
    assert_eq!(
        r[4]["errors"][0]["statusCode"], "MALFORMED_ID",
        "type and prefix differ"
    );
    let (_, after) = soql(
        &sb,
        &format!("SELECT OwnerId FROM Opportunity WHERE Id = '{d1}'"),
    )
    .await;
    assert_eq!(after["records"][0]["OwnerId"], user(RITA));
    let (_, after) = soql(
        &sb,
        &format!("SELECT OwnerId FROM Opportunity WHERE Id = '{d2}'"),
    )
    .await;
    assert_eq!(after["records"][0]["OwnerId"], user(JANE));
    let stats = sb.state().stats();
    let n1 = deal_model_id(&sb, &d1).await;
    assert_eq!(stats.writes_for(Resource::Deals, n1), 1);
    assert!(stats.puts_for(Resource::Deals, n1) >= 1);
}

/// The model id behind an Opportunity id, from the sandbox's dump.
async fn deal_model_id(sb: &Sandbox, id: &str) -> i64 {
    let snap = sb.state().snapshot().await;
    snap.deals
        .iter()
        .map(|d| d.id)
        .find(|n| sfid("006", *n) == id)
        .unwrap()
}

#[tokio::test]
async fn all_or_none_applies_nothing_when_one_record_fails() {
    let sb = start().await;
    let (_, leads) = soql(
        &sb,
        &format!(
            "SELECT Id FROM Lead WHERE OwnerId = '{}' LIMIT 2",
            user(JANE)
        ),
    )
    .await;
    let l1 = leads["records"][0]["Id"].as_str().unwrap().to_owned();
    let l2 = leads["records"][1]["Id"].as_str().unwrap().to_owned();
    let (_, before) = soql(
        &sb,
        &format!("SELECT Id FROM Lead WHERE OwnerId = '{}'", user(RITA)),
    )
    .await;
    let records = vec![
        owner_change("Lead", &l1, &user(RITA)),
        owner_change("Lead", &l2, "005nonsense"),
    ];
    let (status, body) = send(
        req(&sb, Method::PATCH, &format!("{V}/composite/sobjects")).json(&composite(true, records)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["success"], false);
    assert_eq!(
        body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(body[1]["errors"][0]["statusCode"], "MALFORMED_ID");
    let (_, after) = soql(
        &sb,
        &format!("SELECT Id FROM Lead WHERE OwnerId = '{}'", user(RITA)),
    )
    .await;
    assert_eq!(after["totalSize"], before["totalSize"], "nothing applied");
    // The same with every record good goes through.
    let records = vec![
        owner_change("Lead", &l1, &user(RITA)),
        owner_change("Lead", &l2.to_lowercase(), &user(RITA)),
    ];
    let (_, body) = send(
        req(&sb, Method::PATCH, &format!("{V}/composite/sobjects")).json(&composite(true, records)),
    )
    .await;
    assert_eq!(
        body[1],
        json!({ "id": l2, "success": true, "errors": [] }),
        "a lower-cased 18-character id is the same id"
    );
}

#[tokio::test]
async fn more_than_200_records_is_a_400() {
    let sb = start().await;
    let records: Vec<Value> = (0..201)
        .map(|i| owner_change("Lead", &sfid("00Q", i), &user(RITA)))
        .collect();
    let (status, body) = send(
        req(&sb, Method::PATCH, &format!("{V}/composite/sobjects"))
            .json(&composite(false, records)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "EXCEEDED_ID_LIMIT");
}

/// The ids of Jane's open leads and open opportunities, as SOQL lists them now.
async fn janes_open_leads_and_deals(sb: &Sandbox) -> (Vec<String>, Vec<String>) {
    let mut lists = Vec::new();
    for (object, open) in [("Lead", "IsConverted"), ("Opportunity", "IsClosed")] {
        let (_, rows) = soql(
            sb,
            &format!(
                "SELECT Id FROM {object} WHERE OwnerId = '{}' AND {open} = false",
                user(JANE)
            ),
        )
        .await;
        let ids: Vec<String> = rows["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_owned())
            .collect();
        lists.push(ids);
    }
    let deals = lists.pop().unwrap();
    (lists.pop().unwrap(), deals)
}

#[tokio::test]
async fn one_collection_mixes_types_in_at_most_ten_chunks() {
    let sb = start().await;
    let (leads, deals) = janes_open_leads_and_deals(&sb).await;
    let (status, body) = send(
        req(&sb, Method::PATCH, &format!("{V}/composite/sobjects")).json(&composite(
            false,
            vec![
                owner_change("Lead", &leads[0], &user(RITA)),
                owner_change("Opportunity", &deals[0], &user(RITA)),
            ],
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["success"], true, "{body}");
    assert_eq!(body[1]["success"], true, "{body}");
    let (still_leads, still_deals) = janes_open_leads_and_deals(&sb).await;
    assert_eq!(still_leads.len(), leads.len() - 1);
    assert_eq!(still_deals.len(), deals.len() - 1);

    // Eleven alternating runs are eleven chunks: refused as a whole, nothing
    // applied.
    let records: Vec<Value> = (0..11)
        .map(|i| {
            let (t, ids) = if i % 2 == 0 {
                ("Lead", &still_leads)
            } else {
                ("Opportunity", &still_deals)
            };
            owner_change(t, &ids[i / 2 % ids.len()], &user(RITA))
        })
        .collect();
    let (status, body) = send(
        req(&sb, Method::PATCH, &format!("{V}/composite/sobjects"))
            .json(&composite(false, records)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body[0]["errorCode"], "INVALID_BATCH_REQUEST");
    assert_eq!(
        janes_open_leads_and_deals(&sb).await,
        (still_leads, still_deals),
        "nothing applied"
    );
}

#[tokio::test]
async fn users_are_deactivated_and_reactivated_through_is_active() {
    let sb = start().await;
    let path = format!("{V}/sobjects/User/{}", user(JANE));
    let (status, _) =
        send(req(&sb, Method::PATCH, &path).json(&json!({ "IsActive": false }))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!sb.state().user(JANE).await.unwrap().is_active());
    let (_, body) = send(req(&sb, Method::GET, &path)).await;
    assert_eq!(body["IsActive"], false);
    let (status, _) = send(req(&sb, Method::PATCH, &path).json(&json!({ "IsActive": true }))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(sb.state().user(JANE).await.unwrap().is_active());
    let (status, body) =
        send(req(&sb, Method::PATCH, &path).json(&json!({ "Email": "x@example.com" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "INVALID_FIELD_FOR_INSERT_UPDATE");
    let (status, _) = send(
        req(
            &sb,
            Method::PATCH,
            &format!("{V}/sobjects/User/{}", user(999)),
        )
        .json(&json!({ "IsActive": false })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn userinfo_is_the_first_active_admin() {
    let sb = start().await;
    let (status, body) = send(req(&sb, Method::GET, "/services/oauth2/userinfo")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user_id"], user(ADMIN));
    assert_eq!(body["email"], "admin@example.com");
    assert_eq!(body["active"], true);
    assert!(body["organization_id"].as_str().unwrap().starts_with("00D"));
}

#[tokio::test]
async fn a_created_task_is_found_again_by_its_subject() {
    let sb = start().await;
    let body = json!({
        "Subject": "offboard:job-42 deactivate jane.doe@example.com",
        "Description": "Please deactivate Jane's seat.",
        "OwnerId": user(2),
        "ActivityDate": "2026-12-15",
        "Status": "Not Started",
    });
    let (status, created) =
        send(req(&sb, Method::POST, &format!("{V}/sobjects/Task")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["success"], true);
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("00T") && id.len() == 18);
    let (_, found) = soql(
        &sb,
        &format!("SELECT Id, Subject, Description, ActivityDate, IsClosed FROM Task WHERE OwnerId = '{}' AND Subject LIKE '%OFFBOARD:JOB-42%'", user(2)),
    )
    .await;
    assert_eq!(found["totalSize"], 1, "{found}");
    let t = &found["records"][0];
    assert_eq!(t["Id"], id);
    assert_eq!(t["Description"], "Please deactivate Jane's seat.");
    assert_eq!(t["ActivityDate"], "2026-12-15");
    assert_eq!(t["IsClosed"], false);
    let (status, body) = send(
        req(&sb, Method::POST, &format!("{V}/sobjects/Task"))
            .json(&json!({ "Subject": "x", "OwnerId": user(IVAN_INACTIVE) })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "INACTIVE_OWNER_OR_USER");
}

#[tokio::test]
async fn bad_soql_is_refused_with_salesforces_codes() {
    let sb = start().await;
    let (status, body) = soql(&sb, "SELECT Id FROM Lead WHERE Name = 'a' OR Name = 'b'").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY");
    let (status, body) = soql(&sb, "SELECT Id, Nickname__c FROM Lead").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "INVALID_FIELD");
    let (_, body) = soql(&sb, "SELECT Id FROM Widget").await;
    assert_eq!(body[0]["errorCode"], "INVALID_TYPE");
    let (_, body) = soql(&sb, "SELECT Id FROM Lead WHERE OwnerId = 'jane'").await;
    assert_eq!(body[0]["errorCode"], "INVALID_QUERY_FILTER_OPERATOR");
    let (status, body) = send(req(&sb, Method::GET, &format!("{V}/nowhere"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!([{ "errorCode": "NOT_FOUND", "message": "The requested resource does not exist" }])
    );
    let (status, _) = send(req(
        &sb,
        Method::GET,
        "/services/data/latest/query?q=SELECT+Id+FROM+User",
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_api_answer_counts_against_the_daily_allocation() {
    let sb = start_with(seed(), Some(50)).await;
    let usage = |r: &reqwest::Response| {
        r.headers()
            .get("sforce-limit-info")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let q = format!("{V}/query?q=SELECT+Id+FROM+User");
    let r1 = req(&sb, Method::GET, &q).send().await.unwrap();
    let r2 = req(&sb, Method::GET, &format!("{V}/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(usage(&r1).as_deref(), Some("api-usage=1/100000"));
    assert_eq!(
        usage(&r2).as_deref(),
        Some("api-usage=2/100000"),
        "errors count too"
    );
    let info = req(&sb, Method::GET, "/services/oauth2/userinfo")
        .send()
        .await
        .unwrap();
    assert_eq!(usage(&info), None, "userinfo is no API call");
    sb.state().set_salesforce_api_limit(3);
    let r3 = req(&sb, Method::GET, &q).send().await.unwrap();
    assert_eq!(r3.status(), StatusCode::OK);
    assert_eq!(usage(&r3).as_deref(), Some("api-usage=3/3"));
    let r4 = req(&sb, Method::GET, &q).send().await.unwrap();
    assert_eq!(r4.status(), StatusCode::FORBIDDEN);
    assert_eq!(usage(&r4).as_deref(), Some("api-usage=3/3"));
    let body: Value = r4.json().await.unwrap();
    assert_eq!(
        body,
        json!([{ "message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED" }])
    );
    assert_eq!(sb.state().salesforce_api_usage(), (3, 3));
    sb.state().reset().await;
    assert_eq!(sb.state().salesforce_api_usage(), (0, 3));
}

#[tokio::test]
async fn requests_over_the_rate_wait_instead_of_failing() {
    let sb = start_with(seed(), Some(2)).await;
    let started = std::time::Instant::now();
    for _ in 0..4 {
        let (status, _) = soql(&sb, "SELECT Id FROM User").await;
        assert_eq!(status, StatusCode::OK, "Salesforce never answers 429");
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "the third request waited for a slot"
    );
    assert_eq!(sb.state().stats().rate_limited, 0);
}
