-- offboard's durable queue (PostgreSQL). Same tables and meaning as migrations/sqlite.
--
-- Timestamps are bigint Unix milliseconds (UTC), as in SQLite: one representation for
-- both stores, and no sqlx `chrono` feature needed. "Now" is the DATABASE clock
-- (offboard_now_ms()), so leases granted by one replica and expired by another are
-- measured on one clock, whatever the replicas' clock skew. It is the transaction's
-- start time (now(), STABLE), so `run_at <= offboard_now_ms()` can use an index and
-- one transaction sees one "now"; every transaction here is short.
--
-- JSON columns are `json`, not `jsonb`: `json` keeps the text as written and accepts
-- everything SQLite accepts (jsonb rejects "\u0000", which an HR payload or a CRM error
-- message may carry), so the two stores never disagree on what can be stored.
--
-- Ids are UUIDv7 strings compared bytewise (COLLATE "C"): they sort by creation time,
-- which list cursors and "newest first" rely on, whatever the database's collation.

CREATE FUNCTION offboard_now_ms() RETURNS bigint
    LANGUAGE sql STABLE
    AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;

-- Every accepted webhook event, kept for dedupe (well past any vendor's 7-day retry window).
CREATE TABLE events (
    source       text   NOT NULL,
    event_id     text   NOT NULL,
    body_sha256  text   NOT NULL,
    payload      json   NOT NULL,           -- the canonical event
    received_at  bigint NOT NULL,
    PRIMARY KEY (source, event_id)
);

CREATE TABLE jobs (
    id               text COLLATE "C" PRIMARY KEY,
    kind             text    NOT NULL,
    state            text    NOT NULL CHECK (state IN
                         ('queued', 'running', 'scheduled', 'needs_review', 'succeeded', 'failed', 'cancelled')),
    attempt          bigint  NOT NULL DEFAULT 0,  -- claims so far; fences writes
    failures         bigint  NOT NULL DEFAULT 0,  -- consecutive failed attempts
    max_attempts     bigint  NOT NULL,
    run_at           bigint  NOT NULL,
    lease_owner      text,
    lease_expires_at bigint,
    source           text    NOT NULL,
    event_id         text    NOT NULL,
    employee_email   text    NOT NULL,
    action           text,
    plan             json,
    last_error       text,
    approved         boolean NOT NULL DEFAULT false,
    parent_id        text COLLATE "C" REFERENCES jobs (id),
    created_at       bigint  NOT NULL,
    updated_at       bigint  NOT NULL,
    FOREIGN KEY (source, event_id) REFERENCES events (source, event_id)
);
-- The claim walks this in run_at order and stops after LIMIT rows.
CREATE INDEX jobs_runnable ON jobs (run_at, id) WHERE state IN ('queued', 'scheduled');
-- The claim's "earliest runnable job of this employee" probe.
CREATE INDEX jobs_pending_employee ON jobs (employee_email, id) WHERE state IN ('queued', 'scheduled');
CREATE INDEX jobs_employee ON jobs (employee_email, state);
CREATE INDEX jobs_event ON jobs (source, event_id);
CREATE INDEX jobs_expiry ON jobs (lease_expires_at) WHERE state = 'running';
-- One active offboarding per CRM user at a time, enforced by the database: two
-- replicas racing to claim two jobs of one employee cannot both commit.
CREATE UNIQUE INDEX jobs_one_running_per_employee ON jobs (employee_email) WHERE state = 'running';
-- A parent schedules at most one follow-up of each kind.
CREATE UNIQUE INDEX jobs_one_follow_up ON jobs (parent_id, kind) WHERE parent_id IS NOT NULL;

CREATE TABLE checkpoints (
    job_id     text COLLATE "C" NOT NULL REFERENCES jobs (id),
    key        text   NOT NULL,
    value      json   NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (job_id, key)
);

CREATE TABLE audit (
    id      bigserial PRIMARY KEY,
    job_id  text COLLATE "C" NOT NULL,
    at      bigint NOT NULL,
    kind    text   NOT NULL,
    detail  json   NOT NULL
);
CREATE INDEX audit_job ON audit (job_id, id);

-- Seat actions requested (deactivate/delete), counted by the hourly caps.
CREATE TABLE seat_actions (
    job_id text COLLATE "C" PRIMARY KEY,
    action text   NOT NULL,
    at     bigint NOT NULL
);
CREATE INDEX seat_actions_at ON seat_actions (at);

-- One row that every cap reservation locks (SELECT … FOR UPDATE) before counting, so
-- two replicas can't both see "one below the cap" and both insert. Reservations are
-- rare (one per offboarding), so serialising them costs nothing that matters. A row
-- rather than pg_advisory_xact_lock because its scope is this schema, not the database.
CREATE TABLE seat_action_lock (
    id integer PRIMARY KEY CHECK (id = 1)
);
INSERT INTO seat_action_lock (id) VALUES (1);
