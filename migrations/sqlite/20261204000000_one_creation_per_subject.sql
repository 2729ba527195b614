-- At most one creation per (phone number, subject) waits without Meta's request id, across
-- all teams and replicas: a group_create webhook matched by number and subject (when Meta's
-- answer was lost) can then belong to one creation only, never to another team's.
-- Rows written before this migration do not hold their subject (`holds_subject = 0`), so the
-- index builds whatever was pending; they end within webhooks.creation_timeout_seconds.
ALTER TABLE create_requests ADD COLUMN holds_subject INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX create_requests_one_waiting_per_subject
    ON create_requests (phone_number_id, subject)
    WHERE holds_subject = 1 AND status = 'pending' AND meta_request_id IS NULL;
