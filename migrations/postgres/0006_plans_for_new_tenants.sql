-- Plans that stay good while a new organization fills up. Keep in step with
-- ../sqlite/0006_plans_for_new_tenants.sql.
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

-- A time-ordered id (UUIDv7, RFC 9562 §5.7) made inside a statement, for rows that one
-- statement creates in numbers it cannot know beforehand (the operations of a new user, one per
-- target: see CREATE_USER_AT_ONCE in src/store/postgres.rs). Like the ids made in Rust, it keeps
-- inserts at the right-hand end of the id indexes. PostgreSQL 15 has no uuidv7(); this is the
-- layout written out: 48 bits of Unix milliseconds, then a random v4 id's remaining bits with
-- its version nibble turned from 4 into 7.
CREATE FUNCTION scimdesk_uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
