//! What a cause means for whom: [`Notifier::compose`] turns one step's [`Cause`]
//! into the outbox rows to write with it, one per recipient and channel, each
//! rendered now (subject, plain text and HTML; or the webhook's JSON) under an id
//! derived from the job, the cause and the recipient. Pure: no IO, no clock but
//! the `now` it is given.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[cfg(doc)]
use super::settings::EVENTS;
use super::settings::Settings;
use crate::{
    config::WebhookFormat,
    domain::JobState,
    store::{Channel, Job, NewNotification},
};

/// Who the policy says to tell, from the decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Audience {
    /// The decision's `notify` addresses.
    pub notify: Vec<String>,
    /// Whether new owners are told what they received.
    pub new_owners: bool,
}

impl Audience {
    /// The audience a stored plan (a serialized `policy::Decision`) names; a plan
    /// without the fields tells nobody extra and tells new owners (the default).
    pub fn from_plan(plan: &Value) -> Self {
        Self {
            notify: plan["notify"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            new_owners: plan["notify_new_owners"].as_bool().unwrap_or(true),
        }
    }
}

/// What happened, with what the message says about it.
#[derive(Debug, Clone)]
pub enum Cause {
    /// The policy decided.
    Decided {
        /// The matching rule.
        rule: String,
        /// The final action.
        action: String,
        /// When the seat step is due, if later.
        run_at: Option<DateTime<Utc>>,
    },
    /// Every resource's open records are with their new owner.
    Reassigned {
        /// The new owner's e-mail.
        to: String,
        /// Records moved, per resource.
        moved: BTreeMap<String, u64>,
        /// The CRM's name.
        crm: String,
    },
    /// The seat change was made through the API or asked of the CRM admin.
    SeatRequested {
        /// `deactivate` or `delete`.
        action: String,
        /// `api` or `manual`.
        executor: String,
        /// The CRM's name.
        crm: String,
        /// Where in the CRM an admin makes the change.
        admin_path: String,
        /// The admin task's text (manual only).
        task: Option<String>,
    },
    /// The CRM shows the change.
    SeatVerified {
        /// `deactivate` or `delete`.
        action: String,
        /// The CRM's name.
        crm: String,
    },
    /// The job waits for a person.
    NeedsReview {
        /// Why.
        reason: String,
    },
    /// The job failed (or will, when this is its last retry).
    Failed {
        /// Why.
        error: String,
    },
}

impl Cause {
    /// The event type.
    pub fn event(&self) -> &'static str {
        match self {
            Self::Decided { .. } => "job.decided",
            Self::Reassigned { .. } => "records.reassigned",
            Self::SeatRequested { .. } => "seat.requested",
            Self::SeatVerified { .. } => "seat.verified",
            Self::NeedsReview { .. } => "job.needs_review",
            Self::Failed { .. } => "job.failed",
        }
    }

    /// The event's `data`, beside the job's own fields.
    fn data(&self) -> Value {
        match self {
            Self::Decided {
                rule,
                action,
                run_at,
            } => json!({ "rule": rule, "action": action, "run_at": run_at }),
            Self::Reassigned { to, moved, crm } => {
                json!({ "to": to, "moved": moved, "total": moved.values().sum::<u64>(), "crm": crm })
            }
            Self::SeatRequested {
                action,
                executor,
                crm,
                ..
            } => json!({ "action": action, "executor": executor, "crm": crm }),
            Self::SeatVerified { action, crm } => json!({ "action": action, "crm": crm }),
            Self::NeedsReview { reason } => json!({ "reason": reason }),
            Self::Failed { error } => json!({ "error": error }),
        }
    }
}

/// Composes notifications from the configured channels (and, for the
/// [`Dispatcher`](super::Dispatcher), sends them).
#[derive(Debug, Clone)]
pub struct Notifier {
    /// The channels and retry settings.
    pub settings: Settings,
}

impl Notifier {
    /// A notifier over `settings`.
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }

    /// One that composes nothing.
    pub fn disabled() -> Self {
        Self::new(Settings::disabled())
    }

    /// The rows to write with the step that caused `cause` for `job`, at `now`.
    /// `only_if` is set for the causes a finish's state decides (review, failure).
    pub fn compose(
        &self,
        job: &Job,
        audience: &Audience,
        cause: &Cause,
        now: DateTime<Utc>,
    ) -> Vec<NewNotification> {
        let s = &self.settings;
        if !s.enabled() {
            return Vec::new();
        }
        let event = cause.event();
        let (key, only_if) = match cause {
            // A job may come back to review or fail again after an operator's
            // retry: each attempt's end is its own cause.
            Cause::NeedsReview { .. } => (
                format!("{event}@{}", job.attempt),
                Some(JobState::NeedsReview),
            ),
            Cause::Failed { .. } => (format!("{event}@{}", job.attempt), Some(JobState::Failed)),
            _ => (event.to_owned(), None),
        };
        let mut out = Vec::new();
        let body = webhook_body(job, cause, now);
        for endpoint in s
            .webhooks
            .iter()
            .filter(|e| e.events.iter().any(|x| x == event))
        {
            let message = match endpoint.format {
                WebhookFormat::Standard => body.clone(),
                WebhookFormat::Slack => json!({ "text": summary(job, cause) }),
            };
            out.push(NewNotification {
                id: notification_id(&job.id, &key, Channel::Webhook, &endpoint.name),
                event: event.to_owned(),
                channel: Channel::Webhook,
                target: endpoint.name.clone(),
                message,
                only_if,
            });
        }
        if s.email.is_some() {
            for (to, mail) in mails(
                job,
                audience,
                cause,
                s.admin_email.as_ref().map(|e| e.as_str()),
            ) {
                out.push(NewNotification {
                    id: notification_id(&job.id, &key, Channel::Email, &to),
                    event: event.to_owned(),
                    channel: Channel::Email,
                    message: json!({ "to": to, "subject": mail.subject, "text": mail.text, "html": mail.html }),
                    target: to,
                    only_if,
                });
            }
        }
        out
    }
}

/// `ntf_` and 32 hex digits of SHA-256 over the job, the cause, the channel and
/// the recipient (addresses compared without case): the same cause for the same
/// recipient always gets the same id.
fn notification_id(job_id: &str, cause: &str, channel: Channel, target: &str) -> String {
    let digest = Sha256::digest(
        format!(
            "{job_id}\n{cause}\n{}\n{}",
            channel.as_str(),
            target.to_lowercase()
        )
        .as_bytes(),
    );
    let mut hex = hex::encode(digest);
    hex.truncate(32);
    format!("ntf_{hex}")
}

/// The Standard Webhooks style payload: `type`, `timestamp`, `data`.
fn webhook_body(job: &Job, cause: &Cause, now: DateTime<Utc>) -> Value {
    let mut data = json!({
        "job_id": job.id,
        "employee": { "email": job.event.employee.email.as_str(), "name": job.event.employee.name },
        "event_type": job.event.event_type.as_str(),
    });
    if let (Some(d), Value::Object(extra)) = (data.as_object_mut(), cause.data()) {
        d.extend(extra);
    }
    json!({ "type": cause.event(), "timestamp": now, "data": data })
}

fn leaver(job: &Job) -> String {
    let email = job.event.employee.email.as_str();
    match job
        .event
        .employee
        .name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
    {
        Some(name) => format!("{name} <{email}>"),
        None => email.to_owned(),
    }
}

/// One line, for chat (Slack) and the e-mails' first paragraph.
fn summary(job: &Job, cause: &Cause) -> String {
    let who = leaver(job);
    match cause {
        Cause::Decided { rule, action, .. } => {
            format!(
                "offboard decided to {action} {who} (rule {rule:?}); job {}",
                job.id
            )
        }
        Cause::Reassigned { to, moved, crm } => format!(
            "offboard moved {} {crm} records of {who} to {to} ({}); job {}",
            moved.values().sum::<u64>(),
            counts(moved),
            job.id
        ),
        Cause::SeatRequested {
            action,
            executor,
            crm,
            ..
        } => match executor.as_str() {
            "api" => format!(
                "offboard made the {action} of {who} through {crm}'s API; job {}",
                job.id
            ),
            _ => format!(
                "offboard asked the {crm} admin to {action} {who}; job {}",
                job.id
            ),
        },
        Cause::SeatVerified { action, crm } => {
            format!("{crm} shows the {action} of {who}: done; job {}", job.id)
        }
        Cause::NeedsReview { reason } => {
            format!(
                "the offboarding of {who} needs review: {reason}; job {}",
                job.id
            )
        }
        Cause::Failed { error } => {
            format!("the offboarding of {who} failed: {error}; job {}", job.id)
        }
    }
}

fn counts(moved: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = moved
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

/// One e-mail's content.
struct Mail {
    subject: String,
    text: String,
    html: String,
}

/// The e-mails a cause sends: (recipient, content), one per address (compared
/// without case; the CRM admin's version wins over the policy's).
fn mails(
    job: &Job,
    audience: &Audience,
    cause: &Cause,
    admin: Option<&str>,
) -> Vec<(String, Mail)> {
    let who = leaver(job);
    let mut out: Vec<(String, Mail)> = Vec::new();
    let add = |to: &str, mail: Mail, out: &mut Vec<(String, Mail)>| {
        let to = to.trim().to_lowercase();
        if to.is_empty() {
            return;
        }
        match out.iter_mut().find(|(t, _)| *t == to) {
            Some(slot) => slot.1 = mail,
            None => out.push((to, mail)),
        }
    };
    let footer = format!(
        "Job {} — the whole story is in offboard's audit trail (offboard jobs show {}).",
        job.id, job.id
    );
    let to_policy = |subject: String, lines: Vec<String>| render(subject, lines, &footer);
    match cause {
        Cause::Decided { .. } => {}
        Cause::Reassigned { to, moved, crm } => {
            let total: u64 = moved.values().sum();
            if audience.new_owners && total > 0 {
                let mut lines = vec![format!(
                    "{who} is leaving, and offboard moved {total} of their open {crm} records to you:"
                )];
                lines.extend(
                    moved
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(r, n)| format!("  • {n} {r}")),
                );
                lines.push(format!("They are in {crm} under your name now."));
                add(
                    to,
                    to_policy(
                        format!("offboard: {total} {crm} records of {who} are now yours"),
                        lines,
                    ),
                    &mut out,
                );
            }
        }
        Cause::SeatRequested {
            action,
            executor,
            crm,
            admin_path,
            task,
        } => {
            let line = summary(job, cause);
            for a in &audience.notify {
                add(
                    a,
                    to_policy(
                        format!("offboard: {action} of {who} requested in {crm}"),
                        vec![line.clone()],
                    ),
                    &mut out,
                );
            }
            if executor == "manual"
                && let Some(admin) = admin
            {
                let mut lines = vec![format!(
                    "Please {} the {crm} user {who} in {admin_path}.",
                    action.to_uppercase()
                )];
                if let Some(task) = task {
                    lines.push(format!(
                        "The task offboard created in {crm} for you says: {task}"
                    ));
                }
                lines.push(format!(
                    "offboard checks {crm} and closes the job once it shows the change."
                ));
                add(
                    admin,
                    to_policy(
                        format!("offboard: please {} {who} in {crm}", action.to_uppercase()),
                        lines,
                    ),
                    &mut out,
                );
            }
        }
        Cause::SeatVerified { action, crm } => {
            for a in &audience.notify {
                add(
                    a,
                    to_policy(
                        format!("offboard: {who}: {action} done in {crm}"),
                        vec![summary(job, cause)],
                    ),
                    &mut out,
                );
            }
        }
        Cause::NeedsReview { .. } | Cause::Failed { .. } => {
            let subject = match cause {
                Cause::NeedsReview { .. } => {
                    format!("offboard: the offboarding of {who} needs review")
                }
                _ => format!("offboard: the offboarding of {who} failed"),
            };
            for a in &audience.notify {
                add(
                    a,
                    to_policy(subject.clone(), vec![summary(job, cause)]),
                    &mut out,
                );
            }
        }
    }
    out
}

/// The plain-text and HTML bodies of the same lines.
fn render(subject: String, lines: Vec<String>, footer: &str) -> Mail {
    let mut text = lines.join("\n");
    text.push_str("\n\n");
    text.push_str(footer);
    text.push('\n');
    let mut html = String::from("<!doctype html><html><body>");
    let mut in_list = false;
    for line in &lines {
        if let Some(item) = line.strip_prefix("  • ") {
            if !in_list {
                html.push_str("<ul>");
                in_list = true;
            }
            html.push_str(&format!("<li>{}</li>", escape(item)));
        } else {
            if in_list {
                html.push_str("</ul>");
                in_list = false;
            }
            html.push_str(&format!("<p>{}</p>", escape(line)));
        }
    }
    if in_list {
        html.push_str("</ul>");
    }
    html.push_str(&format!(
        "<p><small>{}</small></p></body></html>",
        escape(footer)
    ));
    Mail {
        subject,
        text,
        html,
    }
}

/// HTML-escapes text (every value in a notification came from a sender or a CRM).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_per_cause_and_recipient() {
        let a = notification_id("j1", "seat.requested", Channel::Email, "Legal@Example.com");
        assert_eq!(
            a,
            notification_id("j1", "seat.requested", Channel::Email, "legal@example.com")
        );
        assert_ne!(
            a,
            notification_id("j1", "seat.verified", Channel::Email, "legal@example.com")
        );
        assert_ne!(
            a,
            notification_id("j2", "seat.requested", Channel::Email, "legal@example.com")
        );
        assert!(a.starts_with("ntf_") && a.len() == 36, "{a}");
    }

    #[test]
    fn html_bodies_escape_what_senders_wrote() {
        let mail = render(
            "s".into(),
            vec!["<script>x</script> & co".into(), "  • 3 deals".into()],
            "f",
        );
        assert!(
            mail.html
                .contains("&lt;script&gt;x&lt;/script&gt; &amp; co"),
            "{}",
            mail.html
        );
        assert!(
            mail.html.contains("<ul><li>3 deals</li></ul>"),
            "{}",
            mail.html
        );
        assert!(
            mail.text.contains("<script>"),
            "plain text stays as written"
        );
    }
}
