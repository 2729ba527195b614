-- A creation whose call to Meta ended without telling its outcome (Meta's answer timed out,
-- the connection dropped after the request was sent, the process died mid-call): it is
-- never sent again and waits for Meta's group_create webhook, matched by phone number and
-- subject since Meta's request id never reached the gateway.
ALTER TABLE create_requests ADD COLUMN outcome_unknown INTEGER NOT NULL DEFAULT 0;
CREATE INDEX create_requests_waiting ON create_requests (status, phone_number_id, subject);
CREATE INDEX create_requests_by_update ON create_requests (status, updated_at);

-- The creation an Idempotency-Key's request works on, recorded before Meta is called: a
-- retry answers that creation, and the key is never freed for a second call to Meta.
ALTER TABLE idempotency_keys ADD COLUMN request_id TEXT;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Retention ([retention]) prunes by age in small batches.
CREATE INDEX audit_log_by_time ON audit_log (occurred_at);
CREATE INDEX webhook_inbox_by_time ON webhook_inbox (received_at);
CREATE INDEX webhook_events_by_time ON webhook_events (received_at);
CREATE INDEX team_events_by_time ON team_events (created_at);
