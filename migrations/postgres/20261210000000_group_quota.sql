-- Quotas (DESIGN §15) count a number's active groups and its pending creations at every
-- creation.
CREATE INDEX groups_by_number ON groups (phone_number_id, status);
