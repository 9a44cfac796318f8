//! `offboard sources [test NAME --body FILE]`: what each configured HR source
//! accepts (route, scheme, replay protection, event id, mapping), and what a given
//! payload maps to, so an operator can check a mapping before the vendor sends
//! anything. Neither reads a secret nor checks a signature.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use offboard_core::{
    config::{Config, SCIM_SOURCE, SourceConfig},
    ingest::{
        mapping::{EventIdFrom, Input, Mapping},
        schemes::Spec,
    },
};

#[derive(Debug, clap::Subcommand)]
pub(super) enum SourcesCommand {
    /// Print the canonical event(s) a payload maps to, or exactly why it can't
    /// (no signature check).
    Test {
        /// The source's name.
        name: String,
        /// The payload file (`-` reads stdin).
        #[arg(long)]
        body: PathBuf,
    },
}

pub(super) fn run(
    config_path: &Path,
    command: Option<SourcesCommand>,
) -> Result<(), super::CliError> {
    use super::CliError;
    let config = Config::load(config_path, true)?;
    match command {
        None => print!("{}", list(&config)),
        Some(SourcesCommand::Test { name, body }) => {
            if !config.sources.iter().any(|s| s.name == name) {
                return Err(CliError::Config(format!(
                    "no source named {name:?} in {}",
                    config_path.display()
                )));
            }
            let bytes = if body.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map(|_| buf)
            } else {
                std::fs::read(&body)
            }
            .map_err(|e| CliError::Config(format!("--body {}: {e}", body.display())))?;
            let out =
                test(&config, &name, &bytes).map_err(|e| CliError::Failed(anyhow::anyhow!(e)))?;
            println!("{out}");
        }
    }
    Ok(())
}

/// The listing printed by `offboard sources`.
pub(crate) fn list(config: &Config) -> String {
    let mut out = String::new();
    if config.sources.is_empty() && config.scim.is_none() {
        return "no sources configured (add [[sources]] blocks; see config/sources.example.toml)\n"
            .into();
    }
    for source in &config.sources {
        let _ = writeln!(out, "{}", source.name);
        let _ = writeln!(out, "  route: POST /webhooks/{}", source.name);
        for line in describe(source) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if let Some(scim) = &config.scim {
        let _ = writeln!(out, "{SCIM_SOURCE} (identity providers: Okta, Entra ID)");
        let _ = writeln!(
            out,
            "  route: /scim/v2 (SCIM 2.0 Users; bearer token from [scim])"
        );
        let _ = writeln!(
            out,
            "  events: active true → false (PATCH, PUT, DELETE) is employee.terminated of kind {}; false → true is employee.rehired",
            scim.termination_kind
        );
        for (field, pointer) in &scim.map {
            let _ = writeln!(out, "  map: {field} ← {pointer}");
        }
    }
    out
}

fn describe(source: &SourceConfig) -> Vec<String> {
    let spec = match Spec::resolve(source) {
        Ok(spec) => spec,
        Err(e) => return vec![format!("error: {e}")],
    };
    let mapping = match Mapping::from_config(source) {
        Ok(m) => m,
        Err(e) => {
            return vec![
                format!("scheme: {}", spec.describe()),
                format!("error: {e}"),
            ];
        }
    };
    let mut lines = vec![
        format!("scheme: {}", spec.describe()),
        format!("replay: {}", spec.replay()),
        format!(
            "secrets: {}",
            match (&source.secrets_env, &source.secrets_file) {
                (Some(env), _) => format!("env {env}"),
                (None, Some(file)) => format!("file {}", file.display()),
                (None, None) => "NOT CONFIGURED (set secrets_env or secrets_file)".into(),
            }
        ),
        format!(
            "event id: {}",
            mapping.describe_event_id(spec.message_id_header())
        ),
    ];
    lines.extend(mapping.describe());
    lines
}

/// `offboard sources test NAME --body FILE`: the canonical event JSON (an array
/// when the payload carries several), or exactly why the payload can't map.
/// Ids that come from request headers show as `<header-name>`.
pub(crate) fn test(config: &Config, name: &str, body: &[u8]) -> Result<String, String> {
    let source = config
        .sources
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            format!(
                "no source named {name:?} (configured: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )
        })?;
    let spec = Spec::resolve(source).map_err(|e| format!("source {name}: {e}"))?;
    let mapping = Mapping::from_config(source).map_err(|e| format!("source {name}: {e}"))?;
    // No request here: guess a form body by its look, as Content-Type would tell.
    let trimmed = body.trim_ascii_start();
    let looks_like_form =
        !matches!(trimmed.first(), Some(b'{' | b'[' | b'"')) && trimmed.contains(&b'=');
    let content_type = looks_like_form.then_some("application/x-www-form-urlencoded");
    if mapping.is_ping(body, content_type) {
        return Ok(format!(
            "ping: this is {name}'s set-up ping; it gets 200 {{\"ping\":true}} and creates no job"
        ));
    }
    let message_id = spec.message_id_header().map(|(h, _)| format!("<{h}>"));
    let mut headers = HeaderMap::new();
    if let EventIdFrom::Header(h) = mapping.event_id()
        && let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(h.as_bytes()),
            HeaderValue::from_str(&format!("<{h}>")),
        )
    {
        headers.insert(k, v);
    }
    let body_sha256 = hex::encode(Sha256::digest(body));
    let events = mapping
        .map(&Input {
            body,
            content_type,
            headers: &headers,
            message_id: message_id.as_deref(),
            body_sha256: &body_sha256,
        })
        .map_err(|e| format!("{}: {e}", e.code()))?;
    let json = match events.as_slice() {
        [one] => serde_json::to_string_pretty(one),
        many => serde_json::to_string_pretty(many),
    };
    json.map_err(|e| format!("cannot print the event: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[sources]]
name = "bamboohr"
scheme = "bamboohr"
secrets_env = "BAMBOOHR_WEBHOOK_SECRETS"
each = "/employees"
[sources.map]
"employee.email" = "/fields/workEmail"
"termination.kind" = "/fields/terminationType"
[sources.values."termination.kind"]
Voluntary = "voluntary"
[sources.defaults]
type = "employee.terminated"

[[sources]]
name = "gh"
scheme = "github"

[[sources]]
name = "broken"
scheme = "hmac"
"#;

    #[test]
    fn list_shows_the_scim_door_and_what_it_makes() {
        let out = list(
            &Config::from_toml(
                "[scim]\ntoken_env = \"X\"\ntermination_kind = \"layoff\"\n[scim.map]\n\"employee.country\" = \"/addresses/0/country\"\n",
            )
            .unwrap(),
        );
        assert!(out.contains("route: /scim/v2"), "{out}");
        assert!(out.contains("employee.terminated of kind layoff"), "{out}");
        assert!(
            out.contains("map: employee.country ← /addresses/0/country"),
            "{out}"
        );
    }

    #[test]
    fn list_says_how_replays_are_caught() {
        let out = list(&Config::from_toml(CONFIG).unwrap());
        assert!(out.contains("route: POST /webhooks/bamboohr"), "{out}");
        assert!(out.contains("replay: timestamp window ±300s"), "{out}");
        assert!(
            out.contains("replay: dedupe only (scheme signs no timestamp)"),
            "{out}"
        );
        assert!(out.contains("map: termination.kind ← /fields/terminationType (values: Voluntary → \"voluntary\")"), "{out}");
        assert!(out.contains("X-GitHub-Delivery (NOT signed"), "{out}");
        assert!(
            out.contains("error: sources.hmac.header: required"),
            "{out}"
        );
        assert!(out.contains("secrets: NOT CONFIGURED"), "{out}");
    }

    #[test]
    fn test_prints_events_or_why_not() {
        let config = Config::from_toml(CONFIG).unwrap();
        let out = test(
            &config,
            "bamboohr",
            br#"{"employees":[{"id":"7","fields":{"workEmail":"A@B.co","terminationType":"Voluntary"}}]}"#,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["employee"]["email"], "a@b.co");
        assert_eq!(v["termination"]["kind"], "voluntary");
        assert!(v["id"].as_str().unwrap().ends_with(":0"));
        let err = test(&config, "bamboohr", br#"{"employees":[{"fields":{}}]}"#).unwrap_err();
        assert_eq!(
            err,
            "invalid_event: /employees/0: employee.email: missing (mapped from /fields/workEmail, which is absent in the payload)"
        );
        let out = test(
            &config,
            "gh",
            br#"{"type":"employee.terminated","employee":{"email":"a@b.co"}}"#,
        )
        .unwrap();
        assert!(out.contains("\"id\": \"<X-GitHub-Delivery>\""), "{out}");
        assert!(
            test(&config, "nope", b"{}")
                .unwrap_err()
                .contains("configured: bamboohr, gh, broken")
        );
    }
}
