-- Plans that stay good while a new organization fills up. Keep in step with
-- ../postgres/0006_plans_for_new_tenants.sql.
--
-- The planner's statistics know nothing of an organization that was empty at the last
-- ANALYZE, so it estimates one row for it. With an index led by organization_id on both sides
-- of a join, that estimate made it scan every member of the organization for each row of the
-- other side (seen in PostgreSQL during an onboarding wave: 70-220 ms to list one group's 200
-- members, growing with the organization). Memberships are found by group (the primary key) or
-- by user (this index); neither path can be taken by the organization alone. The foreign key
-- to users (organization_id, user_id) still finds a user's rows through it.
DROP INDEX memberships_user;
CREATE INDEX memberships_user ON memberships (user_id);
