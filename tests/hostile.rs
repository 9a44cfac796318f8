//! Hostile input through the real HTTP app: a table of requests a forger, a broken
//! sender or a fuzzer would send, each with the exact status and error code it
//! must get, run in order against one server (later cases rely on earlier ones:
//! replays, conflicts). Afterwards the server must still be healthy, and only the
//! accepted cases may have stored jobs.
//!
//! Decision recorded here: hex signatures must be lower-case (what every sender
//! emits); an upper-case digest is `401 malformed_signature`.

use base64::{Engine, engine::general_purpose::STANDARD};
use offboard_core::{
    config::{Config, Secret},
    ingest::Source,
    store::{JobFilter, SharedStore},
};
use offboard_testkit::sign::{hmac_sha256, hmac_sha512};
use reqwest::{Method, header::HeaderValue};
use serde_json::{Value, json};

const MAX_BODY: usize = 4096;

const SOURCES: &str = r#"
[[sources]]
name = "sw"
scheme = "standard_webhooks"

[[sources]]
name = "gh"
scheme = "github"

[[sources]]
name = "bamboo"
scheme = "bamboohr"
each = "/employees"
[sources.map]
"employee.email" = "/fields/workEmail"
[sources.defaults]
type = "employee.terminated"

[[sources]]
name = "bob"
scheme = "hibob"
[sources.map]
"employee.email" = "/data/email"
[sources.defaults]
type = "employee.terminated"
[sources.ping]
body = "Ping test"

[[sources]]
name = "okta"
scheme = "static_token"
"#;

const SW_A: &str = "whsec_c2VjcmV0LUEta2V5LWJ5dGVzLWZvci10ZXN0cw=="; // "secret-A-key-bytes-for-tests"
const SW_B: &str = "whsec_c2VjcmV0LUIta2V5LWJ5dGVzLWZvci10ZXN0cw=="; // rotated in
const SW_UNKNOWN: &str = "whsec_bm90LWEta2V5LXdlLWtub3c=";
const GH: &str = "gh-secret";
const BAMBOO: &str = "bamboo-key";
const BOB: &str = "bob-secret";
const OKTA: &str = "okta-token";

struct App {
    base: String,
    store: SharedStore,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn spawn() -> App {
    let config = Config::from_toml(SOURCES).expect("config");
    let secrets = |name: &str| -> Vec<Secret> {
        let list: &[&str] = match name {
            "sw" => &[SW_A, SW_B],
            "gh" => &[GH],
            "bamboo" => &[BAMBOO],
            "bob" => &[BOB],
            _ => &[OKTA],
        };
        list.iter().map(|s| Secret::new((*s).into())).collect()
    };
    let sources = config
        .sources
        .iter()
        .map(|s| Source::build(s.clone(), secrets(&s.name)).expect("source"))
        .collect();
    let rx =
        offboard_testkit::ingest::serve(sources, MAX_BODY, tempfile::tempdir().expect("tempdir"))
            .await;
    App {
        base: rx.base,
        store: rx.store,
        client: reqwest::Client::new(),
        _dir: rx.dir,
    }
}

// ---------- signing the way each sender does ----------

type Headers = Vec<(String, Vec<u8>)>;

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn sw_sig(secret: &str, id: &str, ts: &str, body: &[u8]) -> String {
    let key = STANDARD.decode(&secret["whsec_".len()..]).unwrap();
    let sig = hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(sig))
}

fn sw(secret: &str, id: &str, ts: i64, body: &[u8]) -> Headers {
    let ts = ts.to_string();
    h(&[
        ("webhook-id", id),
        ("webhook-timestamp", &ts),
        ("webhook-signature", &sw_sig(secret, id, &ts, body)),
    ])
}

fn gh(body: &[u8]) -> Headers {
    h(&[(
        "X-Hub-Signature-256",
        &format!(
            "sha256={}",
            hex::encode(hmac_sha256(GH.as_bytes(), &[body]))
        ),
    )])
}

fn bamboo(body: &[u8], ts: &str) -> Headers {
    h(&[
        (
            "X-BambooHR-Signature",
            &hex::encode(hmac_sha256(BAMBOO.as_bytes(), &[body, ts.as_bytes()])),
        ),
        ("X-BambooHR-Timestamp", ts),
    ])
}

fn bob(body: &[u8]) -> Headers {
    h(&[(
        "Bob-Signature",
        &STANDARD.encode(hmac_sha512(BOB.as_bytes(), &[body])),
    )])
}

/// Replaces (or adds) one header.
fn set(mut headers: Headers, name: &str, value: impl Into<Vec<u8>>) -> Headers {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers.push((name.to_owned(), value.into()));
    headers
}

fn without(mut headers: Headers, name: &str) -> Headers {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers
}

/// Sends the header a second time.
fn twice(mut headers: Headers, name: &str) -> Headers {
    let copy = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap();
    headers.push(copy);
    headers
}

fn value_of(headers: &Headers, name: &str) -> String {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .unwrap()
}

fn event(email: &str) -> Vec<u8> {
    json!({"type": "employee.terminated", "employee": {"email": email}})
        .to_string()
        .into_bytes()
}

// ---------- the table ----------

struct Case {
    name: &'static str,
    method: Method,
    source: String,
    headers: Headers,
    body: Vec<u8>,
    status: u16,
    /// The error code; `None` when the request must succeed.
    code: Option<&'static str>,
}

fn post(
    name: &'static str,
    source: &str,
    headers: Headers,
    body: &[u8],
    status: u16,
    code: Option<&'static str>,
) -> Case {
    Case {
        name,
        method: Method::POST,
        source: source.to_owned(),
        headers,
        body: body.to_vec(),
        status,
        code,
    }
}

fn cases(now: i64) -> Vec<Case> {
    let valid = event("jane.doe@example.com");
    let other = event("john.roe@example.com");
    let sw1 = sw(SW_A, "msg_1", now, &valid);
    let gh_ok = gh(&valid);
    let gh_hex = value_of(&gh_ok, "X-Hub-Signature-256")["sha256=".len()..].to_owned();
    let ts = now.to_string();
    let bb_body = br#"{"employees":[{"id":"1001","fields":{"workEmail":"jane.doe@example.com"}}]}"#;
    let bb_ok = bamboo(bb_body, &ts);
    let padded = {
        let mut b = event("padded@example.com");
        b.resize(MAX_BODY, b' ');
        b
    };
    let over = vec![b' '; MAX_BODY + 1];
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes();
    let long_id = "x".repeat(300);
    let big = "A".repeat(8 * 1024);
    let signed = |id: &'static str, body: &[u8]| sw(SW_A, id, now, body);
    use Method as M;

    vec![
        // --- Standard Webhooks: signatures, headers, timestamps ---
        post("valid standard webhook", "sw", sw1.clone(), &valid, 202, None),
        post("replayed delivery: same id, same body", "sw", sw1.clone(), &valid, 200, None),
        post("same id, different body", "sw", sw(SW_A, "msg_1", now, &other), &other, 409, Some("event_id_conflict")),
        post("second secret after rotation", "sw", sw(SW_B, "msg_2", now, &other), &other, 202, None),
        post("signed with an unknown secret", "sw", sw(SW_UNKNOWN, "msg_3", now, &valid), &valid, 401, Some("bad_signature")),
        post("missing webhook-signature", "sw", without(signed("msg_4", &valid), "webhook-signature"), &valid, 401, Some("missing_signature")),
        post("missing webhook-id", "sw", without(signed("msg_5", &valid), "webhook-id"), &valid, 401, Some("missing_signature")),
        post("missing webhook-timestamp", "sw", without(signed("msg_6", &valid), "webhook-timestamp"), &valid, 401, Some("missing_signature")),
        post("no headers at all", "sw", vec![], &valid, 401, Some("missing_signature")),
        post("empty signature", "sw", set(signed("msg_7", &valid), "webhook-signature", ""), &valid, 401, Some("bad_signature")),
        post("truncated signature", "sw", {
            let s = value_of(&signed("msg_8", &valid), "webhook-signature");
            set(signed("msg_8", &valid), "webhook-signature", &s[..s.len() - 10])
        }, &valid, 401, Some("bad_signature")),
        post("only unknown signature versions", "sw", {
            let s = value_of(&signed("msg_9", &valid), "webhook-signature");
            set(signed("msg_9", &valid), "webhook-signature", format!("v2,{} v1a,{}", &s[3..], &s[3..]))
        }, &valid, 401, Some("bad_signature")),
        post("wrong version separator (v1=)", "sw", {
            let s = value_of(&signed("msg_10", &valid), "webhook-signature");
            set(signed("msg_10", &valid), "webhook-signature", s.replacen("v1,", "v1=", 1))
        }, &valid, 401, Some("bad_signature")),
        post("stale timestamp (now - 301s), correctly signed", "sw", sw(SW_A, "msg_11", now - 301, &valid), &valid, 401, Some("stale_timestamp")),
        post("future timestamp (now + 301s), correctly signed", "sw", sw(SW_A, "msg_12", now + 301, &valid), &valid, 401, Some("stale_timestamp")),
        post("non-numeric timestamp", "sw", set(signed("msg_13", &valid), "webhook-timestamp", "yesterday"), &valid, 401, Some("malformed_signature")),
        post("fractional timestamp", "sw", set(signed("msg_14", &valid), "webhook-timestamp", format!("{now}.5")), &valid, 401, Some("malformed_signature")),
        post("timestamp beyond i64", "sw", set(signed("msg_15", &valid), "webhook-timestamp", "99999999999999999999999"), &valid, 401, Some("malformed_signature")),
        post("repeated webhook-signature", "sw", twice(signed("msg_16", &valid), "webhook-signature"), &valid, 401, Some("malformed_signature")),
        post("repeated webhook-timestamp", "sw", twice(signed("msg_17", &valid), "webhook-timestamp"), &valid, 401, Some("malformed_signature")),
        post("8 KB signature header", "sw", set(signed("msg_18", &valid), "webhook-signature", format!("v1,{big}")), &valid, 401, Some("bad_signature")),
        post("8 KB webhook-id, correctly signed", "sw", sw(SW_A, &big, now, &valid), &valid, 401, Some("malformed_signature")),
        post("non-ASCII byte in webhook-id", "sw", set(signed("msg_19", &valid), "webhook-id", b"msg_\xff".to_vec()), &valid, 401, Some("malformed_signature")),
        post("body changed after signing", "sw", signed("msg_20", &valid), &other, 401, Some("bad_signature")),
        // --- Standard Webhooks: correctly signed bodies that are not events ---
        post("empty body", "sw", signed("msg_21", b""), b"", 400, Some("invalid_json")),
        post("invalid UTF-8", "sw", signed("msg_22", b"{\"type\":\"\xff\xfe\"}"), b"{\"type\":\"\xff\xfe\"}", 400, Some("invalid_json")),
        post("truncated JSON", "sw", signed("msg_23", &valid[..valid.len() - 3]), &valid[..valid.len() - 3], 400, Some("invalid_json")),
        post("JSON null", "sw", signed("msg_24", b"null"), b"null", 400, Some("invalid_event")),
        post("JSON array", "sw", signed("msg_25", b"[]"), b"[]", 400, Some("invalid_event")),
        post("JSON number", "sw", signed("msg_26", b"42"), b"42", 400, Some("invalid_event")),
        post("JSON string", "sw", signed("msg_27", b"\"hi\""), b"\"hi\"", 400, Some("invalid_event")),
        post("nesting 200 deep", "sw", signed("msg_28", &deep), &deep, 400, Some("invalid_json")),
        post("missing employee.email", "sw", signed("msg_29", br#"{"type":"employee.terminated","employee":{}}"#), br#"{"type":"employee.terminated","employee":{}}"#, 400, Some("invalid_event")),
        post("malformed email", "sw", signed("msg_30", &event("jane")), &event("jane"), 400, Some("invalid_event")),
        post("email with two @", "sw", signed("msg_31", &event("a@b@c.co")), &event("a@b@c.co"), 400, Some("invalid_event")),
        post("email is a number", "sw", signed("msg_32", br#"{"type":"employee.terminated","employee":{"email":7}}"#), br#"{"type":"employee.terminated","employee":{"email":7}}"#, 400, Some("invalid_event")),
        post("unknown type", "sw", signed("msg_33", br#"{"type":"employee.promoted","employee":{"email":"a@b.co"}}"#), br#"{"type":"employee.promoted","employee":{"email":"a@b.co"}}"#, 400, Some("invalid_event")),
        post("missing type", "sw", signed("msg_34", br#"{"employee":{"email":"a@b.co"}}"#), br#"{"employee":{"email":"a@b.co"}}"#, 400, Some("invalid_event")),
        post("unknown termination kind", "sw", signed("msg_35", br#"{"type":"employee.terminated","employee":{"email":"a@b.co"},"termination":{"kind":"fired"}}"#), br#"{"type":"employee.terminated","employee":{"email":"a@b.co"},"termination":{"kind":"fired"}}"#, 400, Some("invalid_event")),
        post("unparseable effective_at", "sw", signed("msg_36", br#"{"type":"employee.terminated","employee":{"email":"a@b.co"},"termination":{"effective_at":"next week"}}"#), br#"{"type":"employee.terminated","employee":{"email":"a@b.co"},"termination":{"effective_at":"next week"}}"#, 400, Some("invalid_event")),
        post("legal_hold as a string", "sw", signed("msg_37", br#"{"type":"employee.terminated","employee":{"email":"a@b.co"},"legal_hold":"yes"}"#), br#"{"type":"employee.terminated","employee":{"email":"a@b.co"},"legal_hold":"yes"}"#, 400, Some("invalid_event")),
        // --- size ---
        post("body 1 byte over the limit", "sw", signed("msg_38", &over), &over, 413, Some("too_large")),
        post("body exactly at the limit", "sw", signed("msg_39", &padded), &padded, 202, None),
        // --- GitHub-style ---
        post("valid GitHub-style", "gh", set(gh_ok.clone(), "X-GitHub-Delivery", "d-1"), &valid, 202, None),
        post("wrong prefix (sha1=)", "gh", set(gh_ok.clone(), "X-Hub-Signature-256", format!("sha1={gh_hex}")), &valid, 401, Some("malformed_signature")),
        post("missing prefix", "gh", set(gh_ok.clone(), "X-Hub-Signature-256", gh_hex.clone()), &valid, 401, Some("malformed_signature")),
        post("upper-case hex where lower expected", "gh", set(gh_ok.clone(), "X-Hub-Signature-256", format!("sha256={}", gh_hex.to_uppercase())), &valid, 401, Some("malformed_signature")),
        post("truncated hex (odd length)", "gh", set(gh_ok.clone(), "X-Hub-Signature-256", format!("sha256={}", &gh_hex[..63])), &valid, 401, Some("malformed_signature")),
        post("truncated hex (31 bytes)", "gh", set(gh_ok.clone(), "X-Hub-Signature-256", format!("sha256={}", &gh_hex[..62])), &valid, 401, Some("malformed_signature")),
        post("wrong algorithm (HMAC-SHA512 digest)", "gh", set(gh_ok.clone(), "X-Hub-Signature-256", format!("sha256={}", hex::encode(hmac_sha512(GH.as_bytes(), &[&valid])))), &valid, 401, Some("malformed_signature")),
        post("prefix with no digest", "gh", set(gh_ok.clone(), "X-Hub-Signature-256", "sha256="), &valid, 401, Some("malformed_signature")),
        post("flipped digest", "gh", set(gh_ok.clone(), "X-Hub-Signature-256", format!("sha256={}{}", if gh_hex.starts_with('0') { "1" } else { "0" }, &gh_hex[1..])), &valid, 401, Some("bad_signature")),
        post("missing X-Hub-Signature-256", "gh", vec![], &valid, 401, Some("missing_signature")),
        post("repeated X-Hub-Signature-256", "gh", twice(gh_ok.clone(), "X-Hub-Signature-256"), &valid, 401, Some("malformed_signature")),
        post("8 KB signature header", "gh", set(gh_ok.clone(), "X-Hub-Signature-256", format!("sha256={}", "a".repeat(8 * 1024))), &valid, 401, Some("malformed_signature")),
        post("8 KB X-GitHub-Delivery", "gh", set(gh_ok.clone(), "X-GitHub-Delivery", big.clone()), &valid, 401, Some("malformed_signature")),
        post("payload id of 300 characters", "gh", gh(format!(r#"{{"id":"{long_id}","type":"employee.terminated","employee":{{"email":"a@b.co"}}}}"#).as_bytes()), format!(r#"{{"id":"{long_id}","type":"employee.terminated","employee":{{"email":"a@b.co"}}}}"#).as_bytes(), 400, Some("invalid_event")),
        // --- BambooHR ---
        post("valid BambooHR", "bamboo", bb_ok.clone(), bb_body, 202, None),
        post("missing X-BambooHR-Timestamp", "bamboo", without(bb_ok.clone(), "X-BambooHR-Timestamp"), bb_body, 401, Some("missing_signature")),
        post("stale BambooHR timestamp, correctly signed", "bamboo", bamboo(bb_body, &(now - 3600).to_string()), bb_body, 401, Some("stale_timestamp")),
        post("timestamp not appended to what was signed", "bamboo", set(bb_ok.clone(), "X-BambooHR-Signature", hex::encode(hmac_sha256(BAMBOO.as_bytes(), &[bb_body]))), bb_body, 401, Some("bad_signature")),
        post("timestamp changed after signing", "bamboo", set(bb_ok.clone(), "X-BambooHR-Timestamp", (now - 1).to_string()), bb_body, 401, Some("bad_signature")),
        post("timestamp that is no time", "bamboo", set(bb_ok.clone(), "X-BambooHR-Timestamp", "soon"), bb_body, 401, Some("malformed_signature")),
        post("employees is not an array", "bamboo", bamboo(br#"{"employees":{}}"#, &ts), br#"{"employees":{}}"#, 400, Some("unmappable")),
        post("employees is empty", "bamboo", bamboo(br#"{"employees":[]}"#, &ts), br#"{"employees":[]}"#, 400, Some("unmappable")),
        post("employee without workEmail", "bamboo", bamboo(br#"{"employees":[{"fields":{}}]}"#, &ts), br#"{"employees":[{"fields":{}}]}"#, 400, Some("invalid_event")),
        post("form body with conflicting fields", "bamboo", set(bamboo(b"a=1&a[b]=2", &ts), "content-type", "application/x-www-form-urlencoded"), b"a=1&a[b]=2", 400, Some("invalid_form")),
        // --- HiBob ---
        post("HiBob set-up ping, signed", "bob", bob(b"Ping test"), b"Ping test", 200, None),
        post("HiBob ping, unsigned", "bob", vec![], b"Ping test", 401, Some("missing_signature")),
        post("HMAC-SHA256 where SHA512 expected", "bob", h(&[("Bob-Signature", &STANDARD.encode(hmac_sha256(BOB.as_bytes(), &[&valid])))]), &valid, 401, Some("malformed_signature")),
        post("signature that is not base64", "bob", h(&[("Bob-Signature", "!!not base64!!")]), &valid, 401, Some("malformed_signature")),
        post("valid HiBob", "bob", bob(br#"{"data":{"email":"jane.doe@example.com"}}"#), br#"{"data":{"email":"jane.doe@example.com"}}"#, 202, None),
        // --- static token (Okta) ---
        post("wrong static token", "okta", h(&[("Authorization", "okta-tokeN")]), &valid, 401, Some("bad_signature")),
        post("token prefix only", "okta", h(&[("Authorization", "okta")]), &valid, 401, Some("bad_signature")),
        post("missing Authorization", "okta", vec![], &valid, 401, Some("missing_signature")),
        Case { name: "Okta verification challenge", method: M::GET, source: "okta".into(), headers: h(&[("x-okta-verification-challenge", "abc123")]), body: vec![], status: 200, code: None },
        Case { name: "Okta challenge with a wrong token", method: M::GET, source: "okta".into(), headers: h(&[("x-okta-verification-challenge", "abc123"), ("Authorization", "nope")]), body: vec![], status: 401, code: Some("bad_signature") },
        Case { name: "GET without a challenge header", method: M::GET, source: "okta".into(), headers: vec![], body: vec![], status: 400, code: Some("missing_challenge") },
        Case { name: "8 KB challenge", method: M::GET, source: "okta".into(), headers: h(&[("x-okta-verification-challenge", &big)]), body: vec![], status: 401, code: Some("malformed_signature") },
        // --- routing ---
        post("unknown source", "workday", sw(SW_A, "msg_40", now, &valid), &valid, 404, Some("not_found")),
        post("encoded path traversal as source", "..%2F..%2Fhealthz", vec![], &valid, 404, Some("not_found")),
        post("unknown source, body over the limit", "nope", vec![], &over, 404, Some("not_found")),
        Case { name: "PUT on a webhook route", method: M::PUT, source: "sw".into(), headers: vec![], body: valid.clone(), status: 405, code: Some("method_not_allowed") },
        Case { name: "GET on a signed source", method: M::GET, source: "gh".into(), headers: vec![], body: vec![], status: 405, code: Some("method_not_allowed") },
    ]
}

#[tokio::test]
async fn hostile_requests_get_exact_answers_and_the_app_stays_healthy() {
    let app = spawn().await;
    let now = chrono::Utc::now().timestamp();
    let cases = cases(now);
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let mut failures = Vec::new();
    let mut accepted_events = 0;
    for case in &cases {
        let mut req = app
            .client
            .request(
                case.method.clone(),
                format!("{}/webhooks/{}", app.base, case.source),
            )
            .body(case.body.clone());
        if !case
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in &case.headers {
            req = req.header(
                k.as_str(),
                HeaderValue::from_bytes(v).expect("sendable header"),
            );
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: request failed: {e}", case.name));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str();
        if status != case.status || code != case.code {
            failures.push(format!(
                "{}: got {status} {code:?}, want {} {:?}; body {body}",
                case.name, case.status, case.code
            ));
        }
        if status == 202 {
            accepted_events += body["events"].as_array().map_or(1, Vec::len);
        }
        if status >= 400 && body["error"]["message"].as_str().is_none_or(str::is_empty) {
            failures.push(format!("{}: error without a message: {body}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Still healthy and ready.
    for path in ["/healthz", "/readyz"] {
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // Only accepted requests stored anything.
    let jobs = app.store.list_jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(jobs.len(), accepted_events);
    // Every outcome was counted, under configured source names only.
    let metrics = offboard_testkit::scrape_metrics(&app.client, &app.base).await;
    for (source, outcome) in [
        ("sw", "accepted"),
        ("sw", "duplicate"),
        ("sw", "conflict"),
        ("sw", "bad_signature"),
        ("sw", "stale"),
        ("sw", "too_large"),
        ("sw", "unmappable"),
        ("bob", "ping"),
        ("okta", "challenge"),
        ("unknown", "unknown_source"),
    ] {
        let line = format!(r#"offboard_webhooks_total{{source="{source}",outcome="{outcome}"}}"#);
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
    assert!(!metrics.contains("workday") && !metrics.contains("jane.doe"));
}
