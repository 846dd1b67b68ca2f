-- An API token's access level in its organization (read, operate or admin; see
-- src/domain/access.rs). Tokens issued before levels existed read only: least privilege.
-- SCIM tokens authenticate one inbound connection and ignore it.

ALTER TABLE api_tokens ADD COLUMN access TEXT NOT NULL DEFAULT 'read';
