-- A stored POST whose processing keeps failing is set aside after a few attempts, so one
-- bad POST cannot hold back every later one. Its body stays here for inspection.
ALTER TABLE webhook_inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_inbox ADD COLUMN last_error TEXT;
ALTER TABLE webhook_inbox ADD COLUMN failed_at TEXT;
