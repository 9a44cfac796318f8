-- Retention (`[store] keep_finished_days`) and flat cost as the store grows.
--
-- The pruner deletes finished jobs (succeeded, failed, cancelled) whose last write
-- (`updated_at`: for a finished job, when it finished) is older than the cutoff,
-- with their audit rows, checkpoints, seat reservations and delivered or dead
-- notifications, in batches of one short transaction each.
--
-- Dedupe must survive pruning: a sender that redelivers an event after its job was
-- pruned must still be told "duplicate", not get a second offboarding. So the
-- event row is never deleted: it stays as a tombstone of (source, event_id,
-- body_sha256), with `pruned_job_id` naming the job the first delivery created
-- (what a duplicate answers) and `payload` replaced by JSON `null` once no job
-- refers to it any more. A tombstone takes ~0.4 KB of the file (row, primary-key
-- entry, the space its shrunk page keeps) against ~2.2 KB for a job with its event,
-- trail and checkpoints (`offboard bench store --retention`); keeping the row
-- rather than moving it to a separate tombstone table keeps ingest's dedupe one
-- lookup on one primary key.
ALTER TABLE events ADD COLUMN pruned_job_id TEXT;

-- A page of one state's jobs, newest first (the console's and the API's
-- `?state=`): without it a rare state (needs_review) walked every job.
CREATE INDEX jobs_state ON jobs (state, id);

-- The pruner's search: finished jobs by finish time.
CREATE INDEX jobs_finished ON jobs (state, updated_at);

-- Jobs per state for /metrics and the console, kept by triggers in the same
-- transaction as every change of a job's state: `COUNT(*) … GROUP BY state` read
-- every row of the jobs_runnable index (linear in the store's size); this is one
-- row per state. SQLite has one writer, so the counter rows are never contended.
CREATE TABLE job_counts (
    state TEXT    PRIMARY KEY,
    n     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO job_counts (state, n) SELECT state, COUNT(*) FROM jobs GROUP BY state;

CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
END;

CREATE TRIGGER job_counts_update AFTER UPDATE OF state ON jobs WHEN OLD.state <> NEW.state BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO job_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
