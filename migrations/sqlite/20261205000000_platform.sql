-- Teams and phone numbers made through the admin API (DESIGN §11); those of configuration
-- are not stored. An access token is stored only sealed (AES-256-GCM under
-- storage.encryption_key), with the fingerprint that tells tokens apart.
CREATE TABLE platform_teams (
    name            TEXT PRIMARY KEY,
    admin           INTEGER NOT NULL DEFAULT 0,
    rate_per_second INTEGER,
    rate_burst      INTEGER,
    max_groups      INTEGER,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- A team's grants, in the order given; a number may be one of configuration, so no
-- foreign key to platform_phone_numbers.
CREATE TABLE platform_team_numbers (
    team            TEXT NOT NULL REFERENCES platform_teams (name) ON DELETE CASCADE,
    phone_number_id TEXT NOT NULL,
    position        INTEGER NOT NULL,
    PRIMARY KEY (team, phone_number_id)
);
CREATE INDEX platform_team_numbers_by_number ON platform_team_numbers (phone_number_id);

CREATE TABLE platform_phone_numbers (
    phone_number_id   TEXT PRIMARY KEY,
    sealed_token      TEXT NOT NULL,
    token_fingerprint TEXT NOT NULL,
    rate_per_second   INTEGER,
    rate_burst        INTEGER,
    max_groups        INTEGER,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
