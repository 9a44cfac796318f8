-- The notification outbox (DESIGN.md §13). A row is written in the same transaction
-- as the step that causes it (a decision, records moved, a seat requested or
-- verified, a job ending in needs_review or failed), under an id derived from the
-- job, the cause, the channel and the recipient: the same cause never makes a second
-- row (ON CONFLICT DO NOTHING), and the id travels as webhook-id / Message-ID.
-- The worker claims due rows under a lease, sends them, and records the answer.
CREATE TABLE notifications (
    id               TEXT    PRIMARY KEY,   -- ntf_…: stable per cause and recipient
    job_id           TEXT    NOT NULL REFERENCES jobs (id),
    event            TEXT    NOT NULL,      -- seat.requested, records.reassigned, …
    channel          TEXT    NOT NULL,      -- email | webhook
    target           TEXT    NOT NULL,      -- the address, or the webhook endpoint's name
    message          TEXT    NOT NULL,      -- what is sent, rendered when written, JSON
    state            TEXT    NOT NULL,      -- pending | sending | delivered | dead
    attempts         INTEGER NOT NULL DEFAULT 0,  -- deliveries started; fences results
    next_at          INTEGER NOT NULL,      -- not sent before this (backoff)
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    delivered_at     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX notifications_due ON notifications (state, next_at);
CREATE INDEX notifications_job ON notifications (job_id, created_at);
