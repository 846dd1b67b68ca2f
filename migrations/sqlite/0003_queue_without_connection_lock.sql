-- PostgreSQL's 0003 drops the operations -> connections foreign key (hot row locks); SQLite keeps
-- it. The index changes are the same on both (see the PostgreSQL file for why).
DROP INDEX operations_by_state;
DROP INDEX users_external_id;
CREATE INDEX users_external_id ON users (organization_id, external_id) WHERE external_id IS NOT NULL;
DROP INDEX groups_external_id;
CREATE INDEX groups_external_id ON groups (organization_id, external_id) WHERE external_id IS NOT NULL;
