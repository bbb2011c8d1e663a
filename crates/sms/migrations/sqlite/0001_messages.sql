-- One row per recipient of an SMS request: its current status by the precedence rules (model.rs).
CREATE TABLE sms_messages (
    id                TEXT    PRIMARY KEY,  -- "<request uuid>:<recipient index>"
    request_id        TEXT    NOT NULL,
    recipient_index   INTEGER,
    mobile            TEXT    NOT NULL,     -- digits only
    status            TEXT    NOT NULL,     -- as sent
    status_class      INTEGER NOT NULL,     -- StatusClass in sms.proto: 1 pending … 4 failed
    -- The precedence key of the current report: rank, then deliv_time, then body digest.
    status_rank       INTEGER NOT NULL,
    status_time_key   INTEGER NOT NULL,
    digest            TEXT    NOT NULL,
    credits           TEXT,
    units             INTEGER,
    submitted_at      INTEGER,              -- microseconds since the epoch
    sent_at           INTEGER,
    delivered_at      INTEGER,
    cid               TEXT,
    custom            TEXT,
    sender            TEXT,
    listed_at         INTEGER NOT NULL,     -- sent, else submitted, else received: list order, report day
    received_at       INTEGER NOT NULL,     -- when the current report was received
    first_received_at INTEGER NOT NULL,
    last_received_at  INTEGER NOT NULL,
    stream_sequence   INTEGER NOT NULL,     -- of the current report
    raw_json          TEXT    NOT NULL      -- the current report
);
CREATE INDEX sms_messages_by_listed ON sms_messages (listed_at, id);
CREATE INDEX sms_messages_by_mobile ON sms_messages (mobile, listed_at);
CREATE INDEX sms_messages_by_status ON sms_messages (status, listed_at);
CREATE INDEX sms_messages_by_request ON sms_messages (request_id);
CREATE INDEX sms_messages_by_cid ON sms_messages (cid);
CREATE INDEX sms_messages_by_custom ON sms_messages (custom);

-- Every distinct report (by body digest) for every message.
CREATE TABLE sms_status_events (
    message_id      TEXT    NOT NULL,
    digest          TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    status_class    INTEGER NOT NULL,
    delivered_at    INTEGER,
    received_at     INTEGER NOT NULL,
    stream_sequence INTEGER NOT NULL,  -- the earliest delivery of this body
    raw_json        TEXT    NOT NULL,
    PRIMARY KEY (message_id, digest)
);
