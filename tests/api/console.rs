//! The ops console through the real app: sign-in and sessions (expiry on the
//! app's clock, forged cookies, another replica's cookie), CSRF, every page and
//! action, the security headers, escaping of hostile event fields, redaction.

use offboard_core::domain::Clock;
use offboard_testkit::sell;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::*;

/// A browser-like client that does not follow redirects, so a test sees them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// One signed-in console user: the cookie the sign-in set.
struct Console {
    addr: String,
    http: reqwest::Client,
    cookie: String,
}

struct Page {
    status: StatusCode,
    headers: header::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's first form that carries one.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

async fn page_of(resp: reqwest::Response) -> Page {
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// Posts the sign-in form with `token`.
async fn sign_in_with(addr: &str, token: &str) -> Page {
    page_of(
        client()
            .post(format!("{addr}/console/sign-in"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The `name=value` of a `Set-Cookie` header.
fn cookie_pair(page: &Page) -> String {
    let set = page
        .headers
        .get(header::SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn sign_in(app: &TestApp) -> Console {
    let page = sign_in_with(&app.addr, ADMIN_TOKEN).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    Console {
        addr: app.addr.clone(),
        http: client(),
        cookie: cookie_pair(&page),
    }
}

impl Console {
    async fn get(&self, path: &str) -> Page {
        page_of(
            self.http
                .get(format!("{}{path}", self.addr))
                .header(header::COOKIE, &self.cookie)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A page that must answer 200.
    async fn ok(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        page.body
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        page_of(
            self.http
                .post(format!("{}{path}", self.addr))
                .header(header::COOKIE, &self.cookie)
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

fn assert_security_headers(page: &Page, what: &str) {
    let h = |name: &str| {
        page.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_owned()
    };
    let csp = h("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{what}: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(h("x-frame-options"), "DENY", "{what}");
    assert_eq!(h("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(h("x-content-type-options"), "nosniff", "{what}");
}

/// A capped deletion: with `max_deletions_per_hour = 0` Sam's involuntary
/// termination waits in `needs_review` for an operator.
async fn capped_deletion(app: &TestApp) -> String {
    let (id, job) = app
        .accept_and_run(
            "msg_sam",
            &termination(
                "evt_sam",
                "sam.seller@example.com",
                "involuntary",
                false,
                false,
            ),
        )
        .await;
    assert_eq!(job["state"], "needs_review", "{job:#}");
    id
}

fn capped() -> Options {
    Options {
        extra_config: "[safety]\nmax_deletions_per_hour = 0\n".into(),
        ..Options::default()
    }
}

fn operator_entries(job: &Value) -> Vec<Value> {
    job["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"].as_str().unwrap().starts_with("operator."))
        .cloned()
        .collect()
}

#[tokio::test]
async fn every_console_page_needs_a_session() {
    let app = spawn_app().await;
    let http = client();
    for path in [
        "/console",
        "/console/jobs",
        "/console/jobs?state=failed",
        "/console/jobs/some-id",
        "/console/jobs/some-id/live",
        "/console/jobs/some-id/approve",
    ] {
        let page = page_of(
            http.get(format!("{}{path}", app.addr))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), "/console/sign-in", "{path}");
        assert!(!page.body.contains("some-id"), "{path}: {}", page.body);
        assert_security_headers(&page, path);
    }
    for path in [
        "/console/jobs/some-id/approve",
        "/console/jobs/some-id/cancel",
        "/console/sign-out",
    ] {
        let page = page_of(
            http.post(format!("{}{path}", app.addr))
                .form(&[("csrf", "x")])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "POST {path}");
        assert_eq!(page.location(), "/console/sign-in", "POST {path}");
    }
    // htmx's background poll is told to send the whole page to the form.
    let live = page_of(
        http.get(format!("{}/console/jobs/x/live", app.addr))
            .header("hx-request", "true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(live.status, StatusCode::UNAUTHORIZED);
    assert_eq!(live.headers["hx-redirect"], "/console/sign-in");
    // The static files hold no data and are served to the sign-in page too.
    for (path, kind) in [
        ("/console/assets/console.css", "text/css"),
        ("/console/assets/htmx.min.js", "text/javascript"),
    ] {
        let page = page_of(
            http.get(format!("{}{path}", app.addr))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            page.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert_security_headers(&page, path);
    }
}

#[tokio::test]
async fn signing_in_sets_a_strict_cookie_and_a_wrong_token_sets_nothing() {
    let app = spawn_app().await;
    let form = page_of(
        client()
            .get(format!("{}/console/sign-in", app.addr))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(form.status, StatusCode::OK);
    assert_security_headers(&form, "sign-in");
    assert!(
        form.body
            .contains(r#"<label for="token">Admin token</label>"#),
        "{}",
        form.body
    );
    assert!(
        form.body
            .contains(r#"id="token" name="token" type="password""#)
    );
    assert!(
        form.body
            .contains(r#"<button type="submit">Sign in</button>"#)
    );
    assert!(!form.body.contains("<script>"), "no inline script");

    for wrong in ["nope", "", "test-admin-tokenX"] {
        let page = sign_in_with(&app.addr, wrong).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(
            page.body.contains("That is not the admin token"),
            "{}",
            page.body
        );
        assert!(page.body.contains(r#"name="token""#), "the form again");
        assert!(
            page.headers.get(header::SET_COOKIE).is_none(),
            "no cookie for {wrong:?}"
        );
    }

    let page = sign_in_with(&app.addr, ADMIN_TOKEN).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console");
    let set = page.headers[header::SET_COOKIE].to_str().unwrap();
    for part in [
        "offboard_console=v1.",
        "Path=/console",
        "Max-Age=28800",
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
    ] {
        assert!(set.contains(part), "{part} not in {set}");
    }
    assert!(!set.contains(ADMIN_TOKEN), "the cookie is not the token");
    let console = Console {
        addr: app.addr.clone(),
        http: client(),
        cookie: cookie_pair(&page),
    };
    let overview = console.ok("/console").await;
    assert!(overview.contains("Jobs per state"), "{overview}");
    assert!(overview.contains(">Sign out</button>"));
    // Signed in already: the form sends you on.
    assert_eq!(console.get("/console/sign-in").await.location(), "/console");
}

#[tokio::test]
async fn insecure_cookie_drops_only_the_secure_flag() {
    let app = spawn_app_with(Options {
        extra_config: "[console]\ninsecure_cookie = true\nsession_hours = 1\n".into(),
        ..Options::default()
    })
    .await;
    let page = sign_in_with(&app.addr, ADMIN_TOKEN).await;
    let set = page.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(!set.contains("Secure"), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age=3600"),
        "{set}"
    );
}

#[tokio::test]
async fn a_session_expires_on_the_apps_clock() {
    let app = spawn_app().await;
    let console = sign_in(&app).await;
    app.advance(chrono::Duration::hours(8) - chrono::Duration::seconds(2));
    console.ok("/console").await;
    app.advance(chrono::Duration::seconds(2));
    let page = console.get("/console").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/sign-in?expired=1");
    let form = console.get("/console/sign-in?expired=1").await;
    assert!(form.body.contains("Your session expired"), "{}", form.body);
}

#[tokio::test]
async fn forged_cookies_are_refused_and_another_replicas_is_accepted() {
    let app = spawn_app().await;
    let console = sign_in(&app).await;
    let value = console
        .cookie
        .trim_start_matches("offboard_console=")
        .to_owned();
    let fields: Vec<&str> = value.split('.').collect();
    assert_eq!(fields.len(), 4, "{value}");
    let far = (app.clock.now() + chrono::Duration::days(365)).timestamp();
    for forged in [
        // A longer life with the old signature.
        format!("v1.{far}.{}.{}", fields[2], fields[3]),
        // Another session id with the old signature.
        format!("v1.{}.{}.{}", fields[1], "00".repeat(16), fields[3]),
        // A made-up signature.
        format!("v1.{far}.{}.{}", fields[2], "ab".repeat(32)),
        "admin".to_owned(),
        String::new(),
    ] {
        let c = Console {
            cookie: format!("offboard_console={forged}"),
            ..Console {
                addr: app.addr.clone(),
                http: client(),
                cookie: String::new(),
            }
        };
        let page = c.get("/console").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{forged}");
        assert_eq!(page.location(), "/console/sign-in", "{forged}");
    }
    // A second replica (its own process state, the same admin token) accepts it:
    // nothing about the session lives in either one's memory.
    let other = spawn_app().await;
    let there = Console {
        addr: other.addr.clone(),
        http: client(),
        cookie: console.cookie.clone(),
    };
    there.ok("/console").await;
}

#[tokio::test]
async fn signing_out_needs_the_forms_token_and_drops_the_cookie() {
    let app = spawn_app().await;
    let console = sign_in(&app).await;
    let overview = console.get("/console").await;
    let csrf = overview.csrf();
    let refused = console.post("/console/sign-out", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = console.post("/console/sign-out", &[("csrf", "0000")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.headers.get(header::SET_COOKIE).is_none());
    let out = console.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/console/sign-in?signed_out=1");
    let set = out.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.starts_with("offboard_console=;") && set.contains("Max-Age=0"),
        "{set}"
    );
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited() {
    let app = spawn_app_with(Options {
        extra_config: "[console]\nsign_in_per_minute = 3\n".into(),
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            sign_in_with(&app.addr, "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Over the limit even the right token is not judged.
    let page = sign_in_with(&app.addr, ADMIN_TOKEN).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        page.body.contains("Too many sign-in attempts"),
        "{}",
        page.body
    );
    assert!(page.headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn the_overview_shows_counts_the_review_queue_and_waiting_seats() {
    let app = spawn_app_with(capped()).await;
    let review = capped_deletion(&app).await;
    // Lee is deactivated (voluntary, rehire eligible): the admin is asked.
    let (seat, job) = app
        .accept_and_run(
            "msg_lee",
            &termination("evt_lee", "lee.hold@example.com", "voluntary", true, false),
        )
        .await;
    assert_eq!(job["state"], "scheduled", "{job:#}");
    app.advance(chrono::Duration::minutes(90));
    let console = sign_in(&app).await;
    let body = console.ok("/console").await;
    assert!(body.contains("Waiting for review (1)"), "{body}");
    assert!(
        body.contains("deletions cap reached"),
        "the reason is shown: {body}"
    );
    assert!(
        body.contains(&format!(r#"action="/console/jobs/{review}/approve""#)),
        "{body}"
    );
    assert!(
        body.contains(r#"aria-label="Approve the job of sam.seller@example.com""#),
        "{body}"
    );
    assert!(
        body.contains("Seats waiting for the CRM admin (1)"),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            r#"href="/console/jobs/{seat}">lee.hold@example.com"#
        )),
        "{body}"
    );
    assert!(
        body.contains("1 h 30 min"),
        "how long the seat waits: {body}"
    );
    assert!(body.contains("No job has failed."), "{body}");
    assert!(
        body.contains(r#"<span class="n">1</span>needs review"#),
        "{body}"
    );
    assert!(
        body.contains(r#"<span class="n">1</span>scheduled"#),
        "{body}"
    );
}

#[tokio::test]
async fn the_overview_lists_failures_with_their_error() {
    let app = spawn_app_with(Options {
        sell_token: "revoked-sell-token".into(),
        ..Options::default()
    })
    .await;
    let (id, job) = app
        .accept_and_run(
            "m",
            &termination("e", "jane.doe@example.com", "voluntary", true, false),
        )
        .await;
    assert_eq!(job["state"], "failed");
    let console = sign_in(&app).await;
    let body = console.ok("/console").await;
    assert!(body.contains("request is unauthorized"), "{body}");
    assert!(
        body.contains(&format!(r#"action="/console/jobs/{id}/retry""#)),
        "{body}"
    );
    assert!(
        !body.contains(&format!(r#"action="/console/jobs/{id}/approve""#)),
        "{body}"
    );
}

#[tokio::test]
async fn the_job_list_filters_by_state_employee_and_date_and_pages() {
    let app = spawn_app().await;
    for i in 0..53 {
        app.accept(
            &format!("m{i}"),
            &termination(
                &format!("e{i}"),
                &format!("leaver{i}@example.com"),
                "voluntary",
                true,
                false,
            ),
        )
        .await;
    }
    let console = sign_in(&app).await;
    let first = console.ok("/console/jobs").await;
    assert_eq!(
        first.matches("<tr>").count() - 1,
        50,
        "a page of 50 (+ the header row)"
    );
    assert!(first.contains("leaver52@example.com") && !first.contains("leaver2@example.com"));
    let older = first
        .split(r#"rel="next""#)
        .next()
        .and_then(|s| s.rsplit("href=\"").next())
        .map(|s| s[..s.find('"').unwrap()].replace("&amp;", "&"))
        .unwrap();
    assert!(older.starts_with("/console/jobs?before="), "{older}");
    let second = console.ok(&older).await;
    assert_eq!(second.matches("<tr>").count() - 1, 3, "{second}");
    assert!(second.contains("leaver0@example.com") && second.contains("Newest jobs"));
    assert!(!second.contains(r#"rel="next""#));

    let one = console
        .ok("/console/jobs?employee=Leaver7%40example.com&state=queued")
        .await;
    assert_eq!(one.matches("<tr>").count() - 1, 1, "{one}");
    assert!(
        one.contains(r#"<option value="queued" selected>queued</option>"#),
        "{one}"
    );
    let none = console.ok("/console/jobs?state=failed").await;
    assert!(none.contains("No job matches."));
    let tomorrow = (app.clock.now() + chrono::Duration::days(1)).format("%Y-%m-%d");
    assert!(
        console
            .ok(&format!("/console/jobs?since={tomorrow}"))
            .await
            .contains("No job matches.")
    );
    let today = app.clock.now().format("%Y-%m-%d");
    let all = console
        .ok(&format!("/console/jobs?since={today}&state="))
        .await;
    assert_eq!(all.matches("<tr>").count() - 1, 50);
    for bad in [
        "/console/jobs?state=bogus",
        "/console/jobs?since=yesterday",
        "/console/jobs?state=queued&state=failed",
    ] {
        let page = console.get(bad).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            page.body.starts_with("<!DOCTYPE html>"),
            "a page, not plain text: {}",
            page.body
        );
        assert_security_headers(&page, bad);
    }
    // A path under /console that is no page: a 404 page, and only in a session.
    let page = console.get("/console/nothing/here").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_security_headers(&page, "404");
    let stranger = page_of(
        client()
            .get(format!("{}/console/nothing/here", app.addr))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stranger.location(), "/console/sign-in");
}

#[tokio::test]
async fn the_job_page_shows_event_decision_progress_timeline_and_calls() {
    let app = spawn_app().await;
    let (id, job) = app
        .accept_and_run(
            "m",
            &termination("e", "sam.seller@example.com", "voluntary", true, false),
        )
        .await;
    assert_eq!(job["state"], "scheduled", "{job:#}");
    let console = sign_in(&app).await;
    let page = console.get(&format!("/console/jobs/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_security_headers(&page, "job page");
    let body = &page.body;
    for want in [
        "Job of sam.seller@example.com",
        // The event.
        "employee.terminated",
        "max.manager@example.com",
        // The decision with its rule and guards.
        "leavers who may come back",
        "never_delete_admin",
        // Progress per resource, counted from the checkpoints.
        "Records per resource",
        "<td>leads</td>",
        "asked of the CRM admin at",
        // The timeline and the CRM calls.
        r#"<span class="kind">decision</span>"#,
        r#"<span class="kind">seat.task_created</span>"#,
        "CRM calls (",
        "/v2/leads",
        // Still moving: htmx polls the live part, and without JS the page reloads.
        &format!(r#"hx-get="/console/jobs/{id}/live""#),
        r#"<noscript><meta http-equiv="refresh" content="2"></noscript>"#,
        // Scheduled: only Cancel applies.
        &format!(r#"action="/console/jobs/{id}/cancel""#),
    ] {
        assert!(body.contains(want), "{want} not in the job page:\n{body}");
    }
    assert!(!body.contains(&format!(r#"action="/console/jobs/{id}/approve""#)));
    assert!(!body.contains(&format!(r#"action="/console/jobs/{id}/retry""#)));
    let moved = job["checkpoints"]["reassign.leads"]["moved"]
        .as_u64()
        .unwrap();
    assert!(
        body.contains(&format!(r#"<td class="num">{moved}</td>"#)),
        "{body}"
    );

    // The Sell admin deletes nothing here, they deactivate; the live part follows.
    app.sell().deactivate(11).await.unwrap();
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let live = console.ok(&format!("/console/jobs/{id}/live")).await;
    assert!(
        live.starts_with(r#"<section id="live""#),
        "a fragment: {live}"
    );
    assert!(
        live.contains("succeeded") && live.contains("verified"),
        "{live}"
    );
    assert!(
        !live.contains("hx-get"),
        "a settled job stops polling: {live}"
    );
    let page = console.ok(&format!("/console/jobs/{id}")).await;
    assert!(!page.contains("http-equiv=\"refresh\""));
    assert!(
        !page.contains(r#"<div class="actions"><form"#),
        "no action applies to a succeeded job"
    );
    assert_eq!(
        console.get("/console/jobs/no-such-job").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn approve_is_confirmed_checked_for_csrf_and_audited_via_console() {
    let app = spawn_app_with(capped()).await;
    let id = capped_deletion(&app).await;
    let console = sign_in(&app).await;
    let other = sign_in(&app).await;

    let page = console.ok(&format!("/console/jobs/{id}")).await;
    for action in ["approve", "retry", "cancel"] {
        assert!(
            page.contains(&format!(r#"action="/console/jobs/{id}/{action}""#)),
            "needs_review allows {action}"
        );
    }
    assert!(
        page.contains(">Approve</button>")
            && page.contains(">Retry</button>")
            && page.contains(">Cancel</button>")
    );

    let confirm = console.get(&format!("/console/jobs/{id}/approve")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Yes, approve"), "{}", confirm.body);
    assert!(confirm.body.contains("A deletion cannot be undone"));
    assert!(confirm.body.contains(r#"method="post""#));
    let csrf = confirm.csrf();
    let foreign = other
        .get(&format!("/console/jobs/{id}/approve"))
        .await
        .csrf();
    assert_ne!(csrf, foreign, "tokens are per session");

    let path = format!("/console/jobs/{id}/approve");
    for (form, what) in [
        (vec![], "no token"),
        (vec![("csrf", "")], "empty token"),
        (vec![("csrf", "deadbeef")], "wrong token"),
        (vec![("csrf", foreign.as_str())], "another session's token"),
    ] {
        let page = console.post(&path, &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{what}");
        assert!(
            page.body.contains("nothing was changed"),
            "{what}: {}",
            page.body
        );
    }
    let job = app.job(&id).await;
    assert_eq!(job["state"], "needs_review", "nothing changed: {job:#}");
    assert!(operator_entries(&job).is_empty());

    let done = console.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), format!("/console/jobs/{id}?done=approve"));
    let job = app.job(&id).await;
    assert_eq!(
        (job["state"].as_str(), job["approved"].as_bool()),
        (Some("queued"), Some(true))
    );
    let entries = operator_entries(&job);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["kind"], "operator.approve");
    assert_eq!(
        entries[0]["detail"],
        json!({ "from": "needs_review", "via": "console" })
    );
    let after = console.ok(done.location()).await;
    assert!(after.contains("You approved this job"), "{after}");

    // A second approval finds the job moved on: 409, nothing changed.
    let again = console.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(operator_entries(&app.job(&id).await).len(), 1);

    // The approved deletion proceeds: the admin is asked to delete.
    app.run_jobs().await;
    assert_eq!(app.job(&id).await["state"], "scheduled");
    let tasks = sell::created_tasks(&app.sell()).await;
    assert!(tasks.iter().any(|t| t.contains("DELETE")), "{tasks:?}");
}

#[tokio::test]
async fn cancel_with_a_reason_then_retry_from_the_console() {
    let app = spawn_app().await;
    let id = app
        .accept(
            "m",
            &termination("e", "sam.seller@example.com", "voluntary", true, false),
        )
        .await;
    let console = sign_in(&app).await;
    let page = console.ok(&format!("/console/jobs/{id}")).await;
    assert!(page.contains(&format!(r#"action="/console/jobs/{id}/cancel""#)));
    assert!(
        !page.contains(&format!(r#"action="/console/jobs/{id}/retry""#)),
        "queued: no retry"
    );

    let confirm = console.get(&format!("/console/jobs/{id}/cancel")).await;
    assert!(
        confirm.body.contains(r#"<label for="reason">"#),
        "{}",
        confirm.body
    );
    let csrf = confirm.csrf();
    let done = console
        .post(
            &format!("/console/jobs/{id}/cancel"),
            &[("csrf", &csrf), ("reason", "HR called it off")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let job = app.job(&id).await;
    assert_eq!(job["state"], "cancelled");
    assert_eq!(
        job["last_error"],
        "cancelled by operator (console): HR called it off"
    );
    let entry = &operator_entries(&job)[0];
    assert_eq!(entry["kind"], "operator.cancel");
    assert_eq!(entry["detail"]["via"], "console");

    // Approve does not apply to a cancelled job: the confirmation says so, no form.
    let no = console.ok(&format!("/console/jobs/{id}/approve")).await;
    assert!(
        no.contains("cannot be approved") && !no.contains(r#"method="post" action="/console/jobs"#),
        "{no}"
    );
    let confirm = console.get(&format!("/console/jobs/{id}/retry")).await;
    let done = console
        .post(
            &format!("/console/jobs/{id}/retry"),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let job = app.job(&id).await;
    assert_eq!(job["state"], "queued");
    assert_eq!(
        operator_entries(&job)[1]["detail"],
        json!({ "from": "cancelled", "via": "console" })
    );
    assert_eq!(
        console
            .get(&format!("/console/jobs/{id}/explode"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn hostile_event_fields_are_shown_as_text() {
    let app = spawn_app().await;
    let body = json!({
        "id": "evt_x", "type": "employee.terminated",
        "employee": {
            "email": "sam.seller@example.com",
            "name": "<script>alert('name')</script>",
            "department": "\"><img src=x onerror=alert(1)>",
        },
        "termination": { "kind": "voluntary", "rehire_eligible": true, "reason": "</pre><b>bold</b>" },
    });
    let id = app.accept("msg_x", &body.to_string()).await;
    let console = sign_in(&app).await;
    let page = console.ok(&format!("/console/jobs/{id}")).await;
    assert!(
        page.contains("&lt;script&gt;alert('name')&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(
        page.contains("&lt;/pre&gt;&lt;b&gt;bold&lt;/b&gt;"),
        "{page}"
    );
    assert!(!page.contains("<b>bold</b>"));
    // No inline script anywhere: the only script is the vendored file.
    assert_eq!(page.matches("<script").count(), 1);
    assert!(page.contains(r#"<script src="/console/assets/htmx.min.js" defer></script>"#));
}

#[tokio::test]
async fn redact_emails_hides_every_address_on_every_page() {
    let app = spawn_app_with(Options {
        extra_config: "[privacy]\nredact_emails = true\n[safety]\nmax_deletions_per_hour = 0\n"
            .into(),
        ..Options::default()
    })
    .await;
    let review = capped_deletion(&app).await;
    let (seat, _) = app
        .accept_and_run(
            "msg_lee",
            &termination("evt_lee", "lee.hold@example.com", "voluntary", true, false),
        )
        .await;
    let console = sign_in(&app).await;
    for path in [
        "/console".to_owned(),
        "/console/jobs".to_owned(),
        format!("/console/jobs/{review}"),
        format!("/console/jobs/{seat}"),
        format!("/console/jobs/{seat}/live"),
        format!("/console/jobs/{review}/approve"),
    ] {
        let body = console.ok(&path).await;
        // Plain and percent-encoded (CRM call paths) alike. (The sandbox names its
        // users by their local part: a name alone is not an address.)
        for local in ["sam.seller", "lee.hold", "max.manager", "admin"] {
            for at in ["@example.com", "%40example.com"] {
                let email = format!("{local}{at}");
                assert!(!body.contains(&email), "{email} shown on {path}:\n{body}");
            }
        }
    }
    // The list still filters by the address a person types.
    let one = console
        .ok("/console/jobs?employee=sam.seller%40example.com")
        .await;
    assert_eq!(one.matches("<tr>").count() - 1, 1, "{one}");
}
