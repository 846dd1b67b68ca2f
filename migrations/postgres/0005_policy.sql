-- Provisioning policy (issue 5): exceptions for people to resolve, and reconciliation runs.
-- Keep in step with ../sqlite/0005_policy.sql.

-- An exception is a situation the engine will not guess about: a group no mapping covers, a
-- conflict at a target, a resource at a target that nobody here knows. At most one is open
-- per (organization, kind, subject); resolved ones stay as history.
CREATE TABLE exceptions (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    kind            TEXT NOT NULL CHECK (kind IN ('unmapped_group', 'conflict', 'unknown_at_target')),
    subject_key     TEXT NOT NULL,
    connection_id   UUID,
    subject         TEXT NOT NULL,
    summary         TEXT NOT NULL,
    details         JSONB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('open', 'resolved', 'dismissed')),
    resolution      TEXT,
    resolved_by     TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    resolved_at     TIMESTAMPTZ
);
CREATE UNIQUE INDEX exceptions_open ON exceptions (organization_id, kind, subject_key) WHERE state = 'open';
CREATE INDEX exceptions_org ON exceptions (organization_id, created_at);

CREATE TABLE reconcile_runs (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    connection_id   UUID NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL,
    dry_run         BOOLEAN NOT NULL,
    actor           TEXT NOT NULL,
    counts          JSONB NOT NULL,
    error           TEXT
);
CREATE INDEX reconcile_runs_connection ON reconcile_runs (connection_id, started_at);

