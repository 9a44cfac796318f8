-- The users an identity provider pushed over SCIM 2.0 (DESIGN.md §10), kept so GET,
-- filter and PATCH answer as RFC 7644 says and an inactive user is still returned.
-- A change of `active` and the event it makes are written in one transaction.
-- Same columns and meaning as migrations/sqlite/0003_scim_users.sql.
CREATE TABLE scim_users (
    id            text    COLLATE "C" PRIMARY KEY,  -- UUIDv7, offboard's own (the SCIM `id`)
    user_name     text    NOT NULL,                 -- as sent
    user_name_key text    NOT NULL,                 -- lower-cased: userName is caseExact=false
    external_id   text,                             -- the provider's id, caseExact
    active        boolean NOT NULL,
    resource      json    NOT NULL,                 -- the User resource as last written
    version       bigint  NOT NULL,                 -- meta.version (ETag); +1 per write
    created_at    bigint  NOT NULL,
    updated_at    bigint  NOT NULL
);
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (user_name_key);
CREATE INDEX scim_users_external_id ON scim_users (external_id);
