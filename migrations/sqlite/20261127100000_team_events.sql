-- Team events (DESIGN §6): each group event as the owning team sees it. `seq` is the feed
-- order and backs its cursors; `id` is the public id and the `webhook-id` of every delivery
-- attempt. `team` is NULL for events of groups no team owns (kept for administrators).
CREATE TABLE team_events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    webhook_event_id INTEGER NOT NULL UNIQUE REFERENCES webhook_events (id),
    team             TEXT,
    type             TEXT NOT NULL,
    occurred_at      TEXT NOT NULL,
    phone_number_id  TEXT NOT NULL,
    group_id         TEXT,
    request_id       TEXT,
    data             TEXT NOT NULL,  -- JSON object
    created_at       TEXT NOT NULL
);
CREATE INDEX team_events_feed ON team_events (team, seq);
CREATE INDEX team_events_by_group ON team_events (group_id, seq);

-- One row per team event to push to the team's webhook.url. A restart resumes from here.
-- status: pending (due at next_attempt_at; while an attempt runs, next_attempt_at is its
-- lease) | delivered | failed (retries exhausted, 410, or endpoint disabled mid-way) |
-- skipped (the team has no webhook.url, or its endpoint was disabled).
CREATE TABLE event_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_seq       INTEGER NOT NULL UNIQUE REFERENCES team_events (seq),
    team            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,  -- unix milliseconds
    last_attempt_at TEXT,
    last_status     INTEGER,           -- HTTP status of the last answer, if any
    last_error      TEXT,
    delivered_at    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX event_deliveries_due ON event_deliveries (status, team, next_attempt_at);
CREATE INDEX event_deliveries_next ON event_deliveries (status, next_attempt_at);

-- The state of each team's webhook endpoint, for administrators: a disabled endpoint
-- receives nothing until its URL changes in configuration.
CREATE TABLE webhook_endpoints (
    team            TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'enabled',  -- enabled | disabled
    failing_since   INTEGER,                          -- unix ms of the first failure of a streak
    last_success_at TEXT,
    last_failure_at TEXT,
    last_error      TEXT,
    disabled_at     TEXT,
    disabled_reason TEXT,
    updated_at      TEXT NOT NULL
);
