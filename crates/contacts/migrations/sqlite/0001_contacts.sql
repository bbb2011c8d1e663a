-- One row per contact: its current version by the precedence rules (model.rs).
CREATE TABLE contacts (
    id                TEXT    PRIMARY KEY,          -- the provider's integer id, as text
    identity          TEXT,                         -- e-mail address or phone number, as sent
    identity_key      TEXT    NOT NULL COLLATE NOCASE, -- model::identity_key; '' when none
    first_name        TEXT,
    middle_name       TEXT,
    last_name         TEXT,
    -- model::name_key of each name ('' when none), for case-insensitive prefix search.
    first_name_key    TEXT    NOT NULL COLLATE NOCASE,
    middle_name_key   TEXT    NOT NULL COLLATE NOCASE,
    last_name_key     TEXT    NOT NULL COLLATE NOCASE,
    gender            TEXT,
    birth_date        TEXT,                         -- as sent: "1996-07-16"
    company           TEXT,
    attributes_json   TEXT    NOT NULL,             -- {"key": "value as text"}; rows in contact_attributes
    created_at        INTEGER,                      -- microseconds since the epoch
    updated_at        INTEGER,
    -- The precedence key of the current version: updated_at (or the smallest integer), then digest.
    updated_key       INTEGER NOT NULL,
    digest            TEXT    NOT NULL,
    status            TEXT,                         -- "Subscriber created successfully", ...
    listed_at         INTEGER NOT NULL,             -- updated_at, else received_at: list order
    received_at       INTEGER NOT NULL,             -- when the current version was received
    first_received_at INTEGER NOT NULL,
    last_received_at  INTEGER NOT NULL,
    stream_sequence   INTEGER NOT NULL,             -- of the current version
    raw_json          TEXT    NOT NULL              -- the current version
);
CREATE INDEX contacts_by_listed ON contacts (listed_at, id);
CREATE INDEX contacts_by_identity ON contacts (identity_key, listed_at);
-- The keys are lower-case already; NOCASE is what lets SQLite answer LIKE 'abc%' (which ignores
-- ASCII case) from these indexes.
CREATE INDEX contacts_by_first_name ON contacts (first_name_key);
CREATE INDEX contacts_by_middle_name ON contacts (middle_name_key);
CREATE INDEX contacts_by_last_name ON contacts (last_name_key);

-- Every distinct version (by body digest) of every contact: the same columns as contacts.
CREATE TABLE contact_versions (
    id              TEXT    NOT NULL,
    digest          TEXT    NOT NULL,
    identity        TEXT,
    identity_key    TEXT    NOT NULL,
    first_name      TEXT,
    middle_name     TEXT,
    last_name       TEXT,
    first_name_key  TEXT    NOT NULL,
    middle_name_key TEXT    NOT NULL,
    last_name_key   TEXT    NOT NULL,
    gender          TEXT,
    birth_date      TEXT,
    company         TEXT,
    attributes_json TEXT    NOT NULL,
    created_at      INTEGER,
    updated_at      INTEGER,
    updated_key     INTEGER NOT NULL,
    status          TEXT,
    listed_at       INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    stream_sequence INTEGER NOT NULL,  -- the earliest delivery of this body
    raw_json        TEXT    NOT NULL,
    PRIMARY KEY (id, digest)
);
CREATE INDEX contact_versions_in_order ON contact_versions (id, updated_key, stream_sequence, digest);

-- The current version's attributes, one row each, so `key = value` filters are plain SQL. Replaced
-- whenever the current version changes.
CREATE TABLE contact_attributes (
    contact_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,  -- non-string JSON values as JSON text
    PRIMARY KEY (contact_id, key)
);
CREATE INDEX contact_attributes_by_value ON contact_attributes (key, value);
