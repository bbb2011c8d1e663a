-- The opt-out list of one product (sms, chat, voice): append-only, keyed by the provider's id.
CREATE TABLE opt_outs (
    channel         TEXT    NOT NULL,  -- sms, whatsapp, rcs, voice
    id              TEXT    NOT NULL,  -- uuid or integer, as text
    receiver        TEXT    NOT NULL,  -- digits only
    scope           TEXT    NOT NULL,  -- the provider's "type", lower case: sender, category, all, ...
    value           TEXT    NOT NULL,  -- as sent
    created_at      INTEGER,           -- microseconds since the epoch
    listed_at       INTEGER NOT NULL,  -- created_at, or received_at when absent: the listing order
    status          TEXT,
    received_at     INTEGER NOT NULL,
    stream_sequence INTEGER NOT NULL,
    raw_json        TEXT    NOT NULL,
    PRIMARY KEY (channel, id)
);
CREATE INDEX opt_outs_by_receiver ON opt_outs (receiver, channel);
CREATE INDEX opt_outs_by_listed ON opt_outs (listed_at, channel, id);
