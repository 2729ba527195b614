-- Usage (DESIGN §15): each billable message of Meta's message statuses, counted once (the
-- message id is the key, whatever statuses Meta sends or resends for it), with the team that
-- owned its group, its number, the UTC day of the status and Meta's pricing category.
CREATE TABLE message_usage (
    message_id      TEXT PRIMARY KEY,
    team            TEXT,
    phone_number_id TEXT NOT NULL,
    day             TEXT NOT NULL,
    category        TEXT NOT NULL,
    pricing_model   TEXT,
    recorded_at     TEXT NOT NULL
);
CREATE INDEX message_usage_by_day ON message_usage (day, team);
