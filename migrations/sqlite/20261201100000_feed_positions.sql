-- The feed is read in (tx, seq) order so that PostgreSQL can hide events of transactions still
-- running. SQLite commits one transaction at a time: seq order is commit order, tx stays 0.
ALTER TABLE team_events ADD COLUMN tx INTEGER NOT NULL DEFAULT 0;
