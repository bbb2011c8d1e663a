-- One row per outbound message (channel, provider id): its current status by the precedence rules
-- (model.rs), and the earliest time each milestone was reported.
CREATE TABLE chat_outbound (
    channel           TEXT    NOT NULL,     -- whatsapp, rcs
    id                TEXT    NOT NULL,     -- the provider's message id
    sender            TEXT    NOT NULL,     -- "from": the business number (digits) or the RCS agent id
    recipient         TEXT    NOT NULL,     -- "to": the user's number, digits only
    status            TEXT    NOT NULL,     -- as sent
    -- The precedence key of the current status event: rank, then its timestamp, then body digest.
    status_rank       BIGINT  NOT NULL,
    status_time_key   BIGINT  NOT NULL,
    digest            TEXT    NOT NULL,
    status_at         BIGINT,               -- the current event's timestamp, microseconds since the epoch
    foreign_id        TEXT,
    -- Milestones: the earliest time each was reported by any event.
    processed_at      BIGINT,
    sent_at           BIGINT,
    delivered_at      BIGINT,
    read_at           BIGINT,
    failed_at         BIGINT,
    deleted_at        BIGINT,
    listed_at         BIGINT  NOT NULL,     -- status_at, else when the current event was received: list order, rate day
    conversation_at   BIGINT  NOT NULL,     -- the earliest time any event reports: its place in a conversation
    received_at       BIGINT  NOT NULL,     -- when the current event was received
    first_received_at BIGINT  NOT NULL,
    last_received_at  BIGINT  NOT NULL,
    stream_sequence   BIGINT  NOT NULL,     -- of the current event
    raw_json          TEXT    NOT NULL,     -- the current event
    PRIMARY KEY (channel, id)
);
CREATE INDEX chat_outbound_by_listed ON chat_outbound (listed_at, channel, id);
CREATE INDEX chat_outbound_by_recipient ON chat_outbound (recipient, listed_at);
CREATE INDEX chat_outbound_by_conversation ON chat_outbound (channel, recipient, conversation_at);
CREATE INDEX chat_outbound_by_status ON chat_outbound (status, listed_at);
CREATE INDEX chat_outbound_by_foreign_id ON chat_outbound (foreign_id);

-- Every distinct status event (by body digest) for every outbound message.
CREATE TABLE chat_status_events (
    channel         TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    digest          TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    status_at       BIGINT,
    received_at     BIGINT  NOT NULL,
    stream_sequence BIGINT  NOT NULL,  -- the earliest delivery of this body
    raw_json        TEXT    NOT NULL,
    PRIMARY KEY (channel, message_id, digest)
);

-- One row per inbound message (channel, provider id); a re-sent id keeps its earliest delivery.
CREATE TABLE chat_inbound (
    channel         TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    sender          TEXT    NOT NULL,  -- the user's number (recipient.from), digits only
    recipient       TEXT    NOT NULL,  -- the company number it came to (channels[].to), digits only
    type            TEXT    NOT NULL,  -- message.type as sent: text, image, ...
    text            TEXT,
    url             TEXT,
    caption         TEXT,
    filename        TEXT,
    mime_type       TEXT,
    profile_json    TEXT,              -- recipient.user as JSON
    message_id      TEXT,              -- message.id, when sent
    message_at      BIGINT,            -- message.timestamp, when sent
    conversation_at BIGINT  NOT NULL,  -- message_at, else received_at: its place in a conversation
    received_at     BIGINT  NOT NULL,  -- list order
    stream_sequence BIGINT  NOT NULL,
    payload_json    TEXT    NOT NULL,  -- message.payload as JSON
    raw_json        TEXT    NOT NULL,
    PRIMARY KEY (channel, id)
);
CREATE INDEX chat_inbound_by_received ON chat_inbound (received_at, channel, id);
CREATE INDEX chat_inbound_by_sender ON chat_inbound (sender, received_at);
CREATE INDEX chat_inbound_by_conversation ON chat_inbound (channel, sender, conversation_at);
CREATE INDEX chat_inbound_by_recipient ON chat_inbound (recipient, received_at);
