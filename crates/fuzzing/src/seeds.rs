//! The inputs the corpora were grown from: what the repository already holds
//! (the example sources and policies, the JSON and TOML inside the unit tests of
//! the CRM wire modules, the policy and the sources tests) put into each target's
//! format, and requests signed correctly by every shipped scheme so the fuzzer
//! starts on the accepting path. `fuzz/README.md` says how they were used:
//! `cargo test -p offboard-fuzzing --test corpora -- --ignored write_seeds` writes
//! them to `fuzz/seeds/<target>/` (not committed), and `cargo fuzz cmin` keeps only
//! what adds coverage.

use std::path::Path;

use offboard_core::ingest::schemes::SignInput;

use crate::{
    input::header_lines,
    signatures::{NOW, SECRETS, SOURCES, schemes},
};

/// A canonical event, the body most seeds carry.
const EVENT: &str = r#"{"id":"evt_0002","type":"employee.terminated","occurred_at":"2026-12-01T10:05:00Z","employee":{"id":"E1002","email":"sam.seller@example.com","name":"Sam Seller","manager_email":"max.manager@example.com"},"termination":{"effective_at":"2026-12-01T12:00:00Z","kind":"involuntary","rehire_eligible":false},"legal_hold":false}"#;

/// HR payloads in the shapes the example sources map.
const PAYLOADS: &[(&str, &str)] = &[
    (
        "application/json",
        r#"{"employees":[{"id":"1001","timestamp":"2026-12-01T10:00:00+00:00","fields":{"workEmail":"jane.doe@example.com","firstName":"Jane","lastName":"Doe","employmentHistoryStatus":"Terminated","terminationDate":"2026-12-15","terminationType":"Voluntary","eligibleForRehire":"Yes","supervisorEmail":"max.manager@example.com"}}]}"#,
    ),
    (
        "application/x-www-form-urlencoded",
        "employees[0][id]=1001&employees[0][timestamp]=2026-12-01T10%3A00%3A00Z&employees[0][fields][workEmail]=jane.doe%40example.com&employees[0][fields][firstName]=Jane&employees[0][fields][lastName]=Doe&employees[0][fields][employmentHistoryStatus]=Terminated&employees[0][fields][terminationType]=Involuntary",
    ),
    (
        "application/x-www-form-urlencoded",
        "payload=%7B%22id%22%3A%22e1%22%2C%22type%22%3A%22employee.terminated%22%2C%22employee%22%3A%7B%22email%22%3A%22a%40b.co%22%7D%7D",
    ),
    (
        "application/json",
        r#"{"type":"employee.left","triggeredAt":"2026-12-15T00:00:01.000Z","data":{"employeeId":"333","email":"jane.doe@example.com","displayName":"Jane Doe","terminationDate":"2026-12-15","terminationReason":"Resignation"}}"#,
    ),
    ("text/plain", "Ping test"),
    (
        "application/json",
        r#"{"uuid":"u-1","event_type":"employee.terminated","entity_uuid":"e-9","employee_email":"a@b.co"}"#,
    ),
    (
        "application/json",
        r#"{"data":{"meta":{"event_id":"d-1"},"resource":{"worker":{"email":"a@b.co"},"end_date":"2026-12-31","termination_reason":"x"}}}"#,
    ),
    (
        "application/json",
        r#"{"data":{"events":[{"uuid":"o-1","eventType":"user.lifecycle.deactivate","published":"2026-12-01T10:00:00Z","target":[{"alternateId":"a@b.co","displayName":"A B"}]}]}}"#,
    ),
    ("application/json", EVENT),
];

/// Every seed, as (target, bytes). `repo` is the repository root.
pub fn seeds(repo: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    signature_seeds(&mut out);
    for source in sources(repo) {
        for (content_type, body) in PAYLOADS {
            out.push((
                "mapping",
                format!(
                    "{source}\n%%\n\ncontent-type: {content_type}\nx-request-id: r-1\n%%\n{body}"
                )
                .into_bytes(),
            ));
        }
        out.push((
            "scheme_verify",
            format!("{source}\n%%\nk1\nk2\n%%\n{EVENT}").into_bytes(),
        ));
    }
    for text in ["config/policy.toml", "config/policy-demo.toml"] {
        if let Ok(policy) = std::fs::read(repo.join(text)) {
            out.push(("policy_parse", policy));
        }
    }
    for file in [
        "crates/policy/tests/policy.rs",
        "crates/policy/src/rules.rs",
    ] {
        for literal in raw_strings(&read(repo, file)) {
            if literal.contains("version") || literal.contains("[[rules]]") {
                out.push(("policy_parse", literal.into_bytes()));
            }
        }
    }
    // The error table of the policy tests: `(text.into(), line, col, …)` rows, and
    // `p(text)` rows that the test puts after its prelude.
    let prelude = "version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\n";
    for line in read(repo, "crates/policy/tests/policy.rs").lines() {
        let line = line.trim_start();
        if let Some(rest) = line.strip_prefix("(p(\"") {
            if let Some(text) = string_literal(rest) {
                out.push(("policy_parse", format!("{prelude}{text}").into_bytes()));
            }
        } else if let Some(rest) = line.strip_prefix("(\"")
            && let Some(text) = string_literal(rest)
        {
            out.push(("policy_parse", text.into_bytes()));
        }
    }
    for file in [
        "crates/core/src/crm/sell/wire.rs",
        "crates/core/src/crm/pipedrive/wire.rs",
        "crates/core/src/crm/hubspot/wire.rs",
        "crates/core/src/crm/salesforce/wire.rs",
        "crates/core/tests/sell_client.rs",
    ] {
        for literal in raw_strings(&read(repo, file)) {
            if serde_json::from_str::<serde_json::Value>(&literal).is_ok() {
                for head in ["200", "404", "429\nRetry-After: 3", "500"] {
                    out.push((
                        "crm_responses",
                        format!("{head}\n%%\n{literal}").into_bytes(),
                    ));
                }
            }
        }
    }
    for head in [
        "429\nRetry-After: Wed, 21 Oct 2026 07:28:00 GMT",
        "200\nx-ratelimit-remaining: 0\nx-ratelimit-reset: 2",
        "200\nX-HubSpot-RateLimit-Remaining: 0\nX-HubSpot-RateLimit-Interval-Milliseconds: 10000",
        "200\nSforce-Limit-Info: api-usage=15000/15000",
        "403",
    ] {
        out.push((
            "crm_responses",
            format!("{head}\n%%\n[{{\"message\":\"x\",\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}}]")
                .into_bytes(),
        ));
    }
    out
}

/// Correctly signed requests for every shipped scheme, and a few broken ones.
fn signature_seeds(out: &mut Vec<(&'static str, Vec<u8>)>) {
    for (i, (_, scheme)) in schemes().iter().enumerate() {
        let message_id = format!("msg_seed_{i}");
        let input = SignInput {
            method: "POST",
            body: EVENT.as_bytes(),
            now: NOW,
            message_id: &message_id,
        };
        let pairs = scheme.sign(&input).unwrap_or_default();
        let lines = header_lines(&pairs);
        out.push((
            "signature_headers",
            format!("{NOW}\n{lines}%%\n{EVENT}").into_bytes(),
        ));
        // The same headers twice, and stale.
        out.push((
            "signature_headers",
            format!("{NOW}\n{lines}{lines}%%\n{EVENT}").into_bytes(),
        ));
        out.push((
            "signature_headers",
            format!("{}\n{lines}%%\n{EVENT}", NOW + 100_000).into_bytes(),
        ));
    }
    for extra in [
        format!(
            "authorization: {}\nx-okta-verification-challenge: abc",
            SECRETS[1]
        ),
        "X-BambooHR-Timestamp: 2027-01-15T08:00:00+00:00\nX-BambooHR-Signature: 00".to_owned(),
        "webhook-id: x\nwebhook-timestamp: 1800000000\nwebhook-signature: v2,a v1,####".to_owned(),
    ] {
        out.push((
            "signature_headers",
            format!("{NOW}\n{extra}\n%%\n{EVENT}").into_bytes(),
        ));
    }
}

/// Each `[[sources]]` entry of the example file as one source table in TOML, and
/// the shipped sources of [`SOURCES`].
fn sources(repo: &Path) -> Vec<String> {
    let mut out: Vec<String> = SOURCES.iter().map(|s| (*s).to_owned()).collect();
    let example = read(repo, "config/sources.example.toml");
    if let Ok(t) = example.parse::<toml::Table>()
        && let Some(toml::Value::Array(list)) = t.get("sources")
    {
        out.extend(list.iter().filter_map(|s| toml::to_string(s).ok()));
    }
    out
}

fn read(repo: &Path, file: &str) -> String {
    std::fs::read_to_string(repo.join(file)).unwrap_or_default()
}

/// The text of a Rust string literal whose opening quote came just before `rest`
/// (its escapes are JSON's, for what the tests use).
fn string_literal(rest: &str) -> Option<String> {
    let mut end = None;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match (escaped, c) {
            (false, '\\') => escaped = true,
            (false, '"') => {
                end = Some(i);
                break;
            }
            _ => escaped = false,
        }
    }
    serde_json::from_str(&format!("\"{}\"", &rest[..end?])).ok()
}

/// The contents of every `r#"…"#` literal in Rust source text.
fn raw_strings(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("r#\"") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("\"#") else {
            break;
        };
        out.push(after[..end].to_owned());
        rest = &after[end + 2..];
    }
    out
}
