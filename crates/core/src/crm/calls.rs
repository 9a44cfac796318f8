//! A per-task sink for CRM call records, so the audit trail holds every call
//! (method, path, status, duration) without threading a logger through the
//! [`Crm`](super::Crm) trait. The worker runs a job inside [`record_calls`];
//! clients call [`report`], which is a no-op outside such a scope.
//!
//! The same scope can carry a [`WriteGate`]: before a client sends anything that
//! changes the CRM it asks [`admit_write`], so a worker whose store went away, or
//! whose lease may lapse before the answer comes, never writes blind (ARCHITECTURE.md,
//! "never act blind").

use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use crate::domain::lanes::Lane;

/// One HTTP call to the CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// `GET`, `PUT`, …
    pub method: String,
    /// Path and query, without host or token.
    pub path: String,
    /// HTTP status; `None` when no response arrived.
    pub status: Option<u16>,
    /// Wall time of the call.
    pub duration_ms: u64,
    /// Transport error, when there was no response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The lane it queued in for the token's budget (`lanes::Lane`); absent in
    /// records written before lanes existed and for calls never sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<Lane>,
    /// How long it waited for the budget before it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
}

/// What a write to the CRM waits for. The worker's implementation records the
/// write's intent in the job's audit trail and checks that the run's lease covers
/// the call; it waits while the store is unreachable.
#[async_trait]
pub trait WriteGate: Send + Sync {
    /// Returns once `method path` may be sent, with how long the attempt may take
    /// (at most `wanted`; the caller abandons it after that); `Err` (why) when the
    /// run must stop instead (lease lost, shutting down): the call is not made.
    async fn admit(&self, method: &str, path: &str, wanted: Duration) -> Result<Duration, String>;
    /// Whether a call of up to `within` starting now still ends inside the lease
    /// (asked again right before sending, after the rate-limit wait).
    fn covers(&self, within: Duration) -> bool;
}

tokio::task_local! {
    static SINK: UnboundedSender<CallRecord>;
    static GATE: Arc<dyn WriteGate>;
}

/// Runs `fut` with every call a CRM client reports inside it sent to `sink`; the
/// worker wraps each job step in it to put the calls in the job's audit trail.
/// The sink is task-local, so calls from tasks `fut` spawns are not captured.
pub async fn record_calls<F: Future>(sink: UnboundedSender<CallRecord>, fut: F) -> F::Output {
    SINK.scope(sink, fut).await
}

/// [`record_calls`], with every CRM write inside `fut` first admitted by `gate`.
pub async fn record_gated_calls<F: Future>(
    sink: UnboundedSender<CallRecord>,
    gate: Arc<dyn WriteGate>,
    fut: F,
) -> F::Output {
    SINK.scope(sink, GATE.scope(gate, fut)).await
}

/// Reports one call to the current task's sink; outside [`record_calls`] (or once
/// the receiver is gone) the record is dropped, so a client never fails over it.
pub fn report(call: CallRecord) {
    let _ = SINK.try_with(|s| s.send(call));
}

fn gate() -> Option<Arc<dyn WriteGate>> {
    GATE.try_with(Arc::clone).ok()
}

/// Asks the current task's gate to admit a write, which may take up to `wanted`;
/// the answer is how long it may really take. Outside a gated scope (client
/// tests, benchmarks, the CLI) every write is admitted as asked.
pub async fn admit_write(method: &str, path: &str, wanted: Duration) -> Result<Duration, String> {
    match gate() {
        Some(gate) => gate.admit(method, path, wanted).await,
        None => Ok(wanted),
    }
}

/// Whether the current task's gate still covers a write of up to `within`.
pub fn write_covered(within: Duration) -> bool {
    gate().is_none_or(|gate| gate.covers(within))
}
