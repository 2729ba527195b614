-- Groups known to the gateway. `seq` orders the team listing and backs its cursors, so a
-- page boundary never moves when groups are added or deleted.
CREATE TABLE groups (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id          TEXT NOT NULL UNIQUE,
    phone_number_id   TEXT NOT NULL,
    owner_team        TEXT,
    subject           TEXT,
    status            TEXT NOT NULL DEFAULT 'active',  -- active | deleted
    suspended         INTEGER NOT NULL DEFAULT 0,
    invite_link       TEXT,
    participant_count INTEGER,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX groups_by_owner ON groups (owner_team, phone_number_id, status, seq);

-- A create is only complete when Meta's group_lifecycle_update arrives.
CREATE TABLE create_requests (
    request_id       TEXT PRIMARY KEY,
    meta_request_id  TEXT UNIQUE,
    team             TEXT NOT NULL,
    phone_number_id  TEXT NOT NULL,
    subject          TEXT NOT NULL,
    status           TEXT NOT NULL,  -- pending | created | failed
    group_id         TEXT,
    invite_link      TEXT,
    error            TEXT,           -- JSON
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

-- Every signed POST from Meta, stored before it is acknowledged. The body hash recognises
-- Meta's redeliveries of the same POST.
CREATE TABLE webhook_inbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    body_sha256  TEXT NOT NULL UNIQUE,
    body         BLOB NOT NULL,
    received_at  TEXT NOT NULL,
    processed_at TEXT
);
CREATE INDEX webhook_inbox_unprocessed ON webhook_inbox (processed_at, id);

-- One row per group event inside a POST; `event_key` recognises the same event when Meta
-- sends it again in another batch.
CREATE TABLE webhook_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key       TEXT NOT NULL UNIQUE,
    inbox_id        INTEGER NOT NULL,
    field           TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    phone_number_id TEXT,
    group_id        TEXT,
    meta_request_id TEXT,
    occurred_at     TEXT,
    payload         TEXT NOT NULL,
    received_at     TEXT NOT NULL
);
CREATE INDEX webhook_events_by_request ON webhook_events (meta_request_id);
CREATE INDEX webhook_events_by_group ON webhook_events (group_id, id);
