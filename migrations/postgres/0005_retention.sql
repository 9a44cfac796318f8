-- Retention (`[store] keep_finished_days`): see migrations/sqlite/0005_retention.sql
-- for the whole reasoning, which is the same here.
--
-- The pruner deletes finished jobs whose last write (`updated_at`, the finish time)
-- is older than the cutoff, with their audit rows, checkpoints, seat reservations
-- and delivered or dead notifications, in short batches. The event row is kept as a
-- dedupe tombstone: `pruned_job_id` names the job a redelivery is a duplicate of,
-- and `payload` becomes JSON `null` once no job refers to the event.
ALTER TABLE events ADD COLUMN pruned_job_id text;

-- A page of one state's jobs, newest first (the console's and the API's
-- `?state=`): without it a rare state (needs_review) walked every job.
CREATE INDEX jobs_state ON jobs (state, id);

-- The pruner's search: finished jobs by finish time (the predicate is the pruner's).
CREATE INDEX jobs_finished ON jobs (updated_at) WHERE state IN ('succeeded', 'failed', 'cancelled');

-- Active jobs (the seat-wait count of /metrics and the console's list of seats
-- waiting for the CRM admin): without it both read every job's row, finished
-- ones included, to find the few active ones (`offboard bench store`).
CREATE INDEX jobs_active ON jobs (id) WHERE state IN ('queued', 'running', 'scheduled', 'needs_review');

-- Jobs per state for /metrics and the console without counting every job
-- (`count(*) … GROUP BY state` read the whole table: linear in the store's size).
-- Every change of a job's state appends its delta here in the same transaction:
-- insert-only, so concurrent workers never wait on a shared counter row, as they
-- would if one row per state were updated. The count is the sum of the deltas;
-- the pruner's round folds them into one row per state
-- (`JobStore::compact_job_counts`, which truncates the table so that it does not
-- keep the pages of a burst), so the sum reads a handful of rows.
CREATE TABLE job_count_deltas (
    state text   NOT NULL,
    n     bigint NOT NULL
);
INSERT INTO job_count_deltas (state, n) SELECT state, count(*) FROM jobs GROUP BY state;

CREATE FUNCTION job_count_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO job_count_deltas (state, n) VALUES (OLD.state, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO job_count_deltas (state, n) VALUES (NEW.state, 1);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER job_count_insert_delete AFTER INSERT OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION job_count_delta();
CREATE TRIGGER job_count_update AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION job_count_delta();
