-- The PostgreSQL schema: the SQLite migrations' tables, for several replicas sharing one
-- database. Timestamps are RFC 3339 text (UTC, milliseconds) as on SQLite, so they sort and
-- compare the same on both; every integer is BIGINT.

-- Groups known to the gateway. `seq` orders the team listing and backs its cursors.
CREATE TABLE groups (
    seq               BIGSERIAL PRIMARY KEY,
    group_id          TEXT NOT NULL UNIQUE,
    phone_number_id   TEXT NOT NULL,
    owner_team        TEXT,
    subject           TEXT,
    status            TEXT NOT NULL DEFAULT 'active',  -- active | deleted
    suspended         BIGINT NOT NULL DEFAULT 0,
    invite_link       TEXT,
    participant_count BIGINT,
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
CREATE INDEX create_requests_by_group ON create_requests (group_id);

-- Every signed POST from Meta, stored before it is acknowledged; the body hash recognises
-- Meta's redeliveries. A POST whose processing keeps failing is set aside (`failed_at`).
CREATE TABLE webhook_inbox (
    id           BIGSERIAL PRIMARY KEY,
    body_sha256  TEXT NOT NULL UNIQUE,
    body         BYTEA NOT NULL,
    received_at  TEXT NOT NULL,
    processed_at TEXT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    failed_at    TEXT
);
CREATE INDEX webhook_inbox_unprocessed ON webhook_inbox (id) WHERE processed_at IS NULL;

-- One row per group event inside a POST; `event_key` recognises the same event when Meta
-- sends it again in another batch.
CREATE TABLE webhook_events (
    id              BIGSERIAL PRIMARY KEY,
    event_key       TEXT NOT NULL UNIQUE,
    inbox_id        BIGINT NOT NULL,
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

-- Answers to requests sent with an Idempotency-Key, replayed for 24 hours. `completed_at` is
-- NULL while the first request is still running: the primary key makes one replica's claim
-- the only one, however many replicas receive the same new key at once.
CREATE TABLE idempotency_keys (
    team          TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status        BIGINT,
    location      TEXT,
    body          BYTEA,
    created_at    TEXT NOT NULL,
    completed_at  TEXT,
    PRIMARY KEY (team, idem_key)
);

-- The audit log: one row per mutating /v1 call and per admin call. Never holds a token.
CREATE TABLE audit_log (
    seq               BIGSERIAL PRIMARY KEY,
    occurred_at       TEXT NOT NULL,
    team              TEXT,
    jti               TEXT,
    method            TEXT NOT NULL,
    route             TEXT NOT NULL,
    phone_number_id   TEXT,
    group_id          TEXT,
    create_request_id TEXT,
    request_id        TEXT NOT NULL,
    upstream_status   BIGINT,
    upstream_code     BIGINT,
    fbtrace_id        TEXT,
    status            BIGINT NOT NULL,
    details           TEXT
);
CREATE INDEX audit_log_by_team ON audit_log (team, seq);
CREATE INDEX audit_log_by_group ON audit_log (group_id, seq);
CREATE INDEX audit_log_by_create_request ON audit_log (create_request_id);

-- Revoked token ids; every replica keeps them in memory and reads what was added since.
CREATE TABLE revoked_tokens (
    seq        BIGSERIAL PRIMARY KEY,
    jti        TEXT NOT NULL UNIQUE,
    revoked_at TEXT NOT NULL,
    revoked_by TEXT
);

-- Team events. The feed is read in (tx, seq) order, only up to the oldest transaction still
-- running: a seq taken by a transaction that commits later can then never be passed over by
-- a reader (see storage/sql/mod.rs, `Dialect::committed_events`).
CREATE TABLE team_events (
    seq              BIGSERIAL PRIMARY KEY,
    tx               BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    id               TEXT NOT NULL UNIQUE,
    webhook_event_id BIGINT NOT NULL UNIQUE REFERENCES webhook_events (id),
    team             TEXT,
    type             TEXT NOT NULL,
    occurred_at      TEXT NOT NULL,
    phone_number_id  TEXT NOT NULL,
    group_id         TEXT,
    request_id       TEXT,
    data             TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX team_events_feed ON team_events (team, tx, seq);
CREATE INDEX team_events_by_group ON team_events (group_id, seq);

-- One row per team event to push to the team's webhook.url; any replica may take a due one.
CREATE TABLE event_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    event_seq       BIGINT NOT NULL UNIQUE REFERENCES team_events (seq),
    team            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_attempt_at TEXT,
    last_status     BIGINT,
    last_error      TEXT,
    delivered_at    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX event_deliveries_due ON event_deliveries (status, team, next_attempt_at);
CREATE INDEX event_deliveries_next ON event_deliveries (status, next_attempt_at);

-- The state of each team's webhook endpoint.
CREATE TABLE webhook_endpoints (
    team            TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'enabled',
    failing_since   BIGINT,
    last_success_at TEXT,
    last_failure_at TEXT,
    last_error      TEXT,
    disabled_at     TEXT,
    disabled_reason TEXT,
    updated_at      TEXT NOT NULL
);
