-- Groups inside groups (RFC 7643 §4.2: a Group's members may be Groups). group_nesting holds
-- the direct Group members a client pushed; memberships holds every user's effective
-- membership, flattened, so that mappings, fan-out and targets read one table as before.
-- `direct` says whether the user was named as a member of the group itself (GET shows those)
-- or is there through a group inside it. Keep in step with ../sqlite/0010_nested_groups.sql.

ALTER TABLE memberships ADD COLUMN direct BOOLEAN NOT NULL DEFAULT TRUE;

CREATE TABLE group_nesting (
    organization_id UUID NOT NULL,
    parent_id       UUID NOT NULL,
    child_id        UUID NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (parent_id, child_id),
    CHECK (parent_id <> child_id),
    FOREIGN KEY (organization_id, parent_id) REFERENCES groups (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, child_id) REFERENCES groups (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX group_nesting_child ON group_nesting (organization_id, child_id);
