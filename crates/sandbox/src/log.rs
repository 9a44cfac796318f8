//! What the sandbox saw: a bounded log of Sell API requests and running
//! statistics (statuses, 429s, faults, `PUT`s per record), so tests, the demo
//! and benchmarks can check a client's behaviour from the server's side — e.g.
//! that no record was written twice or that pacing kept 429s away.
//!
//! Tokens are never recorded. The log keeps the last [`LOG_CAPACITY`] entries;
//! the statistics count everything since the start (or the last reset).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use offboard_domain::Resource;

/// Entries the request log keeps before dropping the oldest.
pub const LOG_CAPACITY: usize = 50_000;

/// A fault the sandbox injected instead of handling a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answered 500 with a Sell error envelope.
    ServerError,
    /// Answered 503 with a Sell error envelope.
    Unavailable,
    /// Closed the connection without answering.
    Dropped,
}

/// One Sell API request, as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLogEntry {
    /// 1, 2, 3… in arrival order.
    pub seq: u64,
    /// Milliseconds since the sandbox started.
    pub at_ms: u64,
    /// `GET`, `PUT`, …
    pub method: String,
    /// Path and query string.
    pub path: String,
    /// The status sent; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// Set when a fault was injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Time spent answering, latency included.
    pub duration_ms: u64,
}

/// Running counts over every Sell API request.
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
    /// `PUT` requests received per record (`"deals/30001"`), whatever their outcome.
    pub puts: BTreeMap<String, u64>,
    /// `PUT`s that changed a record, per record.
    pub writes: BTreeMap<String, u64>,
}

impl Stats {
    /// `PUT` requests received for one record.
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
        if entry.method == "PUT"
            && let Some(key) = put_key(&entry.path)
        {
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

    pub fn entries(&self) -> Vec<RequestLogEntry> {
        self.entries.iter().cloned().collect()
    }

    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }
}

/// `/v2/deals/30001?x` → `deals/30001`.
fn put_key(path: &str) -> Option<String> {
    let path = path.split('?').next()?;
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("v2"), Some(kind), Some(id), None) => {
            let resource: Resource = kind.parse().ok()?;
            Some(record_key(resource, id.parse().ok()?))
        }
        _ => None,
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
}
