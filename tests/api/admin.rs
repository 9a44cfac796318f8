//! The admin API: bearer token, list/show shapes, operator actions.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn admin_api_needs_the_token() {
    let app = spawn_app().await;
    for path in ["/api/v1/jobs", "/api/v1/jobs/x"] {
        let resp = app
            .http
            .get(format!("{}{path}", app.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let wrong = app
            .http
            .get(format!("{}{path}", app.addr))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
    }
}

#[tokio::test]
async fn list_show_cancel_retry() {
    let app = spawn_app().await;
    let body = termination("evt_a", "jane.doe@example.com", "voluntary", true, false);
    let accepted: Value = app
        .post_signed("hr", "msg_a", &body)
        .await
        .json()
        .await
        .unwrap();
    let id = accepted["job_id"].as_str().unwrap().to_owned();

    let list: Value = app
        .admin_get("/api/v1/jobs?state=queued")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    let entry = &list["jobs"][0];
    for key in [
        "id",
        "state",
        "employee_email",
        "action",
        "created_at",
        "updated_at",
    ] {
        assert!(entry.get(key).is_some(), "missing {key} in {entry}");
    }
    assert!(list.get("next_cursor").is_some());

    let job = app.job(&id).await;
    assert_eq!(job["event"]["employee"]["email"], "jane.doe@example.com");
    for key in [
        "id",
        "state",
        "attempt",
        "event",
        "plan",
        "checkpoints",
        "audit",
    ] {
        assert!(job.get(key).is_some(), "missing {key}");
    }

    let cancelled: Value = app
        .admin_post(&format!("/api/v1/jobs/{id}/cancel"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    let again = app.admin_post(&format!("/api/v1/jobs/{id}/approve")).await;
    assert_eq!(again.status(), 409);
    let retried: Value = app
        .admin_post(&format!("/api/v1/jobs/{id}/retry"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retried["state"], "queued");
    let job = app.job(&id).await;
    let operator: Vec<&Value> = job["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "operator.cancel" || a["kind"] == "operator.retry")
        .collect();
    assert_eq!(operator.len(), 2, "{job:#}");
    assert!(
        operator.iter().all(|a| a["detail"]["via"] == "api"),
        "{operator:?}"
    );
    let bad_state = app.admin_get("/api/v1/jobs?state=bogus").await;
    assert_eq!(bad_state.status(), 400);
    assert_eq!(app.admin_get("/api/v1/jobs/nope").await.status(), 404);
}

#[tokio::test]
async fn openapi_describes_every_route_the_router_serves() {
    let app = spawn_app().await;
    let doc: Value = app
        .admin_get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path) in offboard_core::http::openapi::ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} not documented"
        );
        let concrete = path
            .replace("{source}", "hr")
            .replace("{id}", "no-such-job");
        let url = format!("{}{concrete}", app.addr);
        let req = match *method {
            "get" => app.http.get(url),
            _ => app.http.post(url),
        };
        let resp = req.bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        // "hr" signs with Standard Webhooks, which has no verification request:
        // the GET handler itself says so (a route without GET would be the
        // router's generic 405).
        let served = if (*method, *path) == ("get", "/webhooks/{source}") {
            status == 405 && body.contains("no verification request")
        } else {
            !body.contains("no such route") && status != 405
        };
        assert!(served, "{method} {path} is not served: {status} {body}");
    }
    // Unknown routes get the JSON 404.
    let resp = app
        .http
        .get(format!("{}/api/v1/unknown", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// A query axum cannot deserialize (a repeated parameter, a negative `limit`) is
/// answered in the JSON error envelope, not axum's text/plain rejection.
#[tokio::test]
async fn a_malformed_list_query_gets_the_json_envelope() {
    let app = spawn_app().await;
    for query in [
        "state=queued&state=failed",
        "limit=-147276",
        "limit=ten",
        "limit=1001",
    ] {
        let resp = app.admin_get(&format!("/api/v1/jobs?{query}")).await;
        assert_eq!(resp.status(), 400, "{query}");
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "{query}: {content_type}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_query", "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{query}: {body}"
        );
    }
}

/// Every other rejection on the JSON routes is the envelope too: a path segment
/// that is not UTF-8, a method a route does not take (with `Allow`), on the admin
/// API, the health routes and the webhook route alike.
#[tokio::test]
async fn path_and_method_rejections_get_the_json_envelope() {
    let app = spawn_app().await;
    let resp = app.admin_get("/api/v1/jobs/%FF%FE").await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_path", "{body}");

    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/api/v1/jobs", "GET,HEAD"),
        (reqwest::Method::GET, "/api/v1/jobs/x/retry", "POST"),
        (reqwest::Method::POST, "/healthz", "GET,HEAD"),
        (reqwest::Method::PUT, "/metrics", "GET,HEAD"),
        (reqwest::Method::DELETE, "/webhooks/hr", "GET,HEAD,POST"),
    ] {
        let resp = app
            .http
            .request(method.clone(), format!("{}{path}", app.addr))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        let mut got_allow: Vec<String> = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        got_allow.sort();
        assert_eq!(got_allow.join(","), allow, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {path}: {body}"
        );
    }
}
