-- SAML 2.0 sources (issue 19). Keep in step with ../sqlite/0013_saml_logins.sql.
--
-- The replay cache: the ID of every assertion accepted from a SAML source, shared by every
-- process on this database, kept until the assertion would be refused as expired anyway.
-- Written in the login's transaction, so a replay racing the original waits for it and is
-- refused; a login that fails leaves its ID unspent.
CREATE TABLE saml_assertions (
    connection_id   UUID NOT NULL,
    assertion_id    TEXT NOT NULL,
    organization_id UUID NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connection_id, assertion_id)
);
CREATE INDEX saml_assertions_expiry ON saml_assertions (expires_at);

-- Every login is a sync run of its source: hundreds a second must not take turns on their
-- organization's row (see 0002); a login's organization is its connection's, read just before.
ALTER TABLE sync_runs DROP CONSTRAINT IF EXISTS sync_runs_organization_id_fkey;
