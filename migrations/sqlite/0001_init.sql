-- offboard's durable queue (SQLite). Timestamps are Unix milliseconds (UTC).

-- Every accepted webhook event, kept for dedupe (well past any vendor's 7-day retry window).
CREATE TABLE events (
    source       TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    body_sha256  TEXT    NOT NULL,
    payload      TEXT    NOT NULL,          -- the canonical event, JSON
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)
);

CREATE TABLE jobs (
    id               TEXT    PRIMARY KEY,   -- UUIDv7: sorts by creation time
    kind             TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,  -- claims so far; fences writes
    failures         INTEGER NOT NULL DEFAULT 0,  -- consecutive failed attempts
    max_attempts     INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    source           TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    employee_email   TEXT    NOT NULL,
    action           TEXT,
    plan             TEXT,
    last_error       TEXT,
    approved         INTEGER NOT NULL DEFAULT 0,
    parent_id        TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    FOREIGN KEY (source, event_id) REFERENCES events (source, event_id)
);
CREATE INDEX jobs_runnable ON jobs (state, run_at);
CREATE INDEX jobs_employee ON jobs (employee_email, state);
CREATE INDEX jobs_event ON jobs (source, event_id);
-- One active offboarding per CRM user at a time, enforced by the database.
CREATE UNIQUE INDEX jobs_one_running_per_employee ON jobs (employee_email) WHERE state = 'running';
-- A parent schedules at most one follow-up of each kind.
CREATE UNIQUE INDEX jobs_one_follow_up ON jobs (parent_id, kind) WHERE parent_id IS NOT NULL;

CREATE TABLE checkpoints (
    job_id     TEXT    NOT NULL REFERENCES jobs (id),
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, key)
);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
CREATE INDEX audit_job ON audit (job_id, id);

-- Seat actions requested (deactivate/delete), counted by the hourly caps.
CREATE TABLE seat_actions (
    job_id TEXT    PRIMARY KEY,
    action TEXT    NOT NULL,
    at     INTEGER NOT NULL
);
CREATE INDEX seat_actions_at ON seat_actions (at);
