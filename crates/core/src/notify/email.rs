//! E-mail over SMTP with `lettre`: one conversation per message (no pool: a
//! notification is rare, and a fresh connection never carries a broken one's
//! state), STARTTLS on `smtp://` when offered (required with `require_tls`),
//! implicit TLS on `smtps://`. The message's `Message-ID` carries the
//! notification's stable id, so a repeat after a crash is recognisable.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use serde_json::Value;

use super::settings::{EmailChannel, TlsMode};

/// Why one delivery attempt failed (the store decides whether to try again).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The stored message lacks a field it was written with (corrupt row).
    #[error("stored message: {0}")]
    Message(String),
    /// The channel the notification was written for is not configured any more.
    #[error("{0}")]
    NotConfigured(String),
    /// The SMTP server refused or could not be reached.
    #[error("smtp: {0}")]
    Smtp(String),
    /// The webhook receiver answered other than 2xx, or not at all.
    #[error("webhook: {0}")]
    Webhook(String),
}

/// Sends one stored e-mail notification (`message`: `to`, `subject`, `text`,
/// `html`) with `Message-ID: <id@domain>`.
pub(super) async fn send(
    channel: &EmailChannel,
    id: &str,
    message: &Value,
    timeout: Duration,
) -> Result<(), SendError> {
    let field = |k: &str| {
        message[k]
            .as_str()
            .ok_or_else(|| SendError::Message(format!("notification {id} has no {k}")))
    };
    let to: Mailbox = field("to")?
        .parse()
        .map_err(|e| SendError::Message(format!("notification {id}: recipient: {e}")))?;
    let email = Message::builder()
        .from(channel.from.clone())
        .to(to)
        .subject(field("subject")?)
        .message_id(Some(format!("<{id}@{}>", channel.id_domain)))
        .multipart(MultiPart::alternative_plain_html(
            field("text")?.to_owned(),
            field("html")?.to_owned(),
        ))
        .map_err(|e| SendError::Message(format!("notification {id}: {e}")))?;
    let transport = transport(channel, timeout)?;
    transport
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| SendError::Smtp(e.to_string()))
}

fn transport(
    channel: &EmailChannel,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let params =
        || TlsParameters::new(channel.host.clone()).map_err(|e| SendError::Smtp(e.to_string()));
    let tls = match channel.tls {
        TlsMode::Opportunistic => Tls::Opportunistic(params()?),
        TlsMode::Required => Tls::Required(params()?),
        TlsMode::Implicit => Tls::Wrapper(params()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(channel.host.clone())
        .port(channel.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some((user, password)) = &channel.credentials {
        builder = builder.credentials(Credentials::new(
            user.expose().to_owned(),
            password.expose().to_owned(),
        ));
    }
    Ok(builder.build())
}
