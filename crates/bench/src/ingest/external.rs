//! `offboard bench ingest --wrk`: the same two servers under `wrk`, a load
//! generator in another process, because an in-process client shares the bench's
//! runtime and misses stalls a real sender sees.
//!
//! The requests are pre-built in the Lua script's `init` and its garbage collector
//! is stopped: a script that formats each request as it goes (and holds a big
//! table of events) pauses for its own collections, and those pauses show up as
//! server latency — hundreds of milliseconds at p99 on this machine, with the
//! server idle meanwhile.

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::Context;
use tokio::process::Command;

use super::{
    events::Pool,
    server::{Commit, Server},
};
use offboard_core::store;

/// wrk's threads; every thread takes every `THREADS`-th event, so none repeats.
const THREADS: usize = 2;

const SCRIPT: &str = r#"-- Written by `offboard bench ingest --wrk`.
local reqs = {}
local i = 0
function setup(thread)
  thread:set("offset", setup_n or 0)
  setup_n = (setup_n or 0) + 1
end
function init(args)
  local n = 0
  for line in io.lines(args[1]) do
    if n % THREADS == (offset or 0) then
      local id, ts, sig, body = line:match("([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)")
      reqs[#reqs + 1] = wrk.format("POST", "/webhooks/bench", {
        ["content-type"] = "application/json",
        ["webhook-id"] = id, ["webhook-timestamp"] = ts, ["webhook-signature"] = sig }, body)
    end
    n = n + 1
  end
  collectgarbage("collect")
  collectgarbage("stop")
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
"#;

/// What wrk reported for one run.
#[derive(Debug, Clone, Default)]
struct WrkResult {
    requests: u64,
    non_2xx: u64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Runs baseline and offboard (group commit) under wrk at `concurrency`,
/// interleaved over `rounds`, and prints throughput, latency and the stored check.
pub async fn run(
    exe: &Path,
    concurrency: usize,
    duration: Duration,
    events: usize,
    rounds: u32,
) -> anyhow::Result<()> {
    let wrk = which("wrk").context(
        "--wrk needs wrk on PATH (Debian: apt-get install wrk); it is the load generator",
    )?;
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("post.lua");
    std::fs::write(&script, SCRIPT.replace("THREADS", &THREADS.to_string()))?;
    println!("{}", super::machine());
    println!(
        "wrk -t{THREADS} -c{concurrency} -d{}s, {rounds} interleaved rounds per server, pre-signed Standard Webhooks events; offboard: receiver child process, fresh SQLite file, synchronous=FULL, group commit, default log level\n",
        duration.as_secs()
    );
    let mut totals: [Vec<WrkResult>; 2] = [Vec::new(), Vec::new()];
    let mut stored_ok = true;
    for round in 0..rounds {
        for (slot, offboard) in [(0, false), (1, true)] {
            let server = if offboard {
                Server::offboard(exe, Commit::Group).await?
            } else {
                Server::baseline(exe).await?
            };
            // Signed now, so the timestamps are well inside the tolerance.
            let pool = Pool::new(&format!("wrk{round}{slot}"), events)?;
            let lines = dir.path().join("events.tsv");
            write_events(&pool, &lines)?;
            let out = Command::new(&wrk)
                .arg(format!("-t{THREADS}"))
                .arg(format!("-c{concurrency}"))
                .arg(format!("-d{}s", duration.as_secs()))
                .arg("--latency")
                .arg("-s")
                .arg(&script)
                .arg(format!("http://{}", server.addr))
                .arg("--")
                .arg(&lines)
                .output()
                .await
                .context("running wrk")?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            anyhow::ensure!(
                out.status.success(),
                "wrk failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
            let result = parse(&text).with_context(|| format!("reading wrk's report:\n{text}"))?;
            // Killed, not stopped: what it acknowledged must already be on disk.
            let killed = server.kill().await?;
            let name = if offboard { "offboard" } else { "baseline" };
            let mut line = format!(
                "round {}: {name:<8} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  non-2xx {}",
                round + 1,
                result.rate,
                result.p50_ms,
                result.p99_ms,
                result.max_ms,
                result.non_2xx
            );
            if let Some(url) = &killed.store_url {
                let accepted = result.requests.saturating_sub(result.non_2xx);
                let stored = stored_jobs(url).await?;
                // wrk counts only answered requests; the ones in flight when it
                // stopped may be stored too.
                let ok = stored >= accepted && result.requests as usize <= events;
                stored_ok &= ok;
                let _ = write!(
                    line,
                    "  stored {stored} ≥ 2xx {accepted}: {}",
                    if ok { "yes" } else { "NO" }
                );
            }
            println!("{line}");
            totals[slot].push(result);
        }
    }
    let median = |rs: &[WrkResult], f: fn(&WrkResult) -> f64| {
        let mut v: Vec<f64> = rs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (base, off) = (&totals[0], &totals[1]);
    let ratio = median(off, |r| r.rate) / median(base, |r| r.rate).max(1.0);
    println!(
        "\nmedian of {rounds}: offboard {:.0} req/s = {ratio:.2}× the bare axum handler (goal ≥ 0.25×); p99 {:.2} ms (goal ≤ 10 ms), max {:.2} ms; baseline p99 {:.2} ms",
        median(off, |r| r.rate),
        median(off, |r| r.p99_ms),
        median(off, |r| r.max_ms),
        median(base, |r| r.p99_ms),
    );
    anyhow::ensure!(
        stored_ok,
        "an acknowledged webhook is missing from the store, or wrk ran out of distinct events (raise --events)"
    );
    Ok(())
}

fn write_events(pool: &Pool, path: &Path) -> anyhow::Result<()> {
    let mut text = String::with_capacity(pool.len() * 600);
    for i in 0..pool.len() {
        let ev = pool.get(i)?;
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}",
            ev.id.to_str()?,
            ev.ts.to_str()?,
            ev.sig.to_str()?,
            std::str::from_utf8(&ev.body)?
        );
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

async fn stored_jobs(url: &str) -> anyhow::Result<u64> {
    let store = store::open_with(url, "full", false)
        .await
        .with_context(|| format!("opening {url}"))?;
    Ok(store.count_by_state().await?.values().sum())
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// Reads wrk's `--latency` report: `Requests/sec`, the 50 % and 99 % lines, the
/// latency `Max` column, the request count and `Non-2xx or 3xx responses`.
fn parse(text: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => r.rate = rate.parse()?,
            ["50%", v] => r.p50_ms = ms(v)?,
            ["99%", v] => r.p99_ms = ms(v)?,
            ["Latency", _avg, _stdev, max, _] => r.max_ms = ms(max)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse()?,
            [n, "requests", "in", ..] => r.requests = n.parse()?,
            _ => {}
        }
    }
    anyhow::ensure!(r.rate > 0.0, "no Requests/sec line");
    Ok(r)
}

/// `812.00us`, `5.14ms`, `1.20s` → milliseconds.
fn ms(v: &str) -> anyhow::Result<f64> {
    let (n, unit) = v
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| v.split_at(i))
        .ok_or_else(|| anyhow::anyhow!("no unit in {v:?}"))?;
    let n: f64 = n.parse()?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        other => anyhow::bail!("unknown unit {other:?} in {v:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ http://127.0.0.1:18080
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.09ms    2.88ms  28.67ms   80.29%
    Req/Sec     5.04k     1.09k    5.74k    66.08%
  Latency Distribution
     50%  812.00us
     75%   12.83ms
     90%   19.53ms
     99%    1.17s
  100386 requests in 10.00s, 24.70MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  10038.65
Transfer/sec:      2.47MB
";

    #[test]
    fn reads_wrks_report() {
        let r = parse(REPORT).unwrap();
        assert_eq!(r.requests, 100_386);
        assert_eq!(r.non_2xx, 12);
        assert!((r.rate - 10_038.65).abs() < 1e-9);
        assert!((r.p50_ms - 0.812).abs() < 1e-9);
        assert!((r.p99_ms - 1170.0).abs() < 1e-9);
        assert!((r.max_ms - 28.67).abs() < 1e-9);
    }

    #[test]
    fn a_report_without_a_rate_is_an_error() {
        assert!(parse("  2 threads and 64 connections\n").is_err());
    }
}
