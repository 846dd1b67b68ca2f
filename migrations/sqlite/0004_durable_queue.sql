-- The durable queue; see migrations/postgres/0004 and docs/operations.md. SQLite has one
-- writer at a time, so a claim is a BEGIN IMMEDIATE transaction instead of SKIP LOCKED.
-- `failed` rows are parked at not_before = 9999-12-31 (253402214400000000 microseconds).
CREATE TABLE operation_queue (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              BLOB NOT NULL UNIQUE,
    organization_id BLOB NOT NULL,
    connection_id   BLOB NOT NULL,
    resource_type   TEXT NOT NULL CHECK (resource_type IN ('user', 'group')),
    resource_id     BLOB NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('create', 'update', 'suspend', 'delete', 'add_members', 'remove_members')),
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'retry_wait', 'failed')),
    attempts        INTEGER NOT NULL,
    budget_from     INTEGER NOT NULL DEFAULT 0,
    not_before      INTEGER NOT NULL,
    lease_owner     BLOB,
    lease_until     INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX operation_queue_claim ON operation_queue (connection_id, not_before, seq);
CREATE INDEX operation_queue_resource ON operation_queue (connection_id, resource_id, seq);

CREATE TABLE operation_history (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL,
    connection_id   BLOB NOT NULL,
    resource_type   TEXT NOT NULL,
    resource_id     BLOB NOT NULL,
    action          TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('succeeded', 'skipped')),
    attempts        INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    note            TEXT,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX operation_history_connection ON operation_history (connection_id, finished_at);

CREATE TABLE operation_attempts_v2 (
    operation_id     BLOB NOT NULL,
    attempt_no       INTEGER NOT NULL,
    organization_id  BLOB NOT NULL,
    connection_id    BLOB NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    http_status      INTEGER,
    error            TEXT,
    request_excerpt  TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (operation_id, attempt_no)
) STRICT;

INSERT INTO operation_queue (id, organization_id, connection_id, resource_type, resource_id, action, payload,
                             state, attempts, not_before, last_error, created_at, updated_at)
SELECT id, organization_id, connection_id, resource_type, resource_id, action, payload,
       CASE state WHEN 'in_flight' THEN 'pending' ELSE state END, attempts,
       CASE state WHEN 'failed' THEN 253402214400000000 ELSE not_before END, last_error, created_at, updated_at
FROM operations WHERE state IN ('pending', 'in_flight', 'retry_wait', 'failed')
ORDER BY created_at, id;
INSERT INTO operation_history (id, organization_id, connection_id, resource_type, resource_id, action, payload,
                               state, attempts, last_error, created_at, finished_at)
SELECT id, organization_id, connection_id, resource_type, resource_id, action, payload, state, attempts,
       last_error, created_at, updated_at
FROM operations WHERE state IN ('succeeded', 'skipped');
INSERT INTO operation_attempts_v2 (operation_id, attempt_no, organization_id, connection_id, started_at,
                                   duration_ms, http_status, error, request_excerpt, response_excerpt)
SELECT a.operation_id, a.attempt_no, a.organization_id, o.connection_id, a.started_at, a.duration_ms,
       a.http_status, a.error, a.request_excerpt, a.response_excerpt
FROM operation_attempts a JOIN operations o ON o.id = a.operation_id;
DROP TABLE operation_attempts;
DROP TABLE operations;
ALTER TABLE operation_attempts_v2 RENAME TO operation_attempts;

ALTER TABLE target_links ADD COLUMN last_sent TEXT;

CREATE TABLE connection_stats (
    connection_id   BLOB NOT NULL,
    minute          INTEGER NOT NULL,
    process_id      BLOB NOT NULL,
    organization_id BLOB NOT NULL,
    attempts        INTEGER NOT NULL,
    failures        INTEGER NOT NULL,
    latency_buckets TEXT NOT NULL,
    last_attempt_at INTEGER,
    last_success_at INTEGER,
    PRIMARY KEY (connection_id, minute, process_id)
) STRICT;
