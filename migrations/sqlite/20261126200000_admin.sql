-- The audit log (DESIGN §4 `GET /v1/admin/audit`): one row per mutating /v1 call and per
-- admin call, written once the answer is known. `seq` is the order and backs the cursors.
-- `create_request_id` is the gateway's id of a group creation, so a group's records include
-- the call that created it, made before its group id was known. Never holds a token.
CREATE TABLE audit_log (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at       TEXT NOT NULL,     -- RFC 3339, UTC, milliseconds: sorts as text
    team              TEXT,              -- NULL when the caller was not authenticated
    jti               TEXT,
    method            TEXT NOT NULL,
    route             TEXT NOT NULL,     -- the route template, e.g. /v1/groups/{group_id}
    phone_number_id   TEXT,
    group_id          TEXT,
    create_request_id TEXT,
    request_id        TEXT NOT NULL,     -- X-Request-Id
    upstream_status   INTEGER,           -- HTTP status of Meta's last answer, if Meta answered
    upstream_code     INTEGER,           -- Meta's error.code, if Meta refused
    fbtrace_id        TEXT,
    status            INTEGER NOT NULL,  -- the gateway's answer
    details           TEXT               -- JSON object, e.g. the jti of an issued token
);
CREATE INDEX audit_log_by_team ON audit_log (team, seq);
CREATE INDEX audit_log_by_group ON audit_log (group_id, seq);
CREATE INDEX audit_log_by_create_request ON audit_log (create_request_id);
CREATE INDEX create_requests_by_group ON create_requests (group_id);

-- Revoked token ids. Every replica keeps them in memory and reads the rows added since its
-- last look (by `seq`) at least every second.
CREATE TABLE revoked_tokens (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    jti        TEXT NOT NULL UNIQUE,
    revoked_at TEXT NOT NULL,
    revoked_by TEXT                      -- the admin team, or `cli`
);
