-- Retention (`[store] keep_finished_days`): see migrations/sqlite/0005_retention.sql
-- for the whole reasoning, which is the same here.
--
-- The pruner deletes finished jobs whose last write (`updated_at`, the finish time)
-- is older than the cutoff, with their audit rows, checkpoints, seat reservations
-- and delivered or dead notifications, in short batches. The event row is kept as a
-- dedupe tombstone: `pruned_job_id` names the job a redelivery is a duplicate of,
-- and `payload` becomes JSON `null` once no job refers to the event.
ALTER TABLE events ADD COLUMN pruned_job_id text;

-- The pruner's search: finished jobs by finish time (the predicate is the pruner's).
CREATE INDEX jobs_finished ON jobs (updated_at) WHERE state IN ('succeeded', 'failed', 'cancelled');
