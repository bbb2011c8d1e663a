-- One row per inbound message id: the earliest delivery of that id (model.rs).
CREATE TABLE vmn_messages (
    id                 TEXT    PRIMARY KEY,  -- the provider's payload.id
    virtual_number     TEXT    NOT NULL,     -- channels[].to, digits only; '' when not given
    sender             TEXT    NOT NULL,     -- recipient.from, digits only
    message_type       TEXT,                 -- message.type as sent: text, image, ...
    text               TEXT,                 -- the text, or a media caption
    keyword1           TEXT    NOT NULL,     -- first word of the text, case-folded; '' when none
    keyword2           TEXT    NOT NULL,     -- second word
    profile_id         TEXT,                 -- recipient.user, when sent
    profile_username   TEXT,
    profile_first_name TEXT,
    profile_last_name  TEXT,
    profile_email      TEXT,
    profile_phone      TEXT,
    profile_picture    TEXT,
    profile_gender     TEXT,
    profile_title      TEXT,
    message_id         TEXT,                 -- message.id, the provider's own id (newer accounts)
    message_at         BIGINT,               -- message.timestamp, microseconds since the epoch
    payload_json       TEXT    NOT NULL,     -- message.payload as JSON; '' when absent
    received_at        BIGINT  NOT NULL,     -- when the gateway received the kept delivery
    stream_sequence    BIGINT  NOT NULL,     -- of the kept delivery (the earliest)
    raw_json           TEXT    NOT NULL      -- the kept delivery's body
);
CREATE INDEX vmn_messages_by_received ON vmn_messages (received_at, id);
CREATE INDEX vmn_messages_by_number ON vmn_messages (virtual_number, received_at);
CREATE INDEX vmn_messages_by_sender ON vmn_messages (sender, received_at);
CREATE INDEX vmn_messages_by_keyword ON vmn_messages (keyword1, received_at);
