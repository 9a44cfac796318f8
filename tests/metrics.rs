//! `GET /metrics` after a known sequence of webhooks and jobs. Metrics are
//! process-global, so this binary holds the one test that produces them and can
//! assert exact values (a second test only reads files).

#[path = "api/helpers.rs"]
mod helpers;

use std::collections::BTreeMap;

use helpers::*;
use offboard_core::{
    domain::Clock,
    metrics::{FAMILIES, Kind, REPORTED_BY_CRM_ONLY},
};
use offboard_testkit::sell;

/// `series → value` for every sample line, e.g.
/// `offboard_jobs{state="queued"} → 1`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn get(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in\n{samples:#?}"))
}

async fn scrape(app: &TestApp) -> String {
    let resp = app
        .http
        .get(format!("{}/metrics", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_what_happened() {
    // SAFETY of env: the only test of this binary that starts an app.
    unsafe { std::env::set_var("OFFBOARD_TEST_SCIM", "metrics-scim-token") };
    let app = spawn_app_with(Options {
        extra_config: "[scim]\ntoken_env = \"OFFBOARD_TEST_SCIM\"\n".into(),
        ..Options::default()
    })
    .await;
    let mut open = BTreeMap::new();
    for &resource in offboard_core::crm::sell::CAPABILITIES.resources {
        open.insert(resource, sell::owned(&app.sell(), resource, 10).await.0);
    }

    // Webhooks: 2 accepted, 1 duplicate, 1 bad signature, 1 unknown source.
    let jane = termination("evt_m1", "jane.doe@example.com", "voluntary", true, false);
    let ghost = termination("evt_m2", "nobody@example.com", "voluntary", true, false);
    let first = app.post_signed("hr", "msg_m1", &jane).await;
    assert_eq!(first.status(), 202);
    let jane_job = first.json::<serde_json::Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.post_signed("hr", "msg_m2", &ghost).await.status(), 202);
    assert_eq!(app.post_signed("hr", "msg_m1", &jane).await.status(), 200);
    let forged = app
        .http
        .post(format!("{}/webhooks/hr", app.addr))
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", app.clock.now().timestamp().to_string())
        .header(
            "webhook-signature",
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .body(jane.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(app.post_signed("nope", "msg_x", &jane).await.status(), 404);

    // SCIM: a user created (no change of `active`, so no job), a wrong token.
    let scim_user = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "someone@example.com",
    });
    let scim_post = |token: &'static str| {
        app.http
            .post(format!("{}/scim/v2/Users", app.addr))
            .bearer_auth(token)
            .body(scim_user.to_string())
            .send()
    };
    assert_eq!(scim_post("metrics-scim-token").await.unwrap().status(), 201);
    assert_eq!(scim_post("wrong").await.unwrap().status(), 401);

    // Jobs: the leaver's records move and the admin is asked; the other has no CRM user.
    app.run_jobs().await;
    let mid = samples(&scrape(&app).await);
    assert_eq!(
        get(
            &mid,
            r#"offboard_seats_pending_admin_action{action="deactivate"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &mid,
            r#"offboard_seats_total{action="deactivate",state="requested"}"#
        ),
        1.0
    );
    assert_eq!(get(&mid, r#"offboard_jobs{state="scheduled"}"#), 1.0);

    app.sell().deactivate(10).await.unwrap();
    let job = app.run_job_until_settled(&jane_job, 20).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    let text = scrape(&app).await;
    let s = samples(&text);
    let webhooks = |outcome: &str, source: &str| {
        get(
            &s,
            &format!(r#"offboard_webhooks_total{{source="{source}",outcome="{outcome}"}}"#),
        )
    };
    assert_eq!(webhooks("accepted", "hr"), 2.0);
    assert_eq!(webhooks("duplicate", "hr"), 1.0);
    assert_eq!(webhooks("bad_signature", "hr"), 1.0);
    assert_eq!(webhooks("unknown_source", "unknown"), 1.0);
    let scim = |operation: &str, outcome: &str| {
        get(
            &s,
            &format!(
                r#"offboard_scim_requests_total{{operation="{operation}",outcome="{outcome}"}}"#
            ),
        )
    };
    assert_eq!(scim("create", "ok"), 1.0);
    assert_eq!(scim("auth", "unauthorized"), 1.0);

    assert_eq!(get(&s, r#"offboard_jobs{state="succeeded"}"#), 2.0);
    assert_eq!(get(&s, r#"offboard_jobs{state="queued"}"#), 0.0);
    assert_eq!(
        get(&s, r#"offboard_job_transitions_total{to="succeeded"}"#),
        2.0
    );
    assert!(get(&s, r#"offboard_job_transitions_total{to="scheduled"}"#) >= 1.0);
    assert_eq!(get(&s, "offboard_queue_lag_seconds"), 0.0);

    for (kind, n) in &open {
        assert!(*n > 0);
        assert_eq!(
            get(
                &s,
                &format!(r#"offboard_records_reassigned_total{{kind="{kind}"}}"#)
            ),
            *n as f64,
            "{kind}"
        );
    }
    assert_eq!(
        get(
            &s,
            r#"offboard_seats_total{action="deactivate",state="verified"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            r#"offboard_seats_pending_admin_action{action="deactivate"}"#
        ),
        0.0
    );
    assert_eq!(
        get(
            &s,
            r#"offboard_seats_pending_admin_action{action="delete"}"#
        ),
        0.0
    );

    // CRM calls: by endpoint template and status, with real buckets.
    let users_ok = r#"offboard_crm_request_duration_seconds_count{method="GET",endpoint="/v2/users",status="200"}"#;
    assert!(get(&s, users_ok) >= 2.0, "one lookup per job");
    assert!(
        text.contains(r#"offboard_crm_request_duration_seconds_bucket{method="GET",endpoint="/v2/users",status="200",le="0.1"}"#),
        "{text}"
    );
    let puts: f64 = s
        .iter()
        .filter(|(k, _)| {
            k.starts_with("offboard_crm_request_duration_seconds_count{method=\"PUT\"")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        puts,
        open.values().sum::<usize>() as f64,
        "one PUT per record"
    );
    assert_eq!(get(&s, "offboard_crm_rate_limit_waits_total"), 0.0);
    // Every call waited in some lane; the record writes in `records` or `deals`.
    let waits = |lanes: &[&str]| -> f64 {
        lanes
            .iter()
            .map(|lane| {
                s.get(&format!(
                    "offboard_crm_pacing_wait_seconds_count{{lane=\"{lane}\"}}"
                ))
                .copied()
                .unwrap_or(0.0)
            })
            .sum()
    };
    assert!(waits(&["access", "deals", "records"]) >= puts);
    assert!(
        waits(&["deals", "records"]) > 0.0,
        "no record write queued in its lane"
    );
    assert_eq!(
        get(&s, "offboard_crm_allowed_requests_per_second"),
        1000.0,
        "the test config's requests_per_second"
    );

    // HTTP: by route template, method and status.
    let http = |status: u16| {
        get(
            &s,
            &format!(
                r#"offboard_http_request_duration_seconds_count{{route="/webhooks/{{source}}",method="POST",status="{status}"}}"#
            ),
        )
    };
    assert_eq!(http(202), 2.0);
    assert_eq!(http(200), 1.0);
    assert_eq!(http(401), 1.0);
    assert_eq!(http(404), 1.0);
    assert!(text.contains(r#"offboard_http_request_duration_seconds_bucket{route="/api/v1/jobs/{id}",method="GET",status="200",le="+Inf"}"#));
    assert!(
        get(
            &s,
            &format!(
                r#"offboard_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            )
        ) == 1.0
    );

    // Every family is in the catalogue, described, of the declared type, and
    // every catalogue family is exported.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        let family = offboard_core::metrics::family(name)
            .unwrap_or_else(|| panic!("{name} is not in offboard_core::metrics::FAMILIES"));
        assert_eq!(family.kind.as_str(), kind, "{name}");
    }
    // This run talks to Sell, which reports no API usage; the Salesforce client's
    // tests check those families render.
    for f in FAMILIES
        .iter()
        .filter(|f| !REPORTED_BY_CRM_ONLY.contains(&f.name))
    {
        assert!(
            text.contains(&format!("# TYPE {} {}", f.name, f.kind.as_str())),
            "{} not exported:\n{text}",
            f.name
        );
        assert!(
            text.contains(&format!("# HELP {} ", f.name)),
            "{} has no HELP",
            f.name
        );
        if f.kind == Kind::Histogram {
            assert!(
                text.contains(&format!("{}_bucket{{", f.name)),
                "{} renders no buckets",
                f.name
            );
        }
    }

    // Low cardinality, no personal data: every sample is offboard_…, no e-mail and
    // no job id anywhere.
    for series in s.keys() {
        assert!(series.starts_with("offboard_"), "{series}");
    }
    assert!(!text.contains('@'), "an e-mail in the metrics:\n{text}");
    assert!(!text.contains("%40"));
    assert!(!text.contains(&jane_job), "a job id in the metrics");
    assert!(!text.contains("evt_m1") && !text.contains("msg_m1"));
}

/// The README's metric table lists exactly the exported families.
#[test]
fn readme_lists_every_metric() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for f in FAMILIES {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}", f.name)))
            .unwrap_or_else(|| panic!("README has no metric row for {}", f.name));
        for label in f.labels {
            assert!(
                row.contains(label),
                "README row of {} misses {label}",
                f.name
            );
        }
    }
    for line in readme.lines().filter(|l| l.starts_with("| `offboard_")) {
        let name = line
            .trim_start_matches("| `")
            .split(['`', '{'])
            .next()
            .unwrap();
        assert!(
            offboard_core::metrics::family(name).is_some(),
            "README lists {name}, which is not exported"
        );
    }
}
