-- Team events stored without a team, for the catch-up that gives them to the team whose
-- creation named their group later (another replica processed them before that creation
-- committed). Ownerless events are few: the index stays small.
CREATE INDEX team_events_ownerless ON team_events (created_at)
    WHERE team IS NULL AND group_id IS NOT NULL;
