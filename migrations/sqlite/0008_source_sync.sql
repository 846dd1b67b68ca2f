-- Sources scimdesk pulls from (issue 17): each sync run recorded, the incremental cursor kept
-- with the changes it covers, and an exception kind for a sync the deletion guard stopped.
-- Keep in step with ../postgres/0008_source_sync.sql.

CREATE TABLE sync_runs (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    connection_id   BLOB NOT NULL,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER NOT NULL,
    full_sync       INTEGER NOT NULL,
    dry_run         INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    counts          TEXT NOT NULL,
    error           TEXT
) STRICT;
CREATE INDEX sync_runs_connection ON sync_runs (connection_id, started_at);

CREATE TABLE sync_cursors (
    connection_id   BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    cursor          TEXT NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- One sync per source at a time, across processes: a claim that expires if its process dies.
CREATE TABLE sync_claims (
    connection_id   BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    owner           BLOB NOT NULL,
    expires_at      INTEGER NOT NULL
) STRICT;

-- SQLite cannot change a CHECK constraint: the table is rebuilt with the new kind.
CREATE TABLE exceptions_new (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    kind            TEXT NOT NULL CHECK (kind IN ('unmapped_group', 'conflict', 'unknown_at_target', 'sync_guard')),
    subject_key     TEXT NOT NULL,
    connection_id   BLOB,
    subject         TEXT NOT NULL,
    summary         TEXT NOT NULL,
    details         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('open', 'resolved', 'dismissed')),
    resolution      TEXT,
    resolved_by     TEXT,
    created_at      INTEGER NOT NULL,
    resolved_at     INTEGER
) STRICT;
INSERT INTO exceptions_new SELECT * FROM exceptions;
DROP TABLE exceptions;
ALTER TABLE exceptions_new RENAME TO exceptions;
CREATE UNIQUE INDEX exceptions_open ON exceptions (organization_id, kind, subject_key) WHERE state = 'open';
CREATE INDEX exceptions_org ON exceptions (organization_id, created_at);
