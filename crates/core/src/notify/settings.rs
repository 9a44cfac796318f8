//! [`Settings`]: what `[notify]` (and `[crm] admin_email`) configure, validated
//! once at start-up into channels ready to send with. Secrets are read here, from
//! env vars or files the config names; a missing one is a configuration error.

use std::time::Duration;

use lettre::message::Mailbox;

use crate::{
    config::{Config, ConfigError, Secret, WebhookFormat},
    domain::Email,
    signing,
    store::DeliveryRetry,
};

/// Every event type, in the order a job meets them; `[[notify.webhooks]] events`
/// chooses among them.
pub const EVENTS: [&str; 6] = [
    "job.decided",
    "records.reassigned",
    "seat.requested",
    "seat.verified",
    "job.needs_review",
    "job.failed",
];

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `smtp://`: STARTTLS when the server offers it, plain otherwise.
    Opportunistic,
    /// `smtp://` with `require_tls`: STARTTLS or no mail.
    Required,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// `[notify.email]`, resolved.
#[derive(Debug, Clone)]
pub struct EmailChannel {
    /// SMTP server host.
    pub host: String,
    /// SMTP server port (587 for `smtp://`, 465 for `smtps://` unless given).
    pub port: u16,
    /// STARTTLS or implicit TLS.
    pub tls: TlsMode,
    /// User name and password, when the server wants them.
    pub credentials: Option<(Secret, Secret)>,
    /// The sender.
    pub from: Mailbox,
    /// The right-hand side of every `Message-ID` (the sender's domain).
    pub id_domain: String,
}

/// One `[[notify.webhooks]]` endpoint, resolved.
#[derive(Clone)]
pub struct Endpoint {
    /// Its configured name (the notification's target).
    pub name: String,
    /// Where events go.
    pub url: url::Url,
    /// The signing key (decoded `whsec_…`).
    pub key: Vec<u8>,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Standard or Slack.
    pub format: WebhookFormat,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("key", &"***")
            .field("events", &self.events)
            .field("format", &self.format)
            .finish()
    }
}

/// Everything notifications need, from `[notify]` and `[crm] admin_email`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// When failed deliveries are retried and given up on.
    pub retry: DeliveryRetry,
    /// One attempt's time limit.
    pub timeout: Duration,
    /// SMTP, if configured.
    pub email: Option<EmailChannel>,
    /// Outbound webhooks.
    pub webhooks: Vec<Endpoint>,
    /// Who is e-mailed about a manual seat step (besides the CRM task).
    pub admin_email: Option<Email>,
}

impl Settings {
    /// No channel: nothing is composed, nothing is sent.
    pub fn disabled() -> Self {
        Self {
            retry: DeliveryRetry {
                base: Duration::from_secs(30),
                max: Duration::from_secs(3600),
                give_up_after: Duration::from_secs(24 * 3600),
            },
            timeout: Duration::from_secs(10),
            email: None,
            webhooks: Vec::new(),
            admin_email: None,
        }
    }

    /// Whether any channel is configured.
    pub fn enabled(&self) -> bool {
        self.email.is_some() || !self.webhooks.is_empty()
    }

    /// Validates `[notify]` and reads its secrets; every error names its key.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let n = &config.notify;
        let bad = |key: &str, why: String| ConfigError::Invalid(format!("{key}: {why}"));
        if n.retry_base_secs == 0 {
            return Err(bad("notify.retry_base_secs", "must be at least 1".into()));
        }
        if n.retry_max_secs < n.retry_base_secs {
            return Err(bad(
                "notify.retry_max_secs",
                "must be at least notify.retry_base_secs".into(),
            ));
        }
        if n.give_up_after_hours == 0 {
            return Err(bad(
                "notify.give_up_after_hours",
                "must be at least 1".into(),
            ));
        }
        if n.timeout_secs == 0 {
            return Err(bad("notify.timeout_secs", "must be at least 1".into()));
        }
        let email = n.email.as_ref().map(email_channel).transpose()?;
        let mut webhooks: Vec<Endpoint> = Vec::new();
        for (i, w) in n.webhooks.iter().enumerate() {
            let key = |k: &str| format!("notify.webhooks[{i}].{k}");
            if w.name.trim().is_empty() {
                return Err(bad(&key("name"), "must not be empty".into()));
            }
            if webhooks.iter().any(|e| e.name == w.name) {
                return Err(bad(
                    &key("name"),
                    format!("duplicate endpoint name {:?}", w.name),
                ));
            }
            let url = url::Url::parse(&w.url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| bad(&key("url"), "expected an http:// or https:// URL".into()))?;
            let events = match &w.events {
                None => EVENTS.iter().map(|e| (*e).to_owned()).collect(),
                Some(list) => {
                    for e in list {
                        if !EVENTS.contains(&e.as_str()) {
                            return Err(bad(
                                &key("events"),
                                format!("unknown event {e:?} (expected {})", EVENTS.join(", ")),
                            ));
                        }
                    }
                    list.clone()
                }
            };
            let secret = w.secret(i)?;
            let key_bytes = signing::key(secret.expose()).map_err(|e| ConfigError::Secret {
                key: key("secret_env"),
                problem: e.to_string(),
            })?;
            webhooks.push(Endpoint {
                name: w.name.clone(),
                url,
                key: key_bytes,
                events,
                format: w.format,
            });
        }
        let admin_email = match config.crm.admin_email.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(
                Email::parse(raw)
                    .map_err(|e| ConfigError::Invalid(format!("crm.admin_email: {e}")))?,
            ),
        };
        Ok(Self {
            retry: DeliveryRetry {
                base: Duration::from_secs(n.retry_base_secs),
                max: Duration::from_secs(n.retry_max_secs),
                give_up_after: Duration::from_secs(n.give_up_after_hours.saturating_mul(3600)),
            },
            timeout: Duration::from_secs(n.timeout_secs),
            email,
            webhooks,
            admin_email,
        })
    }
}

fn email_channel(c: &crate::config::EmailConfig) -> Result<EmailChannel, ConfigError> {
    let bad = |key: &str, why: String| ConfigError::Invalid(format!("notify.email.{key}: {why}"));
    let url =
        url::Url::parse(&c.smtp_url).map_err(|e| bad("smtp_url", format!("not a URL: {e}")))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("smtp_url", "has no host".into()))?
        .to_owned();
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "smtp_url",
            "must not carry credentials; use username_env and password_env".into(),
        ));
    }
    let (tls, default_port) = match url.scheme() {
        "smtp" if c.require_tls => (TlsMode::Required, 587),
        "smtp" => (TlsMode::Opportunistic, 587),
        "smtps" => (TlsMode::Implicit, 465),
        other => {
            return Err(bad(
                "smtp_url",
                format!("scheme {other:?}: expected smtp:// or smtps://"),
            ));
        }
    };
    let from: Mailbox = c
        .from
        .parse()
        .map_err(|e| bad("from", format!("not an e-mail address: {e}")))?;
    let id_domain = from.email.domain().to_owned();
    Ok(EmailChannel {
        host,
        port: url.port().unwrap_or(default_port),
        tls,
        credentials: c.credentials()?,
        from,
        id_domain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(notify: &str) -> Result<Settings, ConfigError> {
        Settings::from_config(&Config::from_toml(notify)?)
    }

    #[test]
    fn nothing_is_configured_by_default() {
        let s = settings("").unwrap();
        assert!(!s.enabled());
        assert_eq!(s.retry.give_up_after, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn every_mistake_names_its_key() {
        let cases = [
            (
                "[notify.email]\nsmtp_url = \"http://mail\"\nfrom = \"a@b.c\"",
                "notify.email.smtp_url",
            ),
            (
                "[notify.email]\nsmtp_url = \"smtp://u:p@mail\"\nfrom = \"a@b.c\"",
                "must not carry credentials",
            ),
            (
                "[notify.email]\nsmtp_url = \"smtp://mail\"\nfrom = \"nobody\"",
                "notify.email.from",
            ),
            (
                "[notify.email]\nsmtp_url = \"smtp://mail\"\nfrom = \"a@b.c\"\nusername_env = \"OFFBOARD_TEST_SURELY_UNSET_USER\"",
                "notify.email.username_env",
            ),
            (
                "[[notify.webhooks]]\nname = \"x\"\nurl = \"ftp://h\"\nsecret_env = \"PATH\"",
                "notify.webhooks[0].url",
            ),
            (
                "[[notify.webhooks]]\nname = \"x\"\nurl = \"http://h\"\nsecret_env = \"PATH\"\nevents = [\"seat.done\"]",
                "unknown event \"seat.done\"",
            ),
            (
                "[[notify.webhooks]]\nname = \"x\"\nurl = \"http://h\"\nsecret_env = \"OFFBOARD_TEST_SURELY_UNSET_SECRET\"",
                "notify.webhooks[0].secret_env",
            ),
            (
                "[notify]\ngive_up_after_hours = 0",
                "notify.give_up_after_hours",
            ),
        ];
        for (toml, want) in cases {
            let err = settings(toml).unwrap_err().to_string();
            assert!(err.contains(want), "{toml}: {err}");
        }
    }

    #[test]
    fn smtp_urls_choose_tls_and_ports() {
        let s = settings("[notify.email]\nsmtp_url = \"smtp://mail.internal\"\nfrom = \"offboard <o@example.com>\"").unwrap();
        let e = s.email.unwrap();
        assert_eq!(
            (e.port, e.tls, e.id_domain.as_str()),
            (587, TlsMode::Opportunistic, "example.com")
        );
        let s = settings("[notify.email]\nsmtp_url = \"smtp://mail:2525\"\nrequire_tls = true\nfrom = \"o@example.com\"").unwrap();
        assert_eq!(
            s.email.map(|e| (e.port, e.tls)),
            Some((2525, TlsMode::Required))
        );
        let s = settings("[notify.email]\nsmtp_url = \"smtps://mail\"\nfrom = \"o@example.com\"")
            .unwrap();
        assert_eq!(
            s.email.map(|e| (e.port, e.tls)),
            Some((465, TlsMode::Implicit))
        );
    }
}
