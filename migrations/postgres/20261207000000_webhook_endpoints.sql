-- Team-managed webhook endpoints: several per team, each with its own secret, event-type
-- filter, health and delivery state. The endpoint of `teams.<t>.webhook` in configuration is
-- the row with id 'config' (written at start, its secret stays in configuration).
DROP TABLE webhook_endpoints;
CREATE TABLE webhook_endpoints (
    team                   TEXT NOT NULL,
    id                     TEXT NOT NULL,
    url                    TEXT NOT NULL,
    description            TEXT NOT NULL DEFAULT '',
    event_types            TEXT,              -- JSON array of exact types or 'family.*'; NULL = all
    sealed_secret          TEXT,              -- AES-256-GCM under storage.encryption_key; NULL for 'config'
    previous_sealed_secret TEXT,              -- the secret before the last rotation…
    previous_secret_until  BIGINT,           -- …signed with too until this unix ms
    disabled               BIGINT NOT NULL DEFAULT 0,
    disabled_reason        TEXT,
    disabled_at            TEXT,
    failing_since          BIGINT,           -- unix ms of the first failure of the current run
    consecutive_failures   BIGINT NOT NULL DEFAULT 0,
    paused_until           BIGINT NOT NULL DEFAULT 0,  -- a failing endpoint is tried again then
    last_success_at        TEXT,
    last_failure_at        TEXT,
    last_error             TEXT,
    lease_owner            TEXT,              -- the replica delivering to it now…
    lease_until            BIGINT NOT NULL DEFAULT 0,  -- …until this unix ms
    served_at              BIGINT NOT NULL DEFAULT 0,  -- last time a replica took it: fair turns
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    PRIMARY KEY (team, id)
);

-- One row per (team event, endpoint): its state, whichever replica makes the attempts.
-- status: pending (due at next_attempt_at) | delivered | failed (retried for
-- webhooks.retry_for, or 410; replayable).
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    event_seq       BIGINT NOT NULL REFERENCES team_events (seq),
    team            TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,  -- unix ms
    first_due_at    BIGINT NOT NULL,  -- unix ms: retries run for webhooks.retry_for from here
    last_status     BIGINT,
    last_error      TEXT,
    delivered_at    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (team, endpoint_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (team, endpoint_id, status, next_attempt_at, event_seq);
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_seq);

-- Every attempt, for the team's attempts log (newest first).
CREATE TABLE webhook_attempts (
    id          BIGSERIAL PRIMARY KEY,
    team        TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    outcome     TEXT NOT NULL,  -- succeeded | failed
    http_status BIGINT,
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    at          TEXT NOT NULL,
    at_ms       BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (team, endpoint_id, id);
CREATE INDEX webhook_attempts_by_time ON webhook_attempts (at_ms);

-- Deliveries still pending for configuration's endpoints carry over.
INSERT INTO webhook_deliveries (event_seq, team, endpoint_id, status, attempts, next_attempt_at,
                                first_due_at, last_status, last_error, created_at, updated_at)
SELECT event_seq, team, 'config', 'pending', attempts, next_attempt_at, next_attempt_at,
       last_status, last_error, created_at, updated_at
FROM event_deliveries WHERE status = 'pending';
DROP TABLE event_deliveries;
