-- One CRM request budget shared by every replica (src/store/postgres_budget.rs).
--
-- One row per CRM token (keyed by a hash of base URL + token, never the token). It is
-- a GCRA token bucket: `tat_us` is the "theoretical arrival time" of the next request,
-- on the DATABASE clock, in microseconds. A replica reserves n permits with one
-- UPDATE (start = greatest(tat, now), tat = start + n * interval) and sleeps until
-- `start`; it never polls. The adaptive slowdown after a 429 lives here too, so a
-- 429 seen by one replica slows them all.
--
-- UNLOGGED: a permit must not wait for a WAL flush (measured: 3.7 ms per UPDATE with
-- fsync on this kind of disk, 0.5 ms without), and nothing here needs to survive a
-- database crash or reach a standby: after either, the row is simply re-created on
-- first use and the budget starts full, which costs at most one burst permit.
--
-- SQLite has no such table: one process owns an SQLite store, and its budget is the
-- in-process one (src/crm/pacing.rs).

-- Microseconds since the epoch, read when the expression is evaluated (clock_timestamp,
-- VOLATILE): an UPDATE that waited for the row lock sees the time it got it.
CREATE FUNCTION offboard_clock_us() RETURNS bigint
    LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint $$;

CREATE UNLOGGED TABLE crm_budgets (
    key           text   PRIMARY KEY,        -- sha256(base URL, token), hex
    tat_us        bigint NOT NULL,           -- when the next permit may start
    last_start_us bigint NOT NULL,           -- start of the last reservation (returned to the caller)
    slowdown      int    NOT NULL DEFAULT 1, -- the rate is requests_per_second / slowdown
    slowed_us     bigint NOT NULL DEFAULT 0, -- last 429-triggered slowdown (cooldown)
    stepped_us    bigint NOT NULL DEFAULT 0  -- last change of slowdown, either way (recovery)
);
