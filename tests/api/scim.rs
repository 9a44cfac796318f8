//! SCIM 2.0 (DESIGN.md §10) through the running app: RFC 7644's behaviours, every
//! shape in which Okta and Entra ID deprovision someone making exactly one job,
//! replays making none, a rehire, and an Okta deactivation carried through to a
//! finished offboarding in the Sell sandbox.

use offboard_core::store::JobFilter;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const SCIM_TOKEN: &str = "test-scim-token";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn scim_app() -> TestApp {
    // SAFETY of env: every test of this binary sets the same value.
    unsafe { std::env::set_var("OFFBOARD_TEST_SCIM", SCIM_TOKEN) };
    spawn_app_with(Options {
        extra_config: r#"
[scim]
token_env = "OFFBOARD_TEST_SCIM"
termination_kind = "other"
[scim.map]
"employee.country" = "/addresses/0/country"
"#
        .into(),
        ..Options::default()
    })
    .await
}

/// One SCIM request with the right token: (status, body or null, headers).
async fn scim(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    scim_with(app, method, path, body, Some(SCIM_TOKEN), &[]).await
}

async fn scim_with(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = app
        .http
        .request(method, format!("{}/scim/v2{path}", app.addr));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, body, headers)
}

fn user_body(user_name: &str, email: &str, external_id: &str) -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "userName": user_name,
        "externalId": external_id,
        "name": { "givenName": "Sam", "familyName": "Seller" },
        "emails": [{ "primary": true, "value": email, "type": "work" }],
        "addresses": [{ "type": "work", "country": "DE" }],
        "active": true,
        ENTERPRISE: { "department": "Sales", "employeeNumber": "E-7" },
    })
}

/// Creates a user that must be created; returns its id.
async fn create(app: &TestApp, user_name: &str, email: &str, external_id: &str) -> String {
    let (status, body, _) = scim(
        app,
        Method::POST,
        "/Users",
        Some(user_body(user_name, email, external_id)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// The jobs stored for `email`, newest first.
async fn jobs_of(app: &TestApp, email: &str) -> Vec<offboard_core::store::Job> {
    app.store
        .list_jobs(&JobFilter {
            employee: Some(email.to_owned()),
            ..JobFilter::default()
        })
        .await
        .unwrap()
}

fn assert_scim_error(status: StatusCode, body: &Value, expected: u16, scim_type: Option<&str>) {
    assert_eq!(status.as_u16(), expected, "{body}");
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
        "{body}"
    );
    assert_eq!(body["status"], expected.to_string(), "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    match scim_type {
        Some(t) => assert_eq!(body["scimType"], t, "{body}"),
        None => assert!(body.get("scimType").is_none(), "{body}"),
    }
}

fn patch(ops: Value) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": ops })
}

#[tokio::test]
async fn discovery_says_what_is_supported() {
    let app = scim_app().await;
    let (status, spc, headers) = scim(&app, Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/scim+json");
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);
    assert_eq!(spc["etag"]["supported"], true);
    for unsupported in ["bulk", "sort", "changePassword"] {
        assert_eq!(spc[unsupported]["supported"], false, "{unsupported}");
    }
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");

    let (_, types, _) = scim(&app, Method::GET, "/ResourceTypes", None).await;
    assert_eq!(types["totalResults"], 1, "Users only, no Groups: {types}");
    assert_eq!(
        types["Resources"][0]["schemaExtensions"][0]["schema"],
        ENTERPRISE
    );
    let (status, one, _) = scim(&app, Method::GET, "/ResourceTypes/User", None).await;
    assert_eq!((status.as_u16(), &one["endpoint"]), (200, &json!("/Users")));

    let (_, schemas, _) = scim(&app, Method::GET, "/Schemas", None).await;
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, [USER, ENTERPRISE]);
    let (status, user_schema, _) = scim(&app, Method::GET, &format!("/Schemas/{USER}"), None).await;
    assert_eq!(status, 200);
    assert!(
        user_schema["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "userName" && a["uniqueness"] == "server"),
        "{user_schema}"
    );

    let (status, body, _) = scim(&app, Method::GET, "/Groups", None).await;
    assert_scim_error(status, &body, 404, None);
    for unsupported in ["/Bulk", "/.search", "/Users/.search"] {
        let (status, body, _) = scim(&app, Method::POST, unsupported, Some(json!({}))).await;
        assert_scim_error(status, &body, 501, None);
    }
}

#[tokio::test]
async fn tokens_are_checked_on_every_route() {
    let app = scim_app().await;
    for (token, what) in [
        (None, "missing"),
        (Some("wrong-token"), "wrong"),
        (Some(""), "empty"),
    ] {
        for path in ["/ServiceProviderConfig", "/Users", "/Users/x"] {
            let (status, body, headers) =
                scim_with(&app, Method::GET, path, None, token, &[]).await;
            assert_scim_error(status, &body, 401, None);
            assert!(
                headers.contains_key("www-authenticate"),
                "{what} token on {path}"
            );
        }
    }
    let (status, body, _) = scim_with(
        &app,
        Method::GET,
        "/Users",
        None,
        None,
        &[("authorization", &format!("Basic {SCIM_TOKEN}"))],
    )
    .await;
    assert_scim_error(status, &body, 401, None);
    // The admin token is not the SCIM token.
    let (status, body, _) =
        scim_with(&app, Method::GET, "/Users", None, Some(ADMIN_TOKEN), &[]).await;
    assert_scim_error(status, &body, 401, None);
}

#[tokio::test]
async fn users_are_created_read_filtered_and_paged() {
    let app = scim_app().await;
    let (status, created, headers) = scim(
        &app,
        Method::POST,
        "/Users",
        Some(user_body(
            "Sam.Seller@example.com",
            "sam.seller@example.com",
            "00u-sam",
        )),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["content-type"], "application/scim+json");
    let id = created["id"].as_str().unwrap();
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/scim/v2/Users/{id}")),
        "{headers:?}"
    );
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(created["meta"]["version"], "W/\"1\"");
    assert_eq!(created["meta"]["resourceType"], "User");
    assert_eq!(created["active"], true);
    assert_eq!(created[ENTERPRISE]["department"], "Sales");

    let (status, got, headers) = scim(&app, Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(got, created);
    assert_eq!(headers["etag"], "W/\"1\"");
    let (status, _, _) = scim_with(
        &app,
        Method::GET,
        &format!("/Users/{id}"),
        None,
        Some(SCIM_TOKEN),
        &[("if-none-match", "W/\"1\"")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // userName is unique without regard to case.
    let (status, body, _) = scim(
        &app,
        Method::POST,
        "/Users",
        Some(user_body(
            "sam.SELLER@example.com",
            "other@example.com",
            "00u-other",
        )),
    )
    .await;
    assert_scim_error(status, &body, 409, Some("uniqueness"));

    for i in 0..4 {
        create(
            &app,
            &format!("rep{i}@example.com"),
            &format!("rep{i}@example.com"),
            &format!("00u-{i}"),
        )
        .await;
    }
    let list = |query: &'static str| {
        let app = &app;
        async move { scim(app, Method::GET, &format!("/Users{query}"), None).await }
    };
    let (_, all, _) = list("").await;
    assert_eq!(
        (all["totalResults"].as_u64(), all["itemsPerPage"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(
        all["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    let (_, page, _) = list("?startIndex=2&count=2").await;
    assert_eq!(page["totalResults"], 5);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["itemsPerPage"], 2);
    let names: Vec<&str> = page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["userName"].as_str())
        .collect();
    assert_eq!(
        names,
        ["rep0@example.com", "rep1@example.com"],
        "oldest first"
    );
    let (_, count_only, _) = list("?count=0").await;
    assert_eq!(
        (
            count_only["totalResults"].as_u64(),
            count_only["Resources"].as_array().map(Vec::len)
        ),
        (Some(5), Some(0))
    );

    let (_, by_name, _) = list("?filter=userName%20eq%20%22SAM.seller%40example.com%22").await;
    assert_eq!(by_name["totalResults"], 1, "{by_name}");
    assert_eq!(by_name["Resources"][0]["id"], id);
    let (_, by_external, _) = list("?filter=externalId%20eq%20%2200u-2%22").await;
    assert_eq!(by_external["Resources"][0]["userName"], "rep2@example.com");
    let (_, both, _) = list(
        "?filter=userName%20eq%20%22rep2%40example.com%22%20and%20externalId%20eq%20%2200u-2%22",
    )
    .await;
    assert_eq!(both["totalResults"], 1);
    let (_, neither, _) = list(
        "?filter=userName%20eq%20%22rep2%40example.com%22%20and%20externalId%20eq%20%2200u-3%22",
    )
    .await;
    assert_eq!(neither["totalResults"], 0);
    let (_, projected, _) = list("?filter=externalId%20eq%20%2200u-2%22&attributes=userName").await;
    let keys: std::collections::BTreeSet<&str> = projected["Resources"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["id", "meta", "schemas", "userName"].into_iter().collect()
    );

    for (query, what) in [
        (
            "?filter=title%20eq%20%22x%22",
            "an attribute offboard does not filter on",
        ),
        (
            "?filter=userName%20co%20%22sam%22",
            "an operator other than eq",
        ),
        (
            "?filter=userName%20eq%20%22a%22%20or%20userName%20eq%20%22b%22",
            "or",
        ),
        ("?filter=userName%20eq", "a filter that does not parse"),
    ] {
        let (status, body, _) = list(query).await;
        assert_eq!(body["scimType"], "invalidFilter", "{what}: {body}");
        assert_scim_error(status, &body, 400, Some("invalidFilter"));
    }
    let (status, body, _) = list("?count=lots").await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
}

#[tokio::test]
async fn put_patch_and_delete_follow_the_rfc() {
    let app = scim_app().await;
    let id = create(
        &app,
        "lee.hold@example.com",
        "lee.hold@example.com",
        "00u-lee",
    )
    .await;
    let path = format!("/Users/{id}");

    let mut replacement = user_body("lee.hold@example.com", "lee.hold@example.com", "00u-lee");
    replacement["displayName"] = json!("Lee Hold");
    replacement["id"] = json!("an-id-the-client-made-up");
    let (status, put, headers) = scim(&app, Method::PUT, &path, Some(replacement)).await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["id"], id.as_str(), "offboard owns the id");
    assert_eq!(put["displayName"], "Lee Hold");
    assert_eq!(headers["etag"], "W/\"2\"");

    // A write that names an older version is refused, and changes nothing.
    let (status, body, _) = scim_with(
        &app,
        Method::PATCH,
        &path,
        Some(patch(
            json!([{ "op": "replace", "path": "title", "value": "Lost" }]),
        )),
        Some(SCIM_TOKEN),
        &[("if-match", "W/\"1\"")],
    )
    .await;
    assert_scim_error(status, &body, 412, None);

    let (status, patched, _) = scim_with(
        &app,
        Method::PATCH,
        &path,
        Some(patch(json!([
            { "op": "replace", "path": "name.givenName", "value": "Leona" },
            { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "leona.hold@example.com" },
            { "op": "add", "path": "phoneNumbers", "value": [{ "type": "work", "value": "+49 30 1234" }] },
            { "op": "add", "path": "emails[type eq \"home\"].value", "value": "leona@home.example" },
            { "op": "remove", "path": "displayName" },
            { "op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Partnerships" },
            { "op": "replace", "value": { "title": "Account Executive", "name.familyName": "Holder" } },
        ]))),
        Some(SCIM_TOKEN),
        &[("if-match", "W/\"2\"")],
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["name"],
        json!({ "givenName": "Leona", "familyName": "Holder" })
    );
    assert_eq!(patched["emails"][0]["value"], "leona.hold@example.com");
    assert_eq!(
        patched["emails"][1],
        json!({ "type": "home", "value": "leona@home.example" })
    );
    assert_eq!(patched["phoneNumbers"][0]["value"], "+49 30 1234");
    assert!(patched.get("displayName").is_none());
    assert_eq!(patched["title"], "Account Executive");
    assert_eq!(patched[ENTERPRISE]["department"], "Partnerships");
    assert_eq!(patched["meta"]["version"], "W/\"3\"");
    assert!(
        jobs_of(&app, "lee.hold@example.com").await.is_empty(),
        "no change of active, no job"
    );

    // All or nothing: a bad operation after a good one changes nothing.
    let (status, body, _) = scim(
        &app,
        Method::PATCH,
        &path,
        Some(patch(json!([
            { "op": "replace", "path": "title", "value": "Half applied" },
            { "op": "replace", "path": "emails[type eq \"fax\"].value", "value": "x@example.com" },
        ]))),
    )
    .await;
    assert_scim_error(status, &body, 400, Some("noTarget"));
    let (_, unchanged, _) = scim(&app, Method::GET, &path, None).await;
    assert_eq!(unchanged["title"], "Account Executive");
    assert_eq!(unchanged["meta"]["version"], "W/\"3\"");

    for (body, status, scim_type) in [
        (
            patch(json!([{ "op": "replace", "path": "id", "value": "mine" }])),
            400,
            "mutability",
        ),
        (patch(json!([{ "op": "remove" }])), 400, "noTarget"),
        (
            patch(json!([{ "op": "move", "path": "title", "value": "x" }])),
            400,
            "invalidValue",
        ),
        (patch(json!([])), 400, "invalidSyntax"),
        (
            json!({ "Operations": [{ "op": "replace", "value": { "title": "x" } }] }),
            400,
            "invalidSyntax",
        ),
        (
            patch(json!([{ "op": "replace", "path": "emails[type eq", "value": "x" }])),
            400,
            "invalidPath",
        ),
        (
            patch(json!([{ "op": "replace", "path": "active", "value": "maybe" }])),
            400,
            "invalidValue",
        ),
        (
            patch(json!([{ "op": "replace", "path": "userName", "value": "" }])),
            400,
            "invalidValue",
        ),
    ] {
        let (got, err, _) = scim(&app, Method::PATCH, &path, Some(body.clone())).await;
        assert_scim_error(got, &err, status, Some(scim_type));
    }

    let (status, _, _) = scim(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, body, _) = scim(&app, Method::GET, &path, None).await;
    assert_scim_error(status, &body, 404, None);
    let (status, body, _) = scim(&app, Method::DELETE, &path, None).await;
    assert_scim_error(status, &body, 404, None);
    let (status, body, _) = scim(
        &app,
        Method::PUT,
        "/Users/no-such-user",
        Some(user_body("x@example.com", "x@example.com", "x")),
    )
    .await;
    assert_scim_error(status, &body, 404, None);
    let (status, body, _) = scim(
        &app,
        Method::PATCH,
        "/Users/no-such-user",
        Some(patch(
            json!([{ "op": "replace", "path": "title", "value": "x" }]),
        )),
    )
    .await;
    assert_scim_error(status, &body, 404, None);
}

#[tokio::test]
async fn malformed_bodies_get_scim_errors() {
    let app = scim_app().await;
    let raw = |body: &'static str| {
        let app = &app;
        async move {
            let resp = app
                .http
                .post(format!("{}/scim/v2/Users", app.addr))
                .bearer_auth(SCIM_TOKEN)
                .header("content-type", "application/scim+json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            assert_eq!(resp.headers()["content-type"], "application/scim+json");
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = raw("{not json").await;
    assert_scim_error(status, &body, 400, Some("invalidSyntax"));
    let (status, body) = raw("[1, 2]").await;
    assert_scim_error(status, &body, 400, Some("invalidSyntax"));
    let (status, body) = raw(r#"{"userName": "no-schemas@example.com"}"#).await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    let (status, body) =
        raw(r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}"#).await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    // A user offboard could never find in the CRM (no e-mail anywhere) is refused.
    let (status, body) =
        raw(r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "jdoe"}"#)
            .await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    assert!(
        body["detail"].as_str().unwrap().contains("work e-mail"),
        "{body}"
    );
    let (status, body) = raw(
        r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "jdoe", "emails": [{"value": "jdoe@example.com", "primary": true}]}"#,
    )
    .await;
    assert_eq!(status, 201, "an e-mail in emails is enough: {body}");
    let created = body["id"].as_str().unwrap().to_owned();
    let (status, body) =
        raw(r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": 7}"#).await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    let (status, body) = raw(r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a@example.com", "active": "sometimes"}"#).await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    // Over the body limit of the test config (4096 bytes).
    let big = format!(
        r#"{{"schemas":["{USER}"],"userName":"big@example.com","title":"{}"}}"#,
        "x".repeat(5000)
    );
    let (status, body, _) = scim(
        &app,
        Method::POST,
        "/Users",
        Some(serde_json::from_str(&big).unwrap()),
    )
    .await;
    assert_scim_error(status, &body, 413, None);
    // A method the route does not take.
    let (status, body, _) = scim(&app, Method::DELETE, "/Users", None).await;
    assert_scim_error(status, &body, 405, None);
    let listed = scim(&app, Method::GET, "/Users", None).await.1;
    assert_eq!(
        listed["totalResults"], 1,
        "only the valid user was stored: {listed}"
    );
    assert_eq!(listed["Resources"][0]["id"], created.as_str());
}

/// A request that must end with the user deactivated (200) or deleted (204).
async fn deprovision(app: &TestApp, method: Method, path: &str, body: Option<Value>) {
    let (status, answer, _) = scim(app, method, path, body).await;
    assert!(
        status == StatusCode::OK && answer["active"] == false || status == StatusCode::NO_CONTENT,
        "{status} {answer}"
    );
}

/// Okta's deactivation of user `id`, which must be taken.
async fn deactivate(app: &TestApp, id: &str) {
    let okta = patch(json!([{ "op": "replace", "value": { "active": false } }]));
    deprovision(app, Method::PATCH, &format!("/Users/{id}"), Some(okta)).await;
}

#[tokio::test]
async fn every_deprovisioning_shape_makes_exactly_one_job_and_replays_none() {
    let app = scim_app().await;
    let okta = patch(json!([{ "op": "replace", "value": { "active": false } }]));
    let entra = patch(json!([{ "op": "Replace", "path": "active", "value": "False" }]));
    let shouting = patch(json!([{ "op": "REPLACE", "path": "active", "value": false }]));
    let mixed_case = patch(json!([{ "op": "rePlace", "path": "active", "value": "false" }]));
    let multi = patch(json!([
        { "op": "replace", "path": "displayName", "value": "Gone Soon" },
        { "op": "Add", "path": "title", "value": "Former rep" },
        { "op": "replace", "value": { "active": false } },
    ]));
    let qualified =
        patch(json!([{ "op": "replace", "path": format!("{USER}:active"), "value": false }]));
    let shapes: Vec<(&str, Method, Option<Value>)> = vec![
        ("okta patch without path", Method::PATCH, Some(okta)),
        (
            "entra patch with path and \"False\"",
            Method::PATCH,
            Some(entra),
        ),
        ("op in capitals", Method::PATCH, Some(shouting)),
        ("op in mixed case", Method::PATCH, Some(mixed_case)),
        ("several operations", Method::PATCH, Some(multi)),
        ("schema-qualified path", Method::PATCH, Some(qualified)),
        ("put with active false", Method::PUT, None),
        ("delete of an active user", Method::DELETE, None),
    ];
    for (i, (shape, method, body)) in shapes.into_iter().enumerate() {
        let email = format!("leaver{i}@example.com");
        let id = create(&app, &email, &email, &format!("00u-l{i}")).await;
        let path = format!("/Users/{id}");
        let body = match (&method, body) {
            (&Method::PUT, _) => {
                let mut b = user_body(&email, &email, &format!("00u-l{i}"));
                b["active"] = json!(false);
                Some(b)
            }
            (_, body) => body,
        };
        deprovision(&app, method.clone(), &path, body.clone()).await;
        let jobs = jobs_of(&app, &email).await;
        assert_eq!(jobs.len(), 1, "{shape}: {jobs:?}");
        let job = &jobs[0];
        assert_eq!(job.source, "scim", "{shape}");
        assert_eq!(job.kind.as_str(), "offboard", "{shape}");
        let event = &job.event;
        assert_eq!(event.event_type.as_str(), "employee.terminated", "{shape}");
        assert_eq!(event.employee.email.as_str(), email, "{shape}");
        assert_eq!(
            event.employee.id.as_deref(),
            Some(format!("00u-l{i}").as_str()),
            "{shape}"
        );
        assert_eq!(
            event.employee.name.as_deref(),
            Some("Sam Seller"),
            "{shape}"
        );
        assert_eq!(
            event.employee.department.as_deref(),
            Some("Sales"),
            "{shape}"
        );
        assert_eq!(
            event.employee.country.as_deref(),
            Some("DE"),
            "{shape}: [scim.map] applies"
        );
        assert_eq!(event.kind().map(|k| k.as_str()), Some("other"), "{shape}");
        assert!(event.effective_at().is_some(), "{shape}: effective now");

        // The provider retries: nothing new is stored.
        let (status, _, _) = scim(&app, method.clone(), &path, body).await;
        let expected = if method == Method::DELETE { 404 } else { 200 };
        assert_eq!(status.as_u16(), expected, "{shape} replay");
        assert_eq!(
            jobs_of(&app, &email).await.len(),
            1,
            "{shape}: a replay stored a job"
        );
    }
    // A profile update that leaves `active` out changes nothing about it: no rehire.
    let email = "quiet@example.com";
    let id = create(&app, email, email, "00u-quiet").await;
    deactivate(&app, &id).await;
    let mut profile = user_body(email, email, "00u-quiet");
    profile.as_object_mut().unwrap().remove("active");
    profile["title"] = json!("Alumnus");
    let (status, put, _) = scim(&app, Method::PUT, &format!("/Users/{id}"), Some(profile)).await;
    // Unassigned in the resource (RFC 7643 §2.5), and offboard still counts them out.
    assert_eq!((status.as_u16(), put.get("active")), (200, None), "{put}");
    let stored = app.store.scim_user(&id).await.unwrap().unwrap();
    assert!(
        !stored.active,
        "a PUT without active kept the user inactive"
    );
    let (status, patched, _) = scim(
        &app,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(patch(json!([{ "op": "remove", "path": "active" }]))),
    )
    .await;
    assert_eq!(
        (status.as_u16(), patched.get("active")),
        (200, None),
        "{patched}"
    );
    assert_eq!(
        jobs_of(&app, email).await.len(),
        1,
        "only the deactivation made a job"
    );
    // Still inactive underneath: coming back is a rehire.
    let (status, _, _) = scim(
        &app,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(patch(
            json!([{ "op": "add", "path": "active", "value": true }]),
        )),
    )
    .await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = jobs_of(&app, email)
        .await
        .iter()
        .map(|j| j.event.event_type.as_str())
        .collect();
    assert_eq!(kinds, ["employee.rehired", "employee.terminated"]);
    // Deleting a user already inactive offboards no one a second time.
    let email = "inactive@example.com";
    let id = create(&app, email, email, "00u-inactive").await;
    deactivate(&app, &id).await;
    deprovision(&app, Method::DELETE, &format!("/Users/{id}"), None).await;
    assert_eq!(jobs_of(&app, email).await.len(), 1);
    // A user created inactive was never active here: no one to offboard.
    let mut body = user_body("never@example.com", "never@example.com", "00u-never");
    body["active"] = json!(false);
    let (status, _, _) = scim(&app, Method::POST, "/Users", Some(body)).await;
    assert_eq!(status, 201);
    assert!(jobs_of(&app, "never@example.com").await.is_empty());
}

#[tokio::test]
async fn reactivation_is_a_rehire_and_the_manager_comes_from_the_extension() {
    let app = scim_app().await;
    let manager = create(
        &app,
        "max.manager@example.com",
        "max.manager@example.com",
        "00u-max",
    )
    .await;
    let email = "sam.seller@example.com";
    let mut body = user_body(email, email, "00u-sam");
    body[ENTERPRISE]["manager"] = json!({ "value": manager });
    let (status, created, _) = scim(&app, Method::POST, "/Users", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let path = format!("/Users/{id}");

    deactivate(&app, id).await;
    let (status, back, _) = scim(
        &app,
        Method::PATCH,
        &path,
        Some(patch(
            json!([{ "op": "replace", "path": "active", "value": "True" }]),
        )),
    )
    .await;
    assert_eq!(
        (status.as_u16(), &back["active"]),
        (200, &json!(true)),
        "{back}"
    );

    let jobs = jobs_of(&app, email).await;
    let kinds: Vec<(&str, &str)> = jobs
        .iter()
        .map(|j| (j.kind.as_str(), j.event.event_type.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("reverse", "employee.rehired"),
            ("offboard", "employee.terminated")
        ]
    );
    let terminated = &jobs[1].event;
    assert_eq!(
        terminated
            .employee
            .manager_email
            .as_ref()
            .map(|m| m.as_str()),
        Some("max.manager@example.com"),
        "the manager's id resolved to their e-mail"
    );
    // A rehire before the offboarding ran cancels it, as for webhooks.
    app.run_jobs().await;
    let offboarding = app.job(&jobs[1].id).await;
    assert_eq!(offboarding["state"], "cancelled", "{offboarding:#}");
}

#[tokio::test]
async fn an_okta_deactivation_finishes_an_offboarding_in_sell() {
    let app = scim_app().await;
    let email = "sam.seller@example.com";
    let id = create(&app, email, email, "00u-sam").await;
    // Okta's deactivation, exactly as Okta sends it.
    let (status, answer, _) = scim(
        &app,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(json!({
            "schemas": [PATCH_OP],
            "Operations": [{ "op": "replace", "value": { "active": false } }],
        })),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let jobs = jobs_of(&app, email).await;
    assert_eq!(jobs.len(), 1);
    let job_id = jobs[0].id.clone();

    // termination_kind "other" → the policy's "everyone else": deactivate, records
    // to the manager first, then the seat task for Sell's admin.
    app.run_jobs().await;
    let job = app.job(&job_id).await;
    assert_eq!(job["state"], "scheduled", "{job:#}");
    assert_eq!(job["action"], "deactivate");
    assert_eq!(job["plan"]["rule"], "everyone else");
    for resource in offboard_core::domain::Resource::ALL {
        let (open, _) = offboard_testkit::sell::owned(&app.sell(), resource, 11).await;
        assert_eq!(open, 0, "{resource} still open with the leaver");
    }
    let tasks = offboard_testkit::sell::created_tasks(&app.sell()).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert!(
        tasks[0].contains("DEACTIVATE") && tasks[0].contains(email),
        "{}",
        tasks[0]
    );

    app.sell().deactivate(11).await.unwrap();
    let job = app.run_job_until_settled(&job_id, 5).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(has_audit(&job, "seat.verified"), "{job:#}");
}
