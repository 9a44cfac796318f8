//! Retention (`[store] keep_finished_days`): finished jobs older than the cutoff are
//! deleted in batches, each one short transaction
//! ([`JobStore::prune_finished`](super::contract::JobStore::prune_finished)), so
//! the single SQLite writer is never held for long and a webhook waits at most one
//! batch. `Application` runs a [`round`] every [`PRUNE_EVERY`] in processes that
//! run a worker (also with retention off: the round folds PostgreSQL's job-count
//! deltas too). What is kept and why (the dedupe tombstone) is in
//! `migrations/sqlite/0005_retention.sql`.

use std::time::Duration;

use super::contract::{JobStore, StoreError};

/// Jobs per pruning transaction: small enough that the writer is free again soon
/// (SQLite, a million jobs: 47 ms per batch at the median, 86 ms p99, on the
/// 2-vCPU development VM; BENCHMARKS.md "Store growth"), so a webhook waits at most
/// about that long behind the pruner.
pub const BATCH: u32 = 1000;

/// How often the pruner looks for finished jobs past the cutoff. Retention counts
/// in days, so a few minutes late is nothing; the first round runs at start-up.
pub const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// A day, in the unit `keep_finished_days` counts.
const DAY: Duration = Duration::from_secs(86_400);

/// One round of the pruner: folds the job counts' deltas
/// ([`JobStore::compact_job_counts`], whatever the retention), then [`prune`]s.
pub async fn round(store: &dyn JobStore, keep_finished_days: u32) -> Result<u64, StoreError> {
    store.compact_job_counts().await?;
    prune(store, keep_finished_days).await
}

/// Deletes every finished job last written more than `keep_finished_days` ago (on
/// the store's clock), [`BATCH`] per transaction, and returns how many went.
/// `0` keeps everything: nothing is read or deleted. Each batch is counted in
/// `offboard_store_pruned_jobs_total` as it commits.
pub async fn prune(store: &dyn JobStore, keep_finished_days: u32) -> Result<u64, StoreError> {
    if keep_finished_days == 0 {
        return Ok(0);
    }
    let keep = DAY.saturating_mul(keep_finished_days);
    let mut total = 0;
    loop {
        let gone = store.prune_finished(keep, BATCH).await?;
        total += gone;
        metrics::counter!(crate::metrics::STORE_PRUNED_JOBS_TOTAL).increment(gone);
        // Until a batch finds nothing (not merely fewer than BATCH): a parent
        // becomes prunable only once its follow-up went in the batch before.
        if gone == 0 {
            return Ok(total);
        }
        // Between batches, whoever queued for the writer goes first.
        tokio::task::yield_now().await;
    }
}
