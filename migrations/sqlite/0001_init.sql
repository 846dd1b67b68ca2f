-- scimdesk schema, SQLite flavour. Keep in step with ../postgres/0001_init.sql:
-- Timestamps are integer microseconds since the Unix epoch; ids are 16-byte blobs.
-- same tables, columns and constraints; only the column types differ.
-- Every tenant-owned table carries organization_id; child tables reference their parent through
-- (organization_id, id) so a row can never point into another organization.

CREATE TABLE organizations (
    id               BLOB PRIMARY KEY,
    name             TEXT NOT NULL,
    name_key         TEXT NOT NULL UNIQUE,
    data_key_wrapped BLOB NOT NULL,
    master_key_id    TEXT NOT NULL,
    created_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE connections (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('scim_target', 'scim_inbound', 'scim_source', 'keycloak', 'zitadel', 'saml')),
    base_url        TEXT,
    auth_method     TEXT NOT NULL CHECK (auth_method IN ('none', 'bearer', 'oauth2_client_credentials')),
    secret_sealed   BLOB,
    settings        TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'paused', 'quarantined')),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, name_key)
) STRICT;

CREATE TABLE users (
    id                   BLOB PRIMARY KEY,
    organization_id      BLOB NOT NULL REFERENCES organizations (id),
    user_name            TEXT NOT NULL,
    user_name_key        TEXT NOT NULL,
    external_id          TEXT,
    display_name         TEXT,
    given_name           TEXT,
    family_name          TEXT,
    emails               TEXT NOT NULL,
    active               INTEGER NOT NULL,
    lifecycle_state      TEXT NOT NULL CHECK (lifecycle_state IN ('active', 'suspended', 'deprovisioned')),
    source_connection_id BLOB,
    attributes           TEXT NOT NULL,
    version              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, user_name_key),
    FOREIGN KEY (organization_id, source_connection_id) REFERENCES connections (organization_id, id)
) STRICT;
CREATE INDEX users_external_id ON users (organization_id, external_id);

CREATE TABLE groups (
    id                   BLOB PRIMARY KEY,
    organization_id      BLOB NOT NULL REFERENCES organizations (id),
    display_name         TEXT NOT NULL,
    external_id          TEXT,
    source_connection_id BLOB,
    attributes           TEXT NOT NULL,
    version              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, source_connection_id) REFERENCES connections (organization_id, id)
) STRICT;
CREATE INDEX groups_display_name ON groups (organization_id, display_name);
CREATE INDEX groups_external_id ON groups (organization_id, external_id);

CREATE TABLE memberships (
    organization_id BLOB NOT NULL,
    group_id        BLOB NOT NULL,
    user_id         BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id),
    FOREIGN KEY (organization_id, group_id) REFERENCES groups (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX memberships_user ON memberships (organization_id, user_id);

CREATE TABLE roles (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    description     TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, name_key)
) STRICT;

CREATE TABLE role_mappings (
    id                   BLOB PRIMARY KEY,
    organization_id      BLOB NOT NULL REFERENCES organizations (id),
    source_connection_id BLOB,
    selector             TEXT NOT NULL CHECK (selector IN ('id', 'display_name', 'path')),
    match_mode           TEXT NOT NULL CHECK (match_mode IN ('exact', 'glob')),
    pattern              TEXT NOT NULL,
    role_id              BLOB NOT NULL,
    created_at           INTEGER NOT NULL,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, source_connection_id) REFERENCES connections (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, role_id) REFERENCES roles (organization_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX role_mappings_org ON role_mappings (organization_id, role_id);

CREATE TABLE target_links (
    organization_id BLOB NOT NULL,
    connection_id   BLOB NOT NULL,
    resource_type   TEXT NOT NULL CHECK (resource_type IN ('user', 'group')),
    local_id        BLOB NOT NULL,
    remote_id       TEXT NOT NULL,
    remote_etag     TEXT,
    content_hash    TEXT NOT NULL,
    synced_at       INTEGER NOT NULL,
    PRIMARY KEY (connection_id, resource_type, local_id),
    FOREIGN KEY (organization_id, connection_id) REFERENCES connections (organization_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX target_links_remote ON target_links (connection_id, resource_type, remote_id);

CREATE TABLE operations (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL,
    connection_id   BLOB NOT NULL,
    resource_type   TEXT NOT NULL CHECK (resource_type IN ('user', 'group')),
    resource_id     BLOB NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('create', 'update', 'suspend', 'delete', 'add_members', 'remove_members')),
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'retry_wait', 'failed', 'succeeded', 'skipped')),
    attempts        INTEGER NOT NULL,
    not_before      INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, connection_id) REFERENCES connections (organization_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX operations_by_state ON operations (organization_id, state, connection_id);
CREATE INDEX operations_by_resource ON operations (connection_id, resource_id, id);

CREATE TABLE operation_attempts (
    operation_id     BLOB NOT NULL,
    organization_id  BLOB NOT NULL,
    attempt_no       INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    http_status      INTEGER,
    error            TEXT,
    request_excerpt  TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (operation_id, attempt_no),
    FOREIGN KEY (organization_id, operation_id) REFERENCES operations (organization_id, id) ON DELETE CASCADE
) STRICT;

CREATE TABLE audit_events (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    occurred_at     INTEGER NOT NULL,
    actor_kind      TEXT NOT NULL CHECK (actor_kind IN ('operator', 'scim', 'api', 'system')),
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    subject_type    TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    details         TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_org ON audit_events (organization_id, id);

CREATE TABLE api_tokens (
    id              BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    connection_id   BLOB,
    name            TEXT NOT NULL,
    scope           TEXT NOT NULL CHECK (scope IN ('scim', 'api')),
    secret_hash     BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    FOREIGN KEY (organization_id, connection_id) REFERENCES connections (organization_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX api_tokens_org ON api_tokens (organization_id, id);

-- The audit trail is append-only, enforced by the database itself.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE is not allowed');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE is not allowed');
END;
