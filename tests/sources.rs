//! HR sources end to end: published vectors, interop with the `standardwebhooks`
//! crate, sign→verify properties for every scheme, and each vendor preset against
//! the samples in `../shared/samples/hr/` signed the vendor's way, through the real
//! HTTP router over a real SQLite store.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::{Engine, engine::general_purpose::STANDARD};
use offboard_core::{
    config::{Config, Secret},
    ingest::{
        Source,
        schemes::{SignInput, SignedRequest},
    },
    store::SharedStore,
};
use offboard_testkit::sign::{hmac_sha256, hmac_sha512};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------- helpers ----------

struct App {
    base: String,
    store: SharedStore,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Serves the webhook and health routes for `toml` sources over a fresh SQLite store.
/// `secrets` gives each source's secrets by name.
async fn spawn(toml_text: &str, secrets: &[(&str, &[&str])], max_body: usize) -> App {
    spawn_in(
        tempfile::tempdir().expect("tempdir"),
        toml_text,
        secrets,
        max_body,
    )
    .await
}

/// Like [`spawn`], over the database in `dir` (to restart over the same store).
async fn spawn_in(
    dir: tempfile::TempDir,
    toml_text: &str,
    secrets: &[(&str, &[&str])],
    max_body: usize,
) -> App {
    let config = Config::from_toml(toml_text).expect("config");
    let sources = config
        .sources
        .iter()
        .map(|s| {
            let list = secrets
                .iter()
                .find(|(n, _)| *n == s.name)
                .map(|(_, l)| l.iter().map(|v| Secret::new((*v).into())).collect())
                .unwrap_or_default();
            Source::build(s.clone(), list).expect("source")
        })
        .collect();
    let rx = offboard_testkit::ingest::serve(sources, max_body, dir).await;
    App {
        base: rx.base,
        store: rx.store,
        client: reqwest::Client::new(),
        _dir: rx.dir,
    }
}

impl App {
    async fn post(&self, source: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/webhooks/{source}", self.base))
            .body(body.to_vec());
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The canonical event stored for a job.
    async fn event_of(&self, job_id: &str) -> Value {
        let detail = self.store.get_job(job_id).await.expect("get").expect("job");
        serde_json::to_value(&detail.job.event).expect("json")
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/../shared/samples/hr/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path)
        .or_else(|_| std::fs::read(format!("/work/shared/samples/hr/{name}")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

const BAMBOOHR: &str = r#"
[[sources]]
name = "bamboohr"
scheme = "bamboohr"
each = "/employees"
[sources.map]
"employee.id" = "/id"
"employee.email" = "/fields/workEmail"
"employee.name" = "{/fields/firstName} {/fields/lastName}"
"employee.manager_email" = "/fields/supervisorEmail"
"type" = "/fields/employmentHistoryStatus"
"occurred_at" = "/timestamp"
"termination.effective_at" = "/fields/terminationDate"
"termination.kind" = "/fields/terminationType"
"termination.rehire_eligible" = "/fields/eligibleForRehire"
[sources.values."type"]
Terminated = "employee.terminated"
[sources.values."termination.kind"]
Voluntary = "voluntary"
Involuntary = "involuntary"
[sources.values."termination.rehire_eligible"]
Yes = true
No = false
"#;

const HIBOB: &str = r#"
[[sources]]
name = "hibob"
scheme = "hibob"
[sources.map]
"employee.id" = "/data/employeeId"
"employee.email" = "/data/email"
"employee.name" = "/data/displayName"
"type" = "/type"
"occurred_at" = "/triggeredAt"
"termination.effective_at" = "/data/terminationDate"
"termination.reason" = "/data/terminationReason"
[sources.values."type"]
"employee.left" = "employee.terminated"
"employee.inactivated" = "employee.terminated"
[sources.ping]
body = "Ping test"
pointer = "/text"
equals = "Ping test"
"#;

// ---------- (a) published vectors ----------

#[test]
fn github_published_vector() {
    let sig = hmac_sha256(b"It's a Secret to Everybody", &[b"Hello, World!"]);
    assert_eq!(
        format!("sha256={}", hex::encode(&sig)),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    let config = Config::from_toml("[[sources]]\nname = \"gh\"\nscheme = \"github\"").unwrap();
    let source = Source::build(
        config.sources[0].clone(),
        vec![Secret::new("It's a Secret to Everybody".into())],
    )
    .unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        "x-hub-signature-256",
        HeaderValue::from_static(
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
    );
    let req = SignedRequest {
        method: "POST",
        headers: &h,
        body: b"Hello, World!",
        now: 0,
    };
    assert!(source.scheme.verify(&req).is_ok());
    let bad = SignedRequest {
        body: b"Hello, World?",
        ..req
    };
    assert!(source.scheme.verify(&bad).is_err());
}

#[test]
fn standard_webhooks_published_vector() {
    let config =
        Config::from_toml("[[sources]]\nname = \"sw\"\nscheme = \"standard_webhooks\"").unwrap();
    let source = Source::build(
        config.sources[0].clone(),
        vec![Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into())],
    )
    .unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        "webhook-id",
        HeaderValue::from_static("msg_p5jXN8AQM9LWM0D4loKWxJek"),
    );
    h.insert("webhook-timestamp", HeaderValue::from_static("1614265330"));
    h.insert(
        "webhook-signature",
        HeaderValue::from_static("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    );
    let req = SignedRequest {
        method: "POST",
        headers: &h,
        body: br#"{"test": 2432232314}"#,
        now: 1614265330,
    };
    assert_eq!(
        source.scheme.verify(&req).unwrap().message_id.as_deref(),
        Some("msg_p5jXN8AQM9LWM0D4loKWxJek")
    );
}

// ---------- (b) interop with the standardwebhooks crate ----------

#[tokio::test]
async fn standardwebhooks_crate_signs_offboard_verifies_and_back() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let app = spawn(
        "[[sources]]\nname = \"sw\"\nscheme = \"standard_webhooks\"",
        &[("sw", &[secret])],
        65536,
    )
    .await;
    let theirs = standardwebhooks::Webhook::new(secret).unwrap();
    let body =
        br#"{"id":"e1","type":"employee.terminated","employee":{"email":"jane.doe@example.com"}}"#;
    let ts = now();
    let sig = theirs.sign("msg_interop_1", ts, body).unwrap();
    let (status, resp) = app
        .post(
            "sw",
            &[
                ("webhook-id", "msg_interop_1".into()),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", sig),
            ],
            body,
        )
        .await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["event_id"], "msg_interop_1");

    // offboard signs, the crate verifies.
    let config =
        Config::from_toml("[[sources]]\nname = \"sw\"\nscheme = \"standard_webhooks\"").unwrap();
    let ours = Source::build(config.sources[0].clone(), vec![Secret::new(secret.into())]).unwrap();
    let headers = ours
        .scheme
        .sign(&SignInput {
            method: "POST",
            body,
            now: now(),
            message_id: "msg_interop_2",
        })
        .unwrap();
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    theirs
        .verify(body, &h)
        .expect("the crate accepts offboard's signature");
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert!(theirs.verify(&tampered, &h).is_err());
}

// ---------- (c) properties: sign→verify, and any flipped byte fails ----------

/// A scheme under test: which headers carry the signature, a signed timestamp and
/// a signed message id, and whether the body is signed.
struct SchemeCase {
    toml: &'static str,
    signature: &'static str,
    timestamp: Option<&'static str>,
    message_id: Option<&'static str>,
    signs_body: bool,
}

const SCHEMES: &[SchemeCase] = &[
    SchemeCase {
        toml: "scheme = \"standard_webhooks\"",
        signature: "webhook-signature",
        timestamp: Some("webhook-timestamp"),
        message_id: Some("webhook-id"),
        signs_body: true,
    },
    SchemeCase {
        toml: "scheme = \"bamboohr\"",
        signature: "x-bamboohr-signature",
        timestamp: Some("x-bamboohr-timestamp"),
        message_id: None,
        signs_body: true,
    },
    SchemeCase {
        toml: "scheme = \"hibob\"",
        signature: "bob-signature",
        timestamp: None,
        message_id: None,
        signs_body: true,
    },
    SchemeCase {
        toml: "scheme = \"gusto\"",
        signature: "x-gusto-signature",
        timestamp: None,
        message_id: None,
        signs_body: true,
    },
    SchemeCase {
        toml: "scheme = \"deel\"",
        signature: "x-deel-signature",
        timestamp: None,
        message_id: None,
        signs_body: true,
    },
    SchemeCase {
        toml: "scheme = \"github\"",
        signature: "x-hub-signature-256",
        timestamp: None,
        message_id: None, // X-GitHub-Delivery is not signed
        signs_body: true,
    },
    SchemeCase {
        toml: "scheme = \"hmac\"\n[sources.hmac]\nheader = \"X-Sig\"\nprefix = \"v1=\"\nalgorithm = \"sha512\"\nencoding = \"base64\"\nsigned = \"{method} {message_id}.{timestamp}.{body}\"\ntimestamp_header = \"X-Ts\"\nmessage_id_header = \"X-Id\"",
        signature: "x-sig",
        timestamp: Some("x-ts"),
        message_id: Some("x-id"),
        signs_body: true,
    },
    SchemeCase {
        toml: "scheme = \"hmac\"\n[sources.hmac]\nheader = \"X-Sig\"\nsigned = \"{timestamp}{body}\"\ntimestamp_header = \"X-Ts\"\ntimestamp_format = \"rfc3339\"",
        signature: "x-sig",
        timestamp: Some("x-ts"),
        message_id: None,
        signs_body: true,
    },
];

fn build_case(case: &SchemeCase, secrets: &[&str]) -> Source {
    let config = Config::from_toml(&format!(
        "[[sources]]\nname = \"p\"\ntolerance_secs = 300\n{}",
        case.toml
    ))
    .unwrap();
    Source::build(
        config.sources[0].clone(),
        secrets.iter().map(|s| Secret::new((*s).into())).collect(),
    )
    .unwrap()
}

fn header_map(pairs: &[(String, Vec<u8>)]) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).ok()?,
            HeaderValue::from_bytes(v).ok()?,
        );
    }
    Some(h)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_then_verify_passes_and_any_flip_fails(
        which in 0..SCHEMES.len(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        id in "[a-zA-Z0-9_]{1,40}",
        skew in -290i64..290,
        target in 0..4usize,
        pos in any::<usize>(),
        mask in 1u8..=255,
    ) {
        let case = &SCHEMES[which];
        let now = 1_900_000_000;
        // The sender signs with the secret the receiver lists second (rotation).
        let signer = build_case(case, &["k3y-secret"]);
        let verifier = build_case(case, &["other-key", "k3y-secret"]);
        let signed: Vec<(String, Vec<u8>)> = signer
            .scheme
            .sign(&SignInput { method: "POST", body: &body, now: now + skew, message_id: &id })
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.into_bytes()))
            .collect();
        let h = header_map(&signed).unwrap();
        let ok = SignedRequest { method: "POST", headers: &h, body: &body, now };
        prop_assert!(verifier.scheme.verify(&ok).is_ok(), "{}: {:?}", case.toml, verifier.scheme.verify(&ok));

        let flip = |bytes: &mut Vec<u8>| {
            if bytes.is_empty() { return false; }
            let i = pos % bytes.len();
            bytes[i] ^= mask;
            true
        };
        match target {
            0 => {
                prop_assume!(case.signs_body);
                let mut b = body.clone();
                prop_assume!(flip(&mut b));
                let req = SignedRequest { body: &b, ..ok };
                prop_assert!(verifier.scheme.verify(&req).is_err());
            }
            _ => {
                let name = match target {
                    1 => case.signature,
                    2 => match case.timestamp { Some(t) => t, None => return Ok(()) },
                    _ => match case.message_id { Some(m) => m, None => return Ok(()) },
                };
                let mut pairs = signed.clone();
                let slot = pairs.iter_mut().find(|(k, _)| k == name).unwrap();
                prop_assume!(flip(&mut slot.1));
                let Some(h2) = header_map(&pairs) else { return Ok(()) }; // not sendable
                let req = SignedRequest { headers: &h2, ..ok };
                prop_assert!(verifier.scheme.verify(&req).is_err(), "{} flipped {name}", case.toml);
            }
        }
    }

    #[test]
    fn static_token_only_accepts_the_exact_token(
        token in "[ -~]{1,64}",
        pos in any::<usize>(),
        mask in 1u8..=255,
    ) {
        let config = Config::from_toml("[[sources]]\nname = \"o\"\nscheme = \"static_token\"").unwrap();
        let source = Source::build(config.sources[0].clone(), vec![Secret::new(token.clone())]).unwrap();
        let mut good = token.clone().into_bytes();
        let h = header_map(&[("authorization".into(), good.clone())]);
        prop_assume!(h.is_some());
        let h = h.unwrap();
        let req = SignedRequest { method: "POST", headers: &h, body: b"{}", now: 0 };
        // HTTP trims surrounding whitespace from header values.
        prop_assume!(token.trim() == token);
        prop_assert!(source.scheme.verify(&req).is_ok());
        let i = pos % good.len();
        good[i] ^= mask;
        if let Some(h2) = header_map(&[("authorization".into(), good)]) {
            let req = SignedRequest { headers: &h2, ..req };
            prop_assert!(source.scheme.verify(&req).is_err());
        }
    }
}

// ---------- (e) each preset against the samples, signed the vendor's way ----------

#[tokio::test]
async fn bamboohr_sample_maps_to_the_canonical_event() {
    let key = "bamboo-private-key";
    let app = spawn(BAMBOOHR, &[("bamboohr", &[key])], 65536).await;
    let body = sample("bamboohr-employee-with-fields.json");
    let ts = now().to_string();
    // BambooHR: hex HMAC-SHA256(key, raw body followed directly by the timestamp).
    let sig = hex::encode(hmac_sha256(key.as_bytes(), &[&body, ts.as_bytes()]));
    let (status, resp) = app
        .post(
            "bamboohr",
            &[
                ("X-BambooHR-Signature", sig.clone()),
                ("X-BambooHR-Timestamp", ts.clone()),
            ],
            &body,
        )
        .await;
    assert_eq!(status, 202, "{resp}");
    let event_id = resp["event_id"].as_str().unwrap().to_owned();
    assert!(
        event_id.ends_with(":0") && event_id.len() == 66,
        "{event_id}"
    );
    let event = app.event_of(resp["job_id"].as_str().unwrap()).await;
    assert_eq!(
        event,
        json!({
            "id": event_id,
            "type": "employee.terminated",
            "occurred_at": "2026-12-01T10:00:00Z",
            "employee": {
                "id": "1001",
                "email": "jane.doe@example.com",
                "name": "Jane Doe",
                "manager_email": "max.manager@example.com"
            },
            "termination": {
                "effective_at": "2026-12-15T00:00:00Z",
                "kind": "voluntary",
                "rehire_eligible": true
            },
            "legal_hold": false
        })
    );
    // BambooHR retries the same delivery: a duplicate, not a second job.
    let (status, again) = app
        .post(
            "bamboohr",
            &[("X-BambooHR-Signature", sig), ("X-BambooHR-Timestamp", ts)],
            &body,
        )
        .await;
    assert_eq!(
        (status, &again["duplicate"]),
        (200, &json!(true)),
        "{again}"
    );
    assert_eq!(again["job_id"], resp["job_id"]);

    // The timestamp may also be ISO 8601 (the docs don't pin its format).
    let iso = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body2 = String::from_utf8(body).unwrap().replace("1001", "1002");
    let sig = hex::encode(hmac_sha256(
        key.as_bytes(),
        &[body2.as_bytes(), iso.as_bytes()],
    ));
    let (status, resp) = app
        .post(
            "bamboohr",
            &[("X-BambooHR-Signature", sig), ("X-BambooHR-Timestamp", iso)],
            body2.as_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{resp}");
}

#[tokio::test]
async fn bamboohr_arrays_and_form_posts() {
    let key = "k";
    let app = spawn(BAMBOOHR, &[("bamboohr", &[key])], 65536).await;
    let sign = |body: &[u8]| {
        let ts = now().to_string();
        let sig = hex::encode(hmac_sha256(key.as_bytes(), &[body, ts.as_bytes()]));
        vec![("X-BambooHR-Signature", sig), ("X-BambooHR-Timestamp", ts)]
    };
    // Two employees → two events with distinct ids, one response.
    let body = br#"{"employees":[
        {"id":"1","fields":{"workEmail":"a@example.com","employmentHistoryStatus":"Terminated","terminationType":"Involuntary","eligibleForRehire":"No"}},
        {"id":"2","fields":{"workEmail":"b@example.com","employmentHistoryStatus":"Terminated","terminationType":"Voluntary","eligibleForRehire":"Yes"}}]}"#;
    let (status, resp) = app.post("bamboohr", &sign(body), body).await;
    assert_eq!(status, 202, "{resp}");
    let events = resp["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_ne!(events[0]["event_id"], events[1]["event_id"]);
    let second = app.event_of(events[1]["job_id"].as_str().unwrap()).await;
    assert_eq!(second["employee"]["email"], "b@example.com");
    assert_eq!(second["termination"]["kind"], "voluntary");

    // The same payload posted as a form (BambooHR's "Form Post" encoding).
    let form = "employees[0][id]=1001&employees[0][timestamp]=2026-12-01T10%3A00%3A00%2B00%3A00\
        &employees[0][fields][workEmail]=jane.doe%40example.com&employees[0][fields][firstName]=Jane\
        &employees[0][fields][lastName]=Doe&employees[0][fields][employmentHistoryStatus]=Terminated\
        &employees[0][fields][terminationDate]=2026-12-15&employees[0][fields][terminationType]=Voluntary\
        &employees[0][fields][eligibleForRehire]=Yes&employees[0][fields][supervisorEmail]=max.manager%40example.com";
    let mut headers = sign(form.as_bytes());
    headers.push(("content-type", "application/x-www-form-urlencoded".into()));
    let (status, resp) = app.post("bamboohr", &headers, form.as_bytes()).await;
    assert_eq!(status, 202, "{resp}");
    let event = app.event_of(resp["job_id"].as_str().unwrap()).await;
    assert_eq!(event["employee"]["name"], "Jane Doe");
    assert_eq!(event["termination"]["rehire_eligible"], true);
    assert_eq!(event["termination"]["effective_at"], "2026-12-15T00:00:00Z");
}

#[tokio::test]
async fn hibob_sample_and_its_setup_ping() {
    let secret = "bob-secret";
    let app = spawn(HIBOB, &[("hibob", &[secret])], 65536).await;
    // HiBob: base64 HMAC-SHA512(secret, raw body) in Bob-Signature.
    let sign = |body: &[u8]| {
        vec![(
            "Bob-Signature",
            STANDARD.encode(hmac_sha512(secret.as_bytes(), &[body])),
        )]
    };
    let body = sample("hibob-employee-left.json");
    let (status, resp) = app.post("hibob", &sign(&body), &body).await;
    assert_eq!(status, 202, "{resp}");
    let event = app.event_of(resp["job_id"].as_str().unwrap()).await;
    assert_eq!(
        event,
        json!({
            "id": resp["event_id"],
            "type": "employee.terminated",
            "occurred_at": "2026-12-15T00:00:01Z",
            "employee": {
                "id": "3332883884017713239",
                "email": "jane.doe@example.com",
                "name": "Jane Doe"
            },
            "termination": {
                "effective_at": "2026-12-15T00:00:00Z",
                "reason": "Resignation"
            },
            "legal_hold": false
        })
    );
    // No message id, no payload id: the body hash is the event id.
    assert_eq!(resp["event_id"].as_str().unwrap().len(), 64);

    // Set-up pings, both documented shapes: 200 {"ping":true}, no job.
    for ping in [&b"Ping test"[..], br#"{"text":"Ping test"}"#] {
        let (status, resp) = app.post("hibob", &sign(ping), ping).await;
        assert_eq!(
            (status, resp.clone()),
            (200, json!({"ping": true})),
            "{resp}"
        );
        // Unsigned, it is refused (sources.ping.signed defaults to true).
        let (status, resp) = app.post("hibob", &[], ping).await;
        assert_eq!(
            (status, &resp["error"]["code"]),
            (401, &json!("missing_signature"))
        );
    }
    let jobs = app
        .store
        .list_jobs(&offboard_core::store::JobFilter::default())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "pings created no job");
}

#[tokio::test]
async fn gusto_deel_and_github_presets() {
    let toml_text = r#"
[[sources]]
name = "gusto"
scheme = "gusto"
event_id = "/uuid"
[sources.map]
"employee.email" = "/employee_email"
"type" = "/event_type"
[sources.values."type"]
"employee.terminated" = "employee.terminated"
"employee.termination_cancelled" = "employee.termination_cancelled"

[[sources]]
name = "deel"
scheme = "deel"
[sources.map]
"id" = "/data/meta/event_id"
"employee.email" = "/data/resource/work_email"
[sources.defaults]
type = "employee.terminated"

[[sources]]
name = "gh"
scheme = "github"
"#;
    let app = spawn(
        toml_text,
        &[
            ("gusto", &["vt-123"]),
            ("deel", &["deel-key"]),
            ("gh", &["gh-secret"]),
        ],
        65536,
    )
    .await;
    // Gusto: hex HMAC-SHA256(verification_token, body). Gusto sends entity_uuid, not
    // the email, so this payload is what an enriching workflow would forward.
    let body = br#"{"uuid":"f7397a24-57ad","event_type":"employee.terminated","entity_type":"Employee","entity_uuid":"5df9","employee_email":"jane.doe@example.com","timestamp":1671058841}"#;
    let sig = hex::encode(hmac_sha256(b"vt-123", &[body]));
    let (status, resp) = app.post("gusto", &[("X-Gusto-Signature", sig)], body).await;
    assert_eq!(
        (status, &resp["event_id"]),
        (202, &json!("f7397a24-57ad")),
        "{resp}"
    );

    // Deel: hex HMAC-SHA256(key, "POST" followed by the body).
    let body = br#"{"data":{"meta":{"event_id":"dl-1","event_type":"contract.terminated"},"resource":{"work_email":"j@example.com"}}}"#;
    let sig = hex::encode(hmac_sha256(b"deel-key", &[b"POST", body]));
    let (status, resp) = app
        .post("deel", &[("x-deel-signature", sig.clone())], body)
        .await;
    assert_eq!((status, &resp["event_id"]), (202, &json!("dl-1")), "{resp}");
    let plain = hex::encode(hmac_sha256(b"deel-key", &[body]));
    let (status, _) = app.post("deel", &[("x-deel-signature", plain)], body).await;
    assert_eq!(status, 401, "the POST prefix is part of what Deel signs");

    // GitHub-style: sha256=<hex>, X-GitHub-Delivery as the event id.
    let body = br#"{"type":"employee.terminated","employee":{"email":"k@example.com"}}"#;
    let sig = format!("sha256={}", hex::encode(hmac_sha256(b"gh-secret", &[body])));
    let (status, resp) = app
        .post(
            "gh",
            &[
                ("X-Hub-Signature-256", sig),
                ("X-GitHub-Delivery", "72d3162e".into()),
            ],
            body,
        )
        .await;
    assert_eq!(
        (status, &resp["event_id"]),
        (202, &json!("72d3162e")),
        "{resp}"
    );
}

#[tokio::test]
async fn okta_event_hook_with_static_token_and_challenge() {
    let toml_text = r#"
[[sources]]
name = "okta"
scheme = "static_token"
each = "/data/events"
[sources.map]
"id" = "/uuid"
"type" = "/eventType"
"occurred_at" = "/published"
"employee.email" = "/target/0/alternateId"
"employee.name" = "/target/0/displayName"
[sources.values."type"]
"user.lifecycle.deactivate" = "employee.terminated"
"user.lifecycle.reactivate" = "employee.rehired"
"#;
    let app = spawn(
        toml_text,
        &[("okta", &["okta-token-1", "okta-token-2"])],
        65536,
    )
    .await;
    let challenge = app
        .client
        .get(format!("{}/webhooks/okta", app.base))
        .header("x-okta-verification-challenge", "dnNt2mLhRPmoiYLAzaCv")
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 200);
    assert_eq!(
        challenge.json::<Value>().await.unwrap(),
        json!({"verification": "dnNt2mLhRPmoiYLAzaCv"})
    );
    let body = br#"{"eventType":"com.okta.event_hook","eventId":"b6f0","data":{"events":[
        {"uuid":"u-1","published":"2026-12-15T17:00:00.000Z","eventType":"user.lifecycle.deactivate",
         "target":[{"type":"User","alternateId":"jane.doe@example.com","displayName":"Jane Doe"}]}]}}"#;
    let (status, resp) = app
        .post("okta", &[("Authorization", "okta-token-2".into())], body)
        .await;
    assert_eq!((status, &resp["event_id"]), (202, &json!("u-1")), "{resp}");
    let (status, resp) = app
        .post("okta", &[("Authorization", "okta-token-3".into())], body)
        .await;
    assert_eq!(
        (status, &resp["error"]["code"]),
        (401, &json!("bad_signature"))
    );
    // GET on a signed source is not a challenge endpoint.
    let gh = spawn(
        "[[sources]]\nname = \"gh\"\nscheme = \"github\"",
        &[("gh", &["s"])],
        1024,
    )
    .await;
    let r = gh
        .client
        .get(format!("{}/webhooks/gh", gh.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn too_large_is_json_and_counted() {
    let app = spawn(
        "[[sources]]\nname = \"big\"\nscheme = \"github\"",
        &[("big", &["s"])],
        100,
    )
    .await;
    let (status, resp) = app.post("big", &[], &[b' '; 101]).await;
    assert_eq!(
        (status, &resp["error"]["code"]),
        (413, &json!("too_large")),
        "{resp}"
    );
    let metrics = offboard_testkit::scrape_metrics(&app.client, &app.base).await;
    assert!(
        metrics.contains(r#"offboard_webhooks_total{source="big",outcome="too_large"}"#),
        "{metrics}"
    );
}

// ---------- the shipped example stays a working configuration ----------

#[tokio::test]
async fn example_sources_build_and_map_the_samples() {
    let text = std::fs::read_to_string(format!(
        "{}/config/sources.example.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let config = Config::from_toml(&text).expect("example parses");
    let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
    for scheme in [
        "standard_webhooks",
        "bamboohr",
        "hibob",
        "gusto",
        "deel",
        "github",
        "hmac",
        "static_token",
    ] {
        assert!(
            config.sources.iter().any(|s| s.scheme == scheme),
            "no {scheme} example"
        );
    }
    let secrets: Vec<(&str, &[&str])> = names.iter().map(|n| (*n, &["s3cret"][..])).collect();
    let app = spawn(&text, &secrets, 65536).await;

    let body = sample("bamboohr-employee-with-fields.json");
    let ts = now().to_string();
    let sig = hex::encode(hmac_sha256(b"s3cret", &[&body, ts.as_bytes()]));
    let (status, resp) = app
        .post(
            "bamboohr",
            &[("X-BambooHR-Signature", sig), ("X-BambooHR-Timestamp", ts)],
            &body,
        )
        .await;
    assert_eq!(status, 202, "{resp}");
    let event = app.event_of(resp["job_id"].as_str().unwrap()).await;
    assert_eq!(event["termination"]["kind"], "voluntary");
    assert_eq!(
        event["employee"]["manager_email"],
        "max.manager@example.com"
    );

    let body = sample("hibob-employee-left.json");
    let sig = STANDARD.encode(hmac_sha512(b"s3cret", &[&body]));
    let (status, resp) = app.post("hibob", &[("Bob-Signature", sig)], &body).await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(
        app.event_of(resp["job_id"].as_str().unwrap()).await["type"],
        "employee.terminated"
    );

    // Gusto's subscription verification is answered without a signature, storing nothing.
    let (status, resp) = app
        .post("gusto", &[], br#"{"verification_token":"6590f590-3dba"}"#)
        .await;
    assert_eq!((status, resp), (200, json!({"ping": true})));
}

// ---------- replay: dedupe survives a restart ----------

#[tokio::test]
async fn dedupe_is_durable_across_restarts() {
    let toml_text = "[[sources]]\nname = \"bob\"\nscheme = \"hibob\"\n[sources.map]\n\"employee.email\" = \"/data/email\"\n[sources.defaults]\ntype = \"employee.terminated\"";
    let body = br#"{"data":{"email":"jane.doe@example.com"}}"#;
    let sig = vec![("Bob-Signature", STANDARD.encode(hmac_sha512(b"k", &[body])))];
    let app = spawn(toml_text, &[("bob", &["k"])], 65536).await;
    let (status, first) = app.post("bob", &sig, body).await;
    assert_eq!(status, 202, "{first}");
    // A new process over the same database: HiBob signs no timestamp, so this replay
    // is caught only by the stored event id.
    let App { _dir: dir, .. } = app;
    let app = spawn_in(dir, toml_text, &[("bob", &["k"])], 65536).await;
    let (status, again) = app.post("bob", &sig, body).await;
    assert_eq!(
        (status, &again["duplicate"]),
        (200, &json!(true)),
        "{again}"
    );
    assert_eq!(again["job_id"], first["job_id"]);
}
