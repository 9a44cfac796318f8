//! [`Dispatcher`]: the delivery side of the outbox. It claims due notifications
//! under a lease (so two workers never send one attempt twice, and a crashed
//! worker's claim lapses), sends each once per claim, and records the answer; the
//! store decides when a failed one is tried again and when it is `dead`.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{compose::Notifier, email, email::SendError, webhook};
use crate::{
    domain::SharedClock,
    store::{Channel, ClaimedNotification, NotificationState, SharedStore},
};

/// Notifications claimed (and sent concurrently) per round.
const BATCH: usize = 16;

/// Sends what the outbox holds.
#[derive(Clone)]
pub struct Dispatcher {
    store: SharedStore,
    notifier: Arc<Notifier>,
    clock: SharedClock,
    owner: String,
    http: reqwest::Client,
}

impl Dispatcher {
    /// A dispatcher claiming as `owner` (the worker's id) on `store`'s and
    /// `clock`'s time.
    pub fn new(
        store: SharedStore,
        notifier: Arc<Notifier>,
        clock: SharedClock,
        owner: String,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(notifier.settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            store,
            notifier,
            clock,
            owner,
            http,
        }
    }

    /// Whether there is any channel to deliver to.
    pub fn enabled(&self) -> bool {
        self.notifier.settings.enabled()
    }

    /// A claim outlasts its attempt: three attempts' time, at least 30 s.
    fn lease(&self) -> Duration {
        (self.notifier.settings.timeout * 3).max(Duration::from_secs(30))
    }

    /// One round: claims up to a batch of due notifications and tries each once.
    /// Returns how many it claimed.
    pub async fn deliver_due(&self) -> usize {
        let claimed = match self
            .store
            .claim_notifications(&self.owner, BATCH, self.lease())
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim notifications");
                return 0;
            }
        };
        let n = claimed.len();
        join_all(claimed.into_iter().map(|c| self.attempt(c))).await;
        n
    }

    /// Rounds until nothing is due now (tests and the demo use this; each failed
    /// attempt is scheduled later, so it ends).
    pub async fn drain(&self) -> usize {
        let mut total = 0;
        loop {
            let n = self.deliver_due().await;
            total += n;
            if n == 0 {
                return total;
            }
        }
    }

    /// Delivers until `shutdown`, looking for due notifications every `every`.
    pub async fn run(self, shutdown: CancellationToken, every: Duration) {
        loop {
            while self.deliver_due().await > 0 && !shutdown.is_cancelled() {}
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {},
            }
        }
    }

    async fn attempt(&self, claimed: ClaimedNotification) {
        let n = &claimed.notification;
        let span = tracing::info_span!("notification", id = %n.id, job_id = %n.job_id, event = %n.event, channel = n.channel.as_str(), attempt = claimed.lease.attempt);
        self.attempt_in_span(claimed).instrument(span).await
    }

    async fn attempt_in_span(&self, claimed: ClaimedNotification) {
        let ClaimedNotification {
            notification: n,
            lease,
        } = claimed;
        let channel = n.channel.as_str();
        let sent = self.send(n.channel, &n.id, &n.target, &n.message).await;
        let outcome = match sent {
            Ok(()) => match self.store.notification_delivered(&lease).await {
                Ok(true) => {
                    tracing::info!(to = %n.target, "notification delivered");
                    "delivered"
                }
                Ok(false) => {
                    tracing::warn!(
                        "notification delivered after its claim lapsed; another worker may send it again (same id)"
                    );
                    "delivered"
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification delivered but not recorded; it will be sent again with the same id");
                    "delivered"
                }
            },
            Err(error) => {
                let error = error.to_string();
                match self
                    .store
                    .notification_failed(&lease, &error, &self.notifier.settings.retry)
                    .await
                {
                    Ok(Some(NotificationState::Dead)) => {
                        tracing::warn!(to = %n.target, %error, "notification given up on (dead)");
                        "dead"
                    }
                    Ok(_) => {
                        tracing::info!(to = %n.target, %error, "notification failed; will retry");
                        "retry"
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not record a failed delivery; the claim will lapse and it is tried again");
                        "retry"
                    }
                }
            }
        };
        metrics::counter!(crate::metrics::NOTIFICATIONS_TOTAL, "channel" => channel, "outcome" => outcome)
            .increment(1);
    }

    async fn send(
        &self,
        channel: Channel,
        id: &str,
        target: &str,
        message: &serde_json::Value,
    ) -> Result<(), SendError> {
        let s = &self.notifier.settings;
        match channel {
            Channel::Email => {
                let email = s.email.as_ref().ok_or_else(|| {
                    SendError::NotConfigured("[notify.email] is not configured any more".into())
                })?;
                email::send(email, id, message, s.timeout).await
            }
            Channel::Webhook => {
                let endpoint = s
                    .webhooks
                    .iter()
                    .find(|e| e.name == target)
                    .ok_or_else(|| {
                        SendError::NotConfigured(format!(
                            "webhook endpoint {target:?} is not configured any more"
                        ))
                    })?;
                let now = self.clock.now().timestamp();
                webhook::send(&self.http, endpoint, id, message, now).await
            }
        }
    }
}
