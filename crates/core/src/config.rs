//! Typed configuration: the embedded defaults, then the TOML file, then
//! `OFFBOARD__SECTION__KEY` environment overrides (figment), validated once.
//!
//! Secrets never live in the file: it names an environment variable (`*_env`) or a
//! file (`*_file`) and [`Secret`] holds the value with a redacted `Debug`. Every
//! error names the key it is about, so start-up fails with one clear line.

use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::Deserialize;

/// The documented defaults, embedded so `offboard` runs with an empty file.
pub const DEFAULTS: &str = include_str!("../../../config/defaults.toml");

/// Everything offboard reads from `offboard.toml` (DESIGN.md §6), merged over
/// [`DEFAULTS`] and `OFFBOARD__SECTION__KEY` environment overrides. Secrets are
/// never fields here: only the names of the env vars or files that hold them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listener and request limits.
    pub server: ServerConfig,
    /// `[store]`: the durable store's URL and SQLite tuning.
    pub store: StoreConfig,
    /// `[crm]`: which CRM, how to reach it and how fast.
    pub crm: CrmConfig,
    /// `[[sources]]`: one entry per HR system; none means no webhook is accepted.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// `[policy]`: where the decision rules are.
    pub policy: PolicyConfig,
    /// `[admin]`: the admin API's token.
    pub admin: AdminConfig,
    /// `[safety]`: dry run and the hourly limits.
    pub safety: SafetyConfig,
    /// `[worker]`: leases, attempts, and the manual seat step's polling.
    pub worker: WorkerConfig,
    /// `[privacy]`: e-mail redaction in logs and API output.
    pub privacy: PrivacyConfig,
    /// `[console]`: the ops console under `/console` (DESIGN.md §11).
    pub console: ConsoleConfig,
    /// `[scim]`: the SCIM 2.0 service provider under `/scim/v2`; absent, there is none.
    #[serde(default)]
    pub scim: Option<ScimConfig>,
    /// `[notify]`: e-mail and outbound webhooks (DESIGN.md §13), and how failed
    /// deliveries are retried. Without `[notify.email]` or `[[notify.webhooks]]`
    /// nothing is sent.
    pub notify: NotifyConfig,
}

/// `[notify]` (DESIGN.md §13): the channels notifications are sent by, and the
/// delivery retries. The worker validates it into `notify::Settings` at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The wait after a delivery's first failure; it doubles per further failure
    /// (plus up to a quarter of jitter).
    pub retry_base_secs: u64,
    /// The longest wait between two attempts.
    pub retry_max_secs: u64,
    /// A notification still undelivered this long after its cause is given up on:
    /// it stays visible as `dead` (API, `jobs show`, audit trail, metrics).
    pub give_up_after_hours: u64,
    /// Seconds one delivery attempt (an SMTP conversation, a webhook POST) may take.
    pub timeout_secs: u64,
    /// `[notify.email]`: SMTP; absent, no e-mail is sent.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// `[[notify.webhooks]]`: signed outbound webhooks; none by default.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// `[notify.email]`: the SMTP server notifications are sent through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://host[:port]` (STARTTLS when the server offers it; default port 587)
    /// or `smtps://host[:port]` (TLS from the first byte; default port 465). No
    /// credentials in the URL: they come from `username_env`/`password_env`.
    pub smtp_url: String,
    /// Env var holding the SMTP user name (unset: no authentication).
    pub username_env: Option<String>,
    /// File holding the SMTP user name.
    pub username_file: Option<PathBuf>,
    /// Env var holding the SMTP password (required with a user name).
    pub password_env: Option<String>,
    /// File holding the SMTP password.
    pub password_file: Option<PathBuf>,
    /// The sender: `offboard@example.com` or `offboard <offboard@example.com>`.
    pub from: String,
    /// On `smtp://`, refuse to send unless the server offers STARTTLS.
    #[serde(default)]
    pub require_tls: bool,
}

/// `[[notify.webhooks]]`: one endpoint that receives signed events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique among the endpoints; what the job's notifications name as their target.
    pub name: String,
    /// Where events are POSTed (`https://`, or `http://` for internal relays).
    pub url: String,
    /// Env var holding the signing secret (`whsec_…`).
    pub secret_env: Option<String>,
    /// File holding it.
    pub secret_file: Option<PathBuf>,
    /// The event types this endpoint receives; unset: all of them.
    pub events: Option<Vec<String>>,
    /// `standard` (the event as JSON) or `slack` (incoming-webhook JSON `{"text": …}`).
    #[serde(default)]
    pub format: WebhookFormat,
}

/// `[[notify.webhooks]] format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// `{"type", "timestamp", "data"}`, as Standard Webhooks suggests.
    #[default]
    Standard,
    /// A Slack incoming webhook: `{"text": "…"}`.
    Slack,
}

impl EmailConfig {
    /// The SMTP user name and password, or `None` when no user name is configured;
    /// a user name without a password is a [`ConfigError::Secret`].
    pub fn credentials(&self) -> Result<Option<(Secret, Secret)>, ConfigError> {
        if self.username_env.is_none() && self.username_file.is_none() {
            return Ok(None);
        }
        let user = read_named(
            "notify.email",
            ("username_env", self.username_env.as_deref()),
            ("username_file", self.username_file.as_deref()),
        )?;
        let password = read_named(
            "notify.email",
            ("password_env", self.password_env.as_deref()),
            ("password_file", self.password_file.as_deref()),
        )?;
        Ok(Some((user, password)))
    }
}

impl WebhookConfig {
    /// The endpoint's signing secret (`notify.webhooks[index].secret_env` or `_file`).
    pub fn secret(&self, index: usize) -> Result<Secret, ConfigError> {
        read_named(
            &format!("notify.webhooks[{index}]"),
            ("secret_env", self.secret_env.as_deref()),
            ("secret_file", self.secret_file.as_deref()),
        )
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server binds (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Webhook bodies above this get 413.
    pub max_body_bytes: usize,
    /// Seconds a request may take end to end before it is answered 408 `timeout`.
    pub request_timeout_secs: u64,
}

/// The longest `[store] keep_finished_days` accepted: beyond it a typo (an extra
/// digit) is likelier than intent, and `0` already means forever.
pub const MAX_KEEP_FINISHED_DAYS: u32 = 36_500;

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path` (relative to the working directory) or `postgres://…`.
    pub url: String,
    /// SQLite only: `full` (default; a 2xx survives power loss) or `normal`.
    pub sqlite_synchronous: String,
    /// SQLite only: concurrent ingests share one transaction and one fsync (default
    /// `true`); `false` commits each request on its own (the benchmark's "before").
    pub sqlite_group_commit: bool,
    /// How long a request (a webhook, SCIM, the admin API, `/readyz`) waits for the
    /// store before it is answered 503 `store_unavailable` with `Retry-After`.
    pub unavailable_after_ms: u64,
    /// Days a finished job (succeeded, failed, cancelled) is kept after it finished,
    /// with its audit trail; then the pruner deletes it, keeping only its event as a
    /// dedupe tombstone. `0` keeps everything forever.
    pub keep_finished_days: u32,
}

/// `[crm]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    /// Which CRM (DESIGN.md §9).
    pub kind: CrmKind,
    /// API origin, e.g. `https://api.getbase.com` (Sell) or
    /// `https://yourcompany.pipedrive.com` (Pipedrive; `/api/v1` and `/api/v2` below it).
    pub base_url: String,
    /// Env var holding the API token.
    pub token_env: Option<String>,
    /// File holding the API token.
    pub token_file: Option<PathBuf>,
    /// Requests per second the token may spend (Sell: 10, i.e. 36,000/hour); shared
    /// by every replica when the store is PostgreSQL.
    pub requests_per_second: u32,
    /// Concurrent CRM requests per process.
    pub max_in_flight: usize,
    /// Seconds one CRM call may take before it counts as a transient failure.
    pub timeout_secs: u64,
    /// Who changes seats; unset: [`SeatExecutor::Api`] where the CRM's API can
    /// deactivate or delete users, else [`SeatExecutor::Manual`] (resolved, and checked
    /// against the CRM, by `crm::seat_executor`).
    #[serde(rename = "seat_executor")]
    pub seat_executor_setting: Option<SeatExecutor>,
    /// The admin who receives the manual-action task.
    pub admin_email: Option<String>,
    /// Salesforce only: the REST API version (`66.0`; a leading `v` is
    /// accepted). Unset: [`DEFAULT_SALESFORCE_API_VERSION`]. Read it through
    /// [`CrmConfig::salesforce_api_version`].
    pub api_version: Option<String>,
}

/// The Salesforce REST API version used when `crm.api_version` is unset: Spring
/// '26, the latest release the REST API Developer Guide lists (API version 66.0).
pub const DEFAULT_SALESFORCE_API_VERSION: &str = "66.0";

/// `66.0` for `66.0`, `v66.0` or ` V66.0 `; `None` unless it is digits, a dot and
/// digits.
pub fn normalize_api_version(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let bare = raw
        .strip_prefix('v')
        .or_else(|| raw.strip_prefix('V'))
        .unwrap_or(raw);
    let (major, minor) = bare.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| format!("{major}.{minor}"))
}

impl CrmConfig {
    /// The Salesforce REST API version to speak: `crm.api_version` normalized,
    /// else [`DEFAULT_SALESFORCE_API_VERSION`]; an unusable one names the key.
    pub fn salesforce_api_version(&self) -> Result<String, ConfigError> {
        match self.api_version.as_deref() {
            None => Ok(DEFAULT_SALESFORCE_API_VERSION.to_owned()),
            Some(raw) => normalize_api_version(raw).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "crm.api_version: {raw:?} is not a Salesforce API version (expected digits.digits, e.g. \"{DEFAULT_SALESFORCE_API_VERSION}\")"
                ))
            }),
        }
    }
}

/// `[crm] kind`: the CRMs offboard has a client for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmKind {
    /// Zendesk Sell (API v2); retires on 2027-08-31.
    ZendeskSell,
    /// Pipedrive (API v1 and v2).
    Pipedrive,
    /// HubSpot (CRM v3, settings v3), with a private app's token.
    Hubspot,
    /// Salesforce (REST API, `crm.api_version`), with an OAuth access token and
    /// the org's instance URL as `base_url`.
    Salesforce,
}

/// `[crm] seat_executor`: who deactivates, deletes or reactivates a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatExecutor {
    /// offboard, through the CRM's API, wherever the CRM's API can make the change
    /// (a task for the admin for a change it cannot make), verified by reading the
    /// user back.
    Api,
    /// An admin, in the CRM's UI, asked by a task; offboard polls the user until
    /// the change shows.
    Manual,
}

/// `[[sources]]`: one HR system posting to `/webhooks/{name}`.
///
/// Only the shape is checked here; [`crate::ingest`] compiles the scheme and the
/// mapping once at start-up (and `offboard sources`), naming the key on any error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The route segment (`POST /webhooks/{name}`) and the `source` metrics label;
    /// unique among sources.
    pub name: String,
    /// Signature scheme: `standard_webhooks`, a preset (`bamboohr`, `hibob`, `gusto`,
    /// `deel`, `github`), `hmac` or `static_token`.
    pub scheme: String,
    /// Env var with comma-separated secrets (two during rotation).
    pub secrets_env: Option<String>,
    /// File with one secret per line.
    pub secrets_file: Option<PathBuf>,
    /// Allowed clock skew for signed timestamps.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
    /// Canonical field → JSON Pointer into the payload (or a `{/a} {/b}` template).
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Canonical field → (payload value → canonical value), applied after `map`;
    /// the key `"*"` catches every other value.
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Canonical field → constant used when the mapped payload has no value.
    #[serde(default)]
    pub defaults: BTreeMap<String, serde_json::Value>,
    /// JSON Pointer to an array: one event per element, `map` relative to it.
    pub each: Option<String>,
    /// Where the event id comes from: `header:NAME`, a JSON Pointer, or
    /// `body_sha256` (default: the scheme's message id, the payload's `id`, the hash).
    pub event_id: Option<String>,
    /// Body encoding: `auto` (by Content-Type), `json` or `form`.
    #[serde(default = "default_format")]
    pub format: String,
    /// Form bodies: the field that carries a JSON document (default `payload`).
    pub form_field: Option<String>,
    /// `scheme = "hmac"`: the whole scheme; with a preset: fields that override it.
    pub hmac: Option<HmacConfig>,
    /// `scheme = "static_token"`: the header that must equal a secret.
    pub token_header: Option<String>,
    /// The sender's set-up ping: answered 200 `{"ping":true}`, no job.
    pub ping: Option<PingConfig>,
}

/// `[sources.hmac]`: a configurable HMAC signature (every field overrides a preset).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// Header carrying the signature.
    pub header: Option<String>,
    /// Text before the encoded digest, e.g. `sha256=`.
    pub prefix: Option<String>,
    /// `sha256` or `sha512`.
    pub algorithm: Option<String>,
    /// `hex` (lower-case) or `base64`.
    pub encoding: Option<String>,
    /// What is signed: a template over `{body}`, `{timestamp}`, `{message_id}`, `{method}`.
    pub signed: Option<String>,
    /// Header carrying the signed timestamp.
    pub timestamp_header: Option<String>,
    /// `unix` (seconds), `rfc3339` or `auto` (either).
    pub timestamp_format: Option<String>,
    /// Header carrying the sender's message id (the dedupe key).
    pub message_id_header: Option<String>,
}

/// `[sources.ping]`: how to recognise the sender's set-up ping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingConfig {
    /// The whole body (trimmed; a JSON string counts too), e.g. `Ping test`.
    pub body: Option<String>,
    /// A JSON Pointer that identifies a ping…
    pub pointer: Option<String>,
    /// …when it equals this value (absent: when it exists at all).
    pub equals: Option<serde_json::Value>,
    /// Whether the ping must carry a valid signature (default true).
    #[serde(default = "default_true")]
    pub signed: bool,
}

fn default_tolerance() -> u64 {
    300
}

fn default_format() -> String {
    "auto".into()
}

fn default_true() -> bool {
    true
}

/// `[policy]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Path of the policy file.
    pub file: PathBuf,
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Env var holding the admin API bearer token.
    pub token_env: Option<String>,
    /// File holding the admin API bearer token.
    pub token_file: Option<PathBuf>,
}

/// `[safety]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// Plan and audit, mutate nothing.
    pub dry_run: bool,
    /// Beyond this, deletions wait for approval.
    pub max_deletions_per_hour: u32,
    /// Beyond this, offboardings wait for approval.
    pub max_offboardings_per_hour: u32,
}

/// `[worker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Lease length; heartbeats renew it at a third of this.
    pub lease_secs: u64,
    /// Failed attempts before a job is `failed`.
    pub max_attempts: u32,
    /// How often the manual seat step re-checks the CRM.
    pub verify_interval_secs: u64,
    /// After this the job goes to `needs_review`.
    pub verify_deadline_hours: u64,
    /// How often an idle worker looks for runnable jobs.
    pub poll_interval_ms: u64,
    /// Jobs one worker process runs at once.
    pub concurrency: usize,
}

/// `[privacy]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Hash emails in logs and API output.
    pub redact_emails: bool,
}

/// `[console]` (DESIGN.md §11): the ops console a receiver serves under
/// `/console`, signed in with the admin token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve `/console` at all (receiver role only).
    pub enabled: bool,
    /// How long a sign-in lasts; the cookie carries its expiry, signed.
    pub session_hours: u64,
    /// Drops the cookie's `Secure` flag, for plain-HTTP use on localhost only:
    /// browsers send a `Secure` cookie over HTTPS alone.
    pub insecure_cookie: bool,
    /// Sign-in attempts accepted per minute by one process, from every client
    /// together (the burst too); more are answered 429 before the token is compared.
    pub sign_in_per_minute: u32,
    /// Seconds between the job page's refreshes while the job is still moving.
    pub refresh_secs: u64,
}

/// `[scim]` (DESIGN.md §10)
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// Env var holding the bearer token identity providers send.
    pub token_env: Option<String>,
    /// File holding that token.
    pub token_file: Option<PathBuf>,
    /// `termination.kind` of the events a deprovisioning makes (the provider says
    /// only "gone", never why).
    #[serde(default = "default_scim_termination_kind")]
    pub termination_kind: String,
    /// `[scim.map]`: canonical field ← JSON Pointer into the SCIM User resource, for
    /// what the defaults don't take (e.g. `employee.country` from an address).
    #[serde(default)]
    pub map: BTreeMap<String, String>,
}

fn default_scim_termination_kind() -> String {
    "other".to_owned()
}

/// The source name SCIM's events are stored and deduped under.
pub const SCIM_SOURCE: &str = "scim";

/// A configuration problem; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The `--config` path, as given (relative to the working directory).
        path: PathBuf,
        /// Why it could not be read (absent, permissions, not a file).
        source: std::io::Error,
    },
    /// A key is missing or has the wrong type.
    #[error("config: {0}")]
    Invalid(String),
    /// A secret named by the config is not available.
    #[error("config key {key}: {problem}")]
    Secret {
        /// The config key naming it, e.g. `crm.token_env` or `sources[0] (bamboohr)`.
        key: String,
        /// What is wrong, never the secret itself.
        problem: String,
    },
}

impl Config {
    /// Loads defaults + `path` (which must exist unless `optional`) + env.
    pub fn load(path: &Path, optional: bool) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if path.exists() {
            std::fs::metadata(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            figment = figment.merge(Toml::file_exact(path));
        } else if !optional {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
            });
        }
        Self::from_figment(figment.merge(Env::prefixed("OFFBOARD__").split("__")))
    }

    /// Defaults + the given TOML text (tests and the demo build configs this way).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(DEFAULTS)).merge(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|e| {
            // figment errors can chain; each names its key path.
            let msgs: Vec<String> = e.into_iter().map(|e| describe(&e)).collect();
            ConfigError::Invalid(msgs.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::Invalid(format!("{key}: {why}")));
        if self.server.max_body_bytes == 0 {
            return bad("server.max_body_bytes", "must be at least 1");
        }
        if !(self.store.url.starts_with("sqlite:")
            || self.store.url.starts_with("postgres://")
            || self.store.url.starts_with("postgresql://"))
        {
            return bad("store.url", "expected sqlite://PATH or postgres://…");
        }
        if self.store.unavailable_after_ms == 0 {
            return bad("store.unavailable_after_ms", "must be at least 1");
        }
        if self.store.keep_finished_days > MAX_KEEP_FINISHED_DAYS {
            return bad(
                "store.keep_finished_days",
                "at most 36500 (100 years); 0 keeps finished jobs forever",
            );
        }
        if !matches!(
            self.store.sqlite_synchronous.as_str(),
            "full" | "normal" | "extra"
        ) {
            return bad("store.sqlite_synchronous", "expected full, normal or extra");
        }
        if url::Url::parse(&self.crm.base_url).is_err() {
            return bad("crm.base_url", "not a URL");
        }
        if self.crm.kind != CrmKind::ZendeskSell && self.crm.base_url.contains("api.getbase.com") {
            return bad(
                "crm.base_url",
                "still Zendesk Sell's API; set the configured CRM's URL (Pipedrive: https://yourcompany.pipedrive.com, HubSpot: https://api.hubapi.com, Salesforce: https://yourdomain.my.salesforce.com)",
            );
        }
        if self.crm.kind == CrmKind::Salesforce {
            self.crm.salesforce_api_version()?;
        } else if self.crm.api_version.is_some() {
            return bad(
                "crm.api_version",
                "only Salesforce has an API version to choose; remove it or set kind = \"salesforce\"",
            );
        }
        if self.crm.requests_per_second == 0 {
            return bad("crm.requests_per_second", "must be at least 1");
        }
        if self.crm.max_in_flight == 0 {
            return bad("crm.max_in_flight", "must be at least 1");
        }
        if self.worker.lease_secs < 3 {
            return bad("worker.lease_secs", "must be at least 3");
        }
        if self.worker.max_attempts == 0 {
            return bad("worker.max_attempts", "must be at least 1");
        }
        if self.worker.concurrency == 0 {
            return bad("worker.concurrency", "must be at least 1");
        }
        if !(1..=24 * 30).contains(&self.console.session_hours) {
            return bad("console.session_hours", "must be between 1 and 720");
        }
        if self.console.sign_in_per_minute == 0 {
            return bad("console.sign_in_per_minute", "must be at least 1");
        }
        if self.console.refresh_secs == 0 {
            return bad("console.refresh_secs", "must be at least 1");
        }
        if let Some(scim) = &self.scim {
            if offboard_domain::TerminationKind::parse(&scim.termination_kind).is_none() {
                return bad(
                    "scim.termination_kind",
                    "expected one of voluntary, involuntary, layoff, retirement, contract_end, deceased, other",
                );
            }
            if let Some(i) = self.sources.iter().position(|s| s.name == SCIM_SOURCE) {
                return bad(
                    &format!("sources[{i}].name"),
                    "\"scim\" is the source name of [scim]'s events; name the webhook source otherwise",
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return bad(
                    &format!("sources[{i}].name"),
                    "use letters, digits, - and _ only",
                );
            }
            if !seen.insert(&s.name) {
                return bad(&format!("sources[{i}].name"), "duplicate source name");
            }
        }
        Ok(())
    }

    /// Reads the CRM API token from `crm.token_env` (first) or `crm.token_file`,
    /// trimmed; an unset or empty one is a [`ConfigError::Secret`] naming the key.
    pub fn crm_token(&self) -> Result<Secret, ConfigError> {
        read_secret(
            "crm",
            self.crm.token_env.as_deref(),
            self.crm.token_file.as_deref(),
        )
    }

    /// Reads the SCIM bearer token from `scim.token_env` or `scim.token_file`; `None`
    /// when there is no `[scim]` section.
    pub fn scim_token(&self) -> Result<Option<Secret>, ConfigError> {
        self.scim
            .as_ref()
            .map(|scim| {
                read_secret(
                    "scim",
                    scim.token_env.as_deref(),
                    scim.token_file.as_deref(),
                )
            })
            .transpose()
    }

    /// Reads the admin API token from `admin.token_env` or `admin.token_file`, like
    /// [`Self::crm_token`]; only a process that serves the admin API asks for it.
    pub fn admin_token(&self) -> Result<Secret, ConfigError> {
        read_secret(
            "admin",
            self.admin.token_env.as_deref(),
            self.admin.token_file.as_deref(),
        )
    }
}

fn describe(e: &figment::Error) -> String {
    let key = e.path.join(".");
    if key.is_empty() {
        e.kind.to_string()
    } else {
        format!("{key}: {}", e.kind)
    }
}

impl SourceConfig {
    /// The source's secrets (several during rotation).
    pub fn secrets(&self, index: usize) -> Result<Vec<Secret>, ConfigError> {
        let key = format!("sources[{index}] ({})", self.name);
        let raw = read_secret(
            &key,
            self.secrets_env.as_deref(),
            self.secrets_file.as_deref(),
        )?;
        let list: Vec<Secret> = raw
            .expose()
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Secret::new(s.to_owned()))
            .collect();
        if list.is_empty() {
            return Err(ConfigError::Secret {
                key: format!("{key}.secrets_env"),
                problem: "holds no secret".into(),
            });
        }
        Ok(list)
    }
}

/// Reads a secret from `<section>.token_env`/`secrets_env` or the matching `_file`.
fn read_secret(
    section: &str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Secret, ConfigError> {
    let (env_key, file_key) = if section.starts_with("sources") {
        ("secrets_env", "secrets_file")
    } else {
        ("token_env", "token_file")
    };
    read_named(section, (env_key, env), (file_key, file))
}

/// Reads a secret from the env var named by `section.<env key>` (first) or the
/// file named by `section.<file key>`, trimmed; errors name the key, never the value.
fn read_named(
    section: &str,
    (env_key, env): (&str, Option<&str>),
    (file_key, file): (&str, Option<&Path>),
) -> Result<Secret, ConfigError> {
    if let Some(var) = env.filter(|v| !v.trim().is_empty()) {
        return match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim().to_owned())),
            _ => Err(ConfigError::Secret {
                key: format!("{section}.{env_key}"),
                problem: format!("environment variable {var} is not set or empty"),
            }),
        };
    }
    if let Some(path) = file {
        return match std::fs::read_to_string(path) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim().to_owned())),
            Ok(_) => Err(ConfigError::Secret {
                key: format!("{section}.{file_key}"),
                problem: format!("{} is empty", path.display()),
            }),
            Err(e) => Err(ConfigError::Secret {
                key: format!("{section}.{file_key}"),
                problem: format!("cannot read {}: {e}", path.display()),
            }),
        };
    }
    Err(ConfigError::Secret {
        key: format!("{section}.{env_key}"),
        problem: format!(
            "not set: name an environment variable ({env_key}) or a file ({file_key})"
        ),
    })
}

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value read from the environment or a file (or a test's literal).
    pub fn new(value: String) -> Self {
        Self(value)
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_env_names_keys() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.max_body_bytes, 65536);
        assert_eq!(c.worker.lease_secs, 30);
        let err = Config::from_toml("[server]\nmax_body_bytes = \"big\"").unwrap_err();
        assert!(err.to_string().contains("server.max_body_bytes"), "{err}");
        let err = Config::from_toml("[server]\nlisten = \"0.0.0.0:1\"\nbogus = 1").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn salesforce_api_version_defaults_normalizes_and_names_its_key() {
        let sf = |extra: &str| {
            Config::from_toml(&format!(
                "[crm]\nkind = \"salesforce\"\nbase_url = \"https://acme.my.salesforce.com\"\n{extra}"
            ))
        };
        let c = sf("").unwrap();
        assert_eq!(
            c.crm.salesforce_api_version().unwrap(),
            DEFAULT_SALESFORCE_API_VERSION
        );
        let c = sf("api_version = \"v62.0\"").unwrap();
        assert_eq!(c.crm.salesforce_api_version().unwrap(), "62.0");
        for bad in ["62", "v62.", "62.0.1", "latest", ""] {
            let err = sf(&format!("api_version = \"{bad}\""))
                .unwrap_err()
                .to_string();
            assert!(err.contains("crm.api_version"), "{bad:?}: {err}");
        }
        let err = Config::from_toml(
            "[crm]\nkind = \"hubspot\"\nbase_url = \"https://api.hubapi.com\"\napi_version = \"62.0\"",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("crm.api_version"), "{err}");
        let shipped = Config::from_toml(include_str!("../../../config/offboard.salesforce.toml"))
            .expect("config/offboard.salesforce.toml");
        assert_eq!(shipped.crm.kind, CrmKind::Salesforce);
        assert_eq!(shipped.crm.salesforce_api_version().unwrap(), "66.0");
        assert_eq!(normalize_api_version(" V66.0 ").as_deref(), Some("66.0"));
        assert_eq!(normalize_api_version("v"), None);
    }

    #[test]
    fn keep_finished_days_defaults_to_400_allows_0_and_refuses_nonsense() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.store.keep_finished_days, 400);
        let c = Config::from_toml("[store]\nkeep_finished_days = 0").unwrap();
        assert_eq!(c.store.keep_finished_days, 0, "0 keeps everything");
        for bad in ["-1", "\"90d\"", "36501"] {
            let err = Config::from_toml(&format!("[store]\nkeep_finished_days = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("keep_finished_days"), "{bad}: {err}");
        }
    }

    #[test]
    fn missing_secret_names_the_key() {
        let c = Config::from_toml("[crm]\ntoken_env = \"OFFBOARD_TEST_SURELY_UNSET_VAR\"").unwrap();
        let err = c.crm_token().unwrap_err().to_string();
        assert!(
            err.contains("crm.token_env") && err.contains("OFFBOARD_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );
        assert_eq!(
            format!("{:?}", Secret::new("hunter2".into())),
            "Secret(***)"
        );
    }
}
