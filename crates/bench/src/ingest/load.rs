//! The load generator: C keep-alive HTTP/1.1 connections, each one a bare hyper
//! client sending its next request as soon as the previous answer is read, for a
//! fixed time. Bare hyper rather than reqwest because the generator shares the CPU
//! with the server it measures: the less it spends per request, the more honest the
//! baseline.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{body::Bytes, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::events::Pool;

/// What one run measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Requests answered (any status).
    pub answered: u64,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Latency of every answered request, in microseconds (sorted by [`Self::sorted`]).
    pub latencies_us: Vec<u32>,
    /// Answers per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection error).
    pub errors: u64,
    /// The first transport error, for the report.
    pub first_error: Option<String>,
    /// Pool indices answered 2xx.
    pub accepted: Vec<usize>,
    /// Pool indices whose request got no answer (they may or may not be stored).
    pub unanswered: Vec<usize>,
    /// The pool ran out before the time was up.
    pub exhausted: bool,
}

impl LoadResult {
    /// Sorts the latencies (before asking for quantiles).
    pub fn sorted(mut self) -> Self {
        self.latencies_us.sort_unstable();
        self
    }

    /// Answered requests per second.
    pub fn rate(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0.0–1.0), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((self.latencies_us.len() as f64 * q).ceil() as usize)
            .clamp(1, self.latencies_us.len());
        f64::from(self.latencies_us[rank - 1]) / 1000.0
    }

    /// `202×1234 409×2 err×1`.
    pub fn status_summary(&self) -> String {
        let mut parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        if self.errors > 0 {
            parts.push(format!("err×{}", self.errors));
        }
        parts.join(" ")
    }

    /// Adds another run's (or connection's) numbers to these.
    pub fn merge(&mut self, other: LoadResult) {
        self.answered += other.answered;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.accepted.extend(other.accepted);
        self.unanswered.extend(other.unanswered);
        self.exhausted |= other.exhausted;
    }
}

/// What to send and how.
#[derive(Debug, Clone)]
pub struct Load {
    /// Server address (loopback).
    pub addr: SocketAddr,
    /// Request path, e.g. `/webhooks/bench`.
    pub path: String,
    /// Concurrent connections.
    pub concurrency: usize,
    /// How long to send.
    pub duration: Duration,
    /// Reuse the pool from the start when it runs out (the baseline stores nothing,
    /// so repeats cost it nothing); otherwise stop early and say so.
    pub cycle: bool,
}

/// Opens the connections, then sends for `load.duration`, taking events from the
/// pool at `next` onwards (shared across rounds, so ids are never reused).
pub async fn drive(
    load: &Load,
    pool: Arc<Pool>,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(!pool.is_empty(), "the event pool is empty");
    anyhow::ensure!(load.concurrency > 0, "concurrency must be at least 1");
    // Connect everyone before the clock starts: the run measures requests, not
    // handshakes.
    let mut senders = Vec::with_capacity(load.concurrency);
    for _ in 0..load.concurrency {
        senders.push(connect(load.addr).await?);
    }
    let start = Instant::now();
    let deadline = start + load.duration;
    let mut tasks = Vec::with_capacity(load.concurrency);
    for sender in senders {
        let (load, pool, next) = (load.clone(), pool.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            connection(sender, &load, &pool, &next, deadline).await
        }));
    }
    let mut total = LoadResult::default();
    for task in tasks {
        total.merge(task.await.context("a load task panicked")??);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// One connection's loop.
async fn connection(
    mut sender: SendRequest<Full<Bytes>>,
    load: &Load,
    pool: &Pool,
    next: &AtomicUsize,
    deadline: Instant,
) -> anyhow::Result<LoadResult> {
    let mut out = LoadResult::default();
    let host = load.addr.to_string();
    while Instant::now() < deadline {
        let mut i = next.fetch_add(1, Ordering::Relaxed);
        if i >= pool.len() {
            if !load.cycle {
                out.exhausted = true;
                break;
            }
            i %= pool.len();
        }
        let ev = pool.get(i)?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(load.path.as_str())
            .header(header::HOST, host.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header("webhook-id", ev.id)
            .header("webhook-timestamp", ev.ts)
            .header("webhook-signature", ev.sig)
            .body(Full::new(ev.body))?;
        let sent = Instant::now();
        match send(&mut sender, req).await {
            Ok(status) => {
                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                out.latencies_us.push(us);
                out.answered += 1;
                *out.statuses.entry(status.as_u16()).or_default() += 1;
                if status.is_success() {
                    out.accepted.push(i);
                }
            }
            Err(e) => {
                out.errors += 1;
                out.unanswered.push(i);
                out.first_error.get_or_insert_with(|| format!("{e:#}"));
                // A broken connection is replaced; if that fails too, this
                // connection's share of the run ends here (and shows in the report).
                match connect(load.addr).await {
                    Ok(s) => sender = s,
                    Err(_) => break,
                }
            }
        }
    }
    Ok(out)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<StatusCode> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    // Read the whole answer: keep-alive needs it, and a real client would.
    resp.into_body().collect().await?;
    Ok(status)
}

/// A keep-alive HTTP/1.1 connection to `addr`.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// `GET path` on a fresh connection; the status, or an error if nothing answers.
pub async fn get_status(addr: SocketAddr, path: &str) -> anyhow::Result<StatusCode> {
    Ok(get(addr, path).await?.0)
}

/// `GET path` on a fresh connection: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(StatusCode, String)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .uri(path)
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let r = LoadResult {
            latencies_us: (1..=100).rev().map(|v| v * 1000).collect(),
            ..Default::default()
        }
        .sorted();
        assert_eq!(r.quantile_ms(0.5), 50.0);
        assert_eq!(r.quantile_ms(0.99), 99.0);
        assert_eq!(r.quantile_ms(1.0), 100.0);
        assert_eq!(LoadResult::default().quantile_ms(0.99), 0.0);
    }
}
