-- Answers to requests sent with an Idempotency-Key, replayed for the same team, key and
-- request for 24 hours. `completed_at` is NULL while the first request is still running.
CREATE TABLE idempotency_keys (
    team          TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status        INTEGER,
    location      TEXT,
    body          BLOB,
    created_at    TEXT NOT NULL,
    completed_at  TEXT,
    PRIMARY KEY (team, idem_key)
);
