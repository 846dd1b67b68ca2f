-- Sources scimdesk pulls from (issue 17): each sync run recorded, the incremental cursor kept
-- with the changes it covers, and an exception kind for a sync the deletion guard stopped.
-- Keep in step with ../sqlite/0008_source_sync.sql.

CREATE TABLE sync_runs (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    connection_id   UUID NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL,
    full_sync       BOOLEAN NOT NULL,
    dry_run         BOOLEAN NOT NULL,
    actor           TEXT NOT NULL,
    counts          JSONB NOT NULL,
    error           TEXT
);
CREATE INDEX sync_runs_connection ON sync_runs (connection_id, started_at);

-- Written in the transaction of the last batch a cursor covers, so a crash never skips nor
-- repeats a page.
CREATE TABLE sync_cursors (
    connection_id   UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    cursor          TEXT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- One sync per source at a time, across processes: a claim that expires if its process dies.
CREATE TABLE sync_claims (
    connection_id   UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    owner           UUID NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);

ALTER TABLE exceptions DROP CONSTRAINT exceptions_kind_check;
ALTER TABLE exceptions ADD CONSTRAINT exceptions_kind_check
    CHECK (kind IN ('unmapped_group', 'conflict', 'unknown_at_target', 'sync_guard'));
