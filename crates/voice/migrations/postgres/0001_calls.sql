-- One row per call (`mid`): the current call record by the precedence rules (model.rs).
CREATE TABLE voice_calls (
    mid               TEXT    PRIMARY KEY,
    bridge            TEXT,                 -- the virtual number (DID), digits only
    from_number       TEXT,                 -- digits only
    to_number         TEXT,                 -- digits only
    source            TEXT,                 -- "OBD", "C2C", … as sent
    flow_id           TEXT,
    start_at          BIGINT,               -- microseconds since the epoch
    end_at            BIGINT,
    duration_seconds  BIGINT,               -- as sent, never derived from start and end
    status            TEXT,                 -- as sent
    answered          BIGINT  NOT NULL,     -- 1 when the status means answered (model.rs), else 0
    recording_url     TEXT,
    -- Click-to-call extras, when sent.
    status1           TEXT,
    status2           TEXT,
    billing           TEXT,
    hangup_by         TEXT,
    call_date         TEXT,                 -- the record's `date`, as sent
    unixtime          BIGINT,
    -- The precedence key of the current record: end time, then body digest.
    end_time_key      BIGINT  NOT NULL,
    digest            TEXT    NOT NULL,
    listed_at         BIGINT  NOT NULL,     -- start, else end, else received: list order, stats day
    received_at       BIGINT  NOT NULL,     -- when the current record was received
    first_received_at BIGINT  NOT NULL,
    last_received_at  BIGINT  NOT NULL,
    stream_sequence   BIGINT  NOT NULL,     -- of the current record
    raw_json          TEXT    NOT NULL      -- the current record
);
CREATE INDEX voice_calls_by_listed ON voice_calls (listed_at, mid);
CREATE INDEX voice_calls_by_from ON voice_calls (from_number, listed_at);
CREATE INDEX voice_calls_by_to ON voice_calls (to_number, listed_at);
CREATE INDEX voice_calls_by_bridge ON voice_calls (bridge, listed_at);
CREATE INDEX voice_calls_by_flow ON voice_calls (flow_id, listed_at);

-- Every distinct record (by body digest) for every call.
CREATE TABLE voice_call_events (
    mid              TEXT    NOT NULL,
    digest           TEXT    NOT NULL,
    status           TEXT,
    end_at           BIGINT,
    duration_seconds BIGINT,
    received_at      BIGINT  NOT NULL,
    stream_sequence  BIGINT  NOT NULL,  -- the earliest delivery of this body
    raw_json         TEXT    NOT NULL,
    PRIMARY KEY (mid, digest)
);
