-- The users an identity provider pushed over SCIM 2.0 (DESIGN.md §10), kept so GET,
-- filter and PATCH answer as RFC 7644 says and an inactive user is still returned.
-- A change of `active` and the event it makes are written in one transaction.
CREATE TABLE scim_users (
    id            TEXT    PRIMARY KEY,      -- UUIDv7, offboard's own (the SCIM `id`)
    user_name     TEXT    NOT NULL,         -- as sent
    user_name_key TEXT    NOT NULL,         -- lower-cased: userName is caseExact=false
    external_id   TEXT,                     -- the provider's id, caseExact
    active        INTEGER NOT NULL,
    resource      TEXT    NOT NULL,         -- the User resource as last written, JSON
    version       INTEGER NOT NULL,         -- meta.version (ETag); +1 per write
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (user_name_key);
CREATE INDEX scim_users_external_id ON scim_users (external_id);
