//! What the sandbox saw: a bounded log of CRM API requests and running
//! statistics (statuses, 429s, faults, record updates per record), so tests, the
//! demo and benchmarks can check a client's behaviour from the server's side —
//! e.g. that no record was written twice or that pacing kept 429s away.
//!
//! Records are keyed in offboard's terms whatever the CRM (`deals/30001`,
//! `contacts/…`, `organizations/…`, `tasks/…`, `leads/…` with the internal id
//! even where Pipedrive names a lead by UUID), so one check serves both CRMs.
//! Seat changes (Pipedrive's `PUT /api/v1/users/{id}`) are no record updates:
//! they are in the request log only.
//!
//! Tokens are never recorded. The log keeps the last [`LOG_CAPACITY`] entries;
//! the statistics count everything since the start (or the last reset).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use offboard_domain::Resource;

use super::pipedrive;

/// Entries the request log keeps before dropping the oldest.
pub const LOG_CAPACITY: usize = 50_000;

/// A fault the sandbox injected instead of handling a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answered 500 with the CRM's error body.
    ServerError,
    /// Answered 503 with the CRM's error body.
    Unavailable,
    /// Closed the connection without answering.
    Dropped,
}

/// One CRM API request, as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLogEntry {
    /// 1, 2, 3… in arrival order.
    pub seq: u64,
    /// Milliseconds since the sandbox started.
    pub at_ms: u64,
    /// `GET`, `PUT`, …
    pub method: String,
    /// Path and query string (a Pipedrive `api_token` in it is masked).
    pub path: String,
    /// The status sent; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// Set when a fault was injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Time spent answering, latency included.
    pub duration_ms: u64,
}

/// Running counts over every CRM API request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests seen.
    pub requests: u64,
    /// Requests per status code (`"200"`, `"429"`, …; `"dropped"` for no answer).
    pub by_status: BTreeMap<String, u64>,
    /// 429 answers.
    pub rate_limited: u64,
    /// Injected faults of any kind.
    pub faults: u64,
    /// Update requests received per record (`"deals/30001"`), whatever their
    /// outcome: Sell's `PUT`s, Pipedrive's `PATCH`es.
    pub puts: BTreeMap<String, u64>,
    /// Updates that were applied, per record, and records created through the API.
    pub writes: BTreeMap<String, u64>,
}

impl Stats {
    /// Update requests (`PUT`, Pipedrive `PATCH`) received for one record.
    pub fn puts_for(&self, resource: Resource, id: i64) -> u64 {
        self.puts
            .get(&record_key(resource, id))
            .copied()
            .unwrap_or(0)
    }

    /// Applied writes of one record.
    pub fn writes_for(&self, resource: Resource, id: i64) -> u64 {
        self.writes
            .get(&record_key(resource, id))
            .copied()
            .unwrap_or(0)
    }

    /// Records written more than once (by key), e.g. to spot a non-idempotent retry.
    pub fn written_twice(&self) -> Vec<&str> {
        self.writes
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// `deals/30001`.
pub(super) fn record_key(resource: Resource, id: i64) -> String {
    format!("{resource}/{id}")
}

/// The request log and the statistics, kept together under one lock.
#[derive(Debug, Default)]
pub(super) struct RequestLog {
    entries: VecDeque<RequestLogEntry>,
    stats: Stats,
    seq: u64,
}

impl RequestLog {
    pub fn record(&mut self, mut entry: RequestLogEntry) {
        self.seq += 1;
        entry.seq = self.seq;
        let s = &mut self.stats;
        s.requests += 1;
        let status = entry
            .status
            .map_or_else(|| "dropped".to_owned(), |c| c.to_string());
        *s.by_status.entry(status).or_default() += 1;
        if entry.status == Some(429) {
            s.rate_limited += 1;
        }
        if entry.fault.is_some() {
            s.faults += 1;
        }
        if let Some(key) = put_key(&entry.method, &entry.path) {
            *s.puts.entry(key).or_default() += 1;
        }
        if self.entries.len() >= LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub fn record_write(&mut self, resource: Resource, id: i64) {
        *self
            .stats
            .writes
            .entry(record_key(resource, id))
            .or_default() += 1;
    }

    /// An update request for one record that the path doesn't name (a
    /// Salesforce collection update names its records in the body).
    pub fn record_put(&mut self, resource: Resource, id: i64) {
        *self.stats.puts.entry(record_key(resource, id)).or_default() += 1;
    }

    pub fn entries(&self) -> Vec<RequestLogEntry> {
        self.entries.iter().cloned().collect()
    }

    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }
}

/// `PUT /v2/deals/30001?x` → `deals/30001`; Pipedrive's updates through
/// [`pipedrive::updated_record`].
fn put_key(method: &str, path: &str) -> Option<String> {
    let path = path.split('?').next()?;
    let mut parts = path.trim_start_matches('/').split('/');
    match (
        method,
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        ("PUT", Some("v2"), Some(kind), Some(id), None) => {
            let resource: Resource = kind.parse().ok()?;
            Some(record_key(resource, id.parse().ok()?))
        }
        _ => {
            let (resource, id) = pipedrive::updated_record(method, path)?;
            Some(record_key(resource, id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(method: &str, path: &str, status: Option<u16>) -> RequestLogEntry {
        RequestLogEntry {
            seq: 0,
            at_ms: 0,
            method: method.into(),
            path: path.into(),
            status,
            fault: None,
            duration_ms: 0,
        }
    }

    #[test]
    fn stats_count_statuses_and_puts() {
        let mut log = RequestLog::default();
        log.record(entry("PUT", "/v2/deals/7", Some(200)));
        log.record(entry("PUT", "/v2/deals/7?x=1", None));
        log.record(entry("GET", "/v2/deals/7", Some(429)));
        log.record_write(Resource::Deals, 7);
        let s = log.stats();
        assert_eq!(s.puts_for(Resource::Deals, 7), 2);
        assert_eq!(s.writes_for(Resource::Deals, 7), 1);
        assert_eq!((s.requests, s.rate_limited), (3, 1));
        assert_eq!(s.by_status.get("dropped"), Some(&1));
        assert!(s.written_twice().is_empty());
        let seqs: Vec<u64> = log.entries().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn pipedrive_updates_count_under_offboards_names() {
        let mut log = RequestLog::default();
        log.record(entry("PATCH", "/v2/deals/7", Some(405)));
        log.record(entry("PATCH", "/api/v2/deals/7", Some(200)));
        log.record(entry("PATCH", "/api/v2/persons/7?x=1", Some(200)));
        log.record(entry("PATCH", "/api/v2/organizations/8", Some(400)));
        log.record(entry("PATCH", "/api/v2/activities/9", None));
        let lead = pipedrive::lead_uuid(11);
        log.record(entry("PATCH", &format!("/api/v1/leads/{lead}"), Some(200)));
        log.record(entry("PATCH", "/api/v1/leads/not-a-uuid", Some(404)));
        log.record(entry("PUT", "/api/v1/users/7", Some(200)));
        log.record(entry("GET", "/api/v2/deals/7", Some(200)));
        let s = log.stats();
        assert_eq!(s.puts_for(Resource::Deals, 7), 1);
        assert_eq!(s.puts_for(Resource::Contacts, 7), 1);
        assert_eq!(s.puts_for(Resource::Organizations, 8), 1);
        assert_eq!(s.puts_for(Resource::Tasks, 9), 1);
        assert_eq!(s.puts_for(Resource::Leads, 11), 1);
        assert_eq!(s.puts.len(), 5, "seat changes are no record updates");
    }
}
