-- The durable queue (docs/operations.md). The hot table holds only unfinished work; finishing
-- moves a row to operation_history in the same transaction, so claims scan a small table.
--
-- * `seq` orders operations of one resource at one target: assigned at insert, after the change
--   took its row locks, so it follows commit order even across processes (a UUIDv7 made in two
--   processes within one millisecond would not).
-- * `in_flight` is not a stored state: a claim writes only lease_owner / lease_until / attempts,
--   none of them indexed, so taking a lease is a HOT update.
-- * `failed` rows are parked at not_before = 9999-12-31 so they never sit at the head of the
--   claim index; they still block later work on the same resource.
CREATE TABLE operation_queue (
    seq             BIGSERIAL PRIMARY KEY,
    id              UUID NOT NULL UNIQUE,
    organization_id UUID NOT NULL,
    connection_id   UUID NOT NULL,
    resource_type   TEXT NOT NULL CHECK (resource_type IN ('user', 'group')),
    resource_id     UUID NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('create', 'update', 'suspend', 'delete', 'add_members', 'remove_members')),
    payload         JSONB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'retry_wait', 'failed')),
    attempts        INTEGER NOT NULL,
    budget_from     INTEGER NOT NULL DEFAULT 0,
    not_before      TIMESTAMPTZ NOT NULL,
    lease_owner     UUID,
    lease_until     TIMESTAMPTZ,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
) WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000
);
CREATE INDEX operation_queue_claim ON operation_queue (connection_id, not_before, seq);
CREATE INDEX operation_queue_resource ON operation_queue (connection_id, resource_id, seq);

-- Finished work: succeeded, or skipped by an operator (with the reason in `note`).
CREATE TABLE operation_history (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    connection_id   UUID NOT NULL,
    resource_type   TEXT NOT NULL,
    resource_id     UUID NOT NULL,
    action          TEXT NOT NULL,
    payload         JSONB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('succeeded', 'skipped')),
    attempts        INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    note            TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX operation_history_connection ON operation_history (connection_id, finished_at);

-- Attempts outlive the move from queue to history, so they reference the operation by id only.
CREATE TABLE operation_attempts_v2 (
    operation_id     UUID NOT NULL,
    attempt_no       INTEGER NOT NULL,
    organization_id  UUID NOT NULL,
    connection_id    UUID NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    duration_ms      BIGINT NOT NULL,
    http_status      INTEGER,
    error            TEXT,
    request_excerpt  TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (operation_id, attempt_no)
);

INSERT INTO operation_queue (id, organization_id, connection_id, resource_type, resource_id, action, payload,
                             state, attempts, not_before, last_error, created_at, updated_at)
SELECT id, organization_id, connection_id, resource_type, resource_id, action, payload,
       CASE state WHEN 'in_flight' THEN 'pending' ELSE state END, attempts,
       CASE state WHEN 'failed' THEN '9999-12-31T00:00:00Z'::timestamptz ELSE not_before END, last_error, created_at, updated_at
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
ALTER INDEX operation_attempts_v2_pkey RENAME TO operation_attempts_pkey;

-- What the target was last sent, so an update can PATCH only what changed.
ALTER TABLE target_links ADD COLUMN last_sent JSONB;

-- Delivery statistics per connection, per minute, per process: each process owns its rows, so
-- recording never contends; health reads a day of them (at most 1,440 rows per process).
CREATE TABLE connection_stats (
    connection_id   UUID NOT NULL,
    minute          TIMESTAMPTZ NOT NULL,
    process_id      UUID NOT NULL,
    organization_id UUID NOT NULL,
    attempts        BIGINT NOT NULL,
    failures        BIGINT NOT NULL,
    latency_buckets TEXT NOT NULL,
    last_attempt_at TIMESTAMPTZ,
    last_success_at TIMESTAMPTZ,
    PRIMARY KEY (connection_id, minute, process_id)
);

-- Finishing work upserts target links in batches; their foreign key to the connection row
-- would share-lock that one row from every completing worker (see 0002). The store deletes a
-- connection's links explicitly.
ALTER TABLE target_links DROP CONSTRAINT target_links_organization_id_connection_id_fkey;
