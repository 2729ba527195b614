-- Background jobs that one replica at a time runs (reconciliation, DESIGN §15): who holds
-- each, and until when (Unix ms).
CREATE TABLE job_leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms INTEGER NOT NULL
);
