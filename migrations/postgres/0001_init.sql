-- scimdesk schema, PostgreSQL flavour. Keep in step with ../sqlite/0001_init.sql:
-- same tables, columns and constraints; only the column types differ.
-- Every tenant-owned table carries organization_id; child tables reference their parent through
-- (organization_id, id) so a row can never point into another organization.

CREATE TABLE organizations (
    id               UUID PRIMARY KEY,
    name             TEXT NOT NULL,
    name_key         TEXT NOT NULL UNIQUE,
    data_key_wrapped BYTEA NOT NULL,
    master_key_id    TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE connections (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('scim_target', 'scim_inbound', 'scim_source', 'keycloak', 'zitadel', 'saml')),
    base_url        TEXT,
    auth_method     TEXT NOT NULL CHECK (auth_method IN ('none', 'bearer', 'oauth2_client_credentials')),
    secret_sealed   BYTEA,
    settings        JSONB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'paused', 'quarantined')),
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, name_key)
);

CREATE TABLE users (
    id                   UUID PRIMARY KEY,
    organization_id      UUID NOT NULL REFERENCES organizations (id),
    user_name            TEXT NOT NULL,
    user_name_key        TEXT NOT NULL,
    external_id          TEXT,
    display_name         TEXT,
    given_name           TEXT,
    family_name          TEXT,
    emails               JSONB NOT NULL,
    active               BOOLEAN NOT NULL,
    lifecycle_state      TEXT NOT NULL CHECK (lifecycle_state IN ('active', 'suspended', 'deprovisioned')),
    source_connection_id UUID,
    attributes           JSONB NOT NULL,
    version              BIGINT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, user_name_key),
    FOREIGN KEY (organization_id, source_connection_id) REFERENCES connections (organization_id, id)
);
CREATE INDEX users_external_id ON users (organization_id, external_id);

CREATE TABLE groups (
    id                   UUID PRIMARY KEY,
    organization_id      UUID NOT NULL REFERENCES organizations (id),
    display_name         TEXT NOT NULL,
    external_id          TEXT,
    source_connection_id UUID,
    attributes           JSONB NOT NULL,
    version              BIGINT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, source_connection_id) REFERENCES connections (organization_id, id)
);
CREATE INDEX groups_display_name ON groups (organization_id, display_name);
CREATE INDEX groups_external_id ON groups (organization_id, external_id);

CREATE TABLE memberships (
    organization_id UUID NOT NULL,
    group_id        UUID NOT NULL,
    user_id         UUID NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, user_id),
    FOREIGN KEY (organization_id, group_id) REFERENCES groups (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX memberships_user ON memberships (organization_id, user_id);

CREATE TABLE roles (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    description     TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, name_key)
);

CREATE TABLE role_mappings (
    id                   UUID PRIMARY KEY,
    organization_id      UUID NOT NULL REFERENCES organizations (id),
    source_connection_id UUID,
    selector             TEXT NOT NULL CHECK (selector IN ('id', 'display_name', 'path')),
    match_mode           TEXT NOT NULL CHECK (match_mode IN ('exact', 'glob')),
    pattern              TEXT NOT NULL,
    role_id              UUID NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, source_connection_id) REFERENCES connections (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, role_id) REFERENCES roles (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX role_mappings_org ON role_mappings (organization_id, role_id);

CREATE TABLE target_links (
    organization_id UUID NOT NULL,
    connection_id   UUID NOT NULL,
    resource_type   TEXT NOT NULL CHECK (resource_type IN ('user', 'group')),
    local_id        UUID NOT NULL,
    remote_id       TEXT NOT NULL,
    remote_etag     TEXT,
    content_hash    TEXT NOT NULL,
    synced_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connection_id, resource_type, local_id),
    FOREIGN KEY (organization_id, connection_id) REFERENCES connections (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX target_links_remote ON target_links (connection_id, resource_type, remote_id);

CREATE TABLE operations (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    connection_id   UUID NOT NULL,
    resource_type   TEXT NOT NULL CHECK (resource_type IN ('user', 'group')),
    resource_id     UUID NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('create', 'update', 'suspend', 'delete', 'add_members', 'remove_members')),
    payload         JSONB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'retry_wait', 'failed', 'succeeded', 'skipped')),
    attempts        INTEGER NOT NULL,
    not_before      TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, connection_id) REFERENCES connections (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX operations_by_state ON operations (organization_id, state, connection_id);
CREATE INDEX operations_by_resource ON operations (connection_id, resource_id, id);

CREATE TABLE operation_attempts (
    operation_id     UUID NOT NULL,
    organization_id  UUID NOT NULL,
    attempt_no       INTEGER NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    duration_ms      BIGINT NOT NULL,
    http_status      INTEGER,
    error            TEXT,
    request_excerpt  TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (operation_id, attempt_no),
    FOREIGN KEY (organization_id, operation_id) REFERENCES operations (organization_id, id) ON DELETE CASCADE
);

CREATE TABLE audit_events (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    occurred_at     TIMESTAMPTZ NOT NULL,
    actor_kind      TEXT NOT NULL CHECK (actor_kind IN ('operator', 'scim', 'api', 'system')),
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    subject_type    TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    details         JSONB NOT NULL
);
CREATE INDEX audit_events_org ON audit_events (organization_id, id);

-- The audit trail is append-only, enforced by the database itself.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE api_tokens (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    connection_id   UUID,
    name            TEXT NOT NULL,
    scope           TEXT NOT NULL CHECK (scope IN ('scim', 'api')),
    secret_hash     BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ,
    FOREIGN KEY (organization_id, connection_id) REFERENCES connections (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX api_tokens_org ON api_tokens (organization_id, id);
