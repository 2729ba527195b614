-- Meta's 131208 (too many group operations): until when each number's group operations are
-- held back, for every replica (DESIGN §15). One row per number ever throttled.
CREATE TABLE number_backoffs (
    phone_number_id TEXT PRIMARY KEY,
    until_ms        BIGINT NOT NULL,
    updated_at      TEXT NOT NULL
);
