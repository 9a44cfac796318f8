-- The notification outbox (DESIGN.md §13); the same table and meaning as
-- migrations/sqlite/0004_notifications.sql. A row is written in the same transaction
-- as the step that causes it, under an id stable per cause and recipient (a second
-- write of one cause inserts nothing); the id travels as webhook-id / Message-ID.
CREATE TABLE notifications (
    id               text COLLATE "C" PRIMARY KEY,
    job_id           text COLLATE "C" NOT NULL REFERENCES jobs (id),
    event            text   NOT NULL,
    channel          text   NOT NULL CHECK (channel IN ('email', 'webhook')),
    target           text   NOT NULL,
    message          json   NOT NULL,
    state            text   NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
    attempts         bigint NOT NULL DEFAULT 0,
    next_at          bigint NOT NULL,
    lease_owner      text,
    lease_expires_at bigint,
    last_error       text,
    delivered_at     bigint,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL
);
-- The delivery claim walks due rows in next_at order.
CREATE INDEX notifications_due ON notifications (next_at, id) WHERE state IN ('pending', 'sending');
CREATE INDEX notifications_job ON notifications (job_id, created_at);
