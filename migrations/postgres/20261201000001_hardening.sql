-- As the SQLite migration of the same name: creations whose outcome at Meta is unknown wait
-- for the webhook (matched by number and subject); an Idempotency-Key knows its creation;
-- retention prunes by age.
ALTER TABLE create_requests ADD COLUMN outcome_unknown BIGINT NOT NULL DEFAULT 0;
CREATE INDEX create_requests_waiting ON create_requests (status, phone_number_id, subject);
CREATE INDEX create_requests_by_update ON create_requests (status, updated_at);

ALTER TABLE idempotency_keys ADD COLUMN request_id TEXT;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

CREATE INDEX audit_log_by_time ON audit_log (occurred_at);
CREATE INDEX webhook_inbox_by_time ON webhook_inbox (received_at);
CREATE INDEX webhook_events_by_time ON webhook_events (received_at);
CREATE INDEX team_events_by_time ON team_events (created_at);
