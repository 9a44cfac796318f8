//! A per-task sink for CRM call records, so the audit trail holds every call
//! (method, path, status, duration) without threading a logger through the
//! [`Crm`](super::Crm) trait. The worker runs a job inside [`record_calls`];
//! clients call [`report`], which is a no-op outside such a scope.

use std::future::Future;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

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
}

tokio::task_local! {
    static SINK: UnboundedSender<CallRecord>;
}

/// Runs `fut` with every call a CRM client reports inside it sent to `sink`; the
/// worker wraps each job step in it to put the calls in the job's audit trail.
/// The sink is task-local, so calls from tasks `fut` spawns are not captured.
pub async fn record_calls<F: Future>(sink: UnboundedSender<CallRecord>, fut: F) -> F::Output {
    SINK.scope(sink, fut).await
}

/// Reports one call to the current task's sink; outside [`record_calls`] (or once
/// the receiver is gone) the record is dropped, so a client never fails over it.
pub fn report(call: CallRecord) {
    let _ = SINK.try_with(|s| s.send(call));
}
