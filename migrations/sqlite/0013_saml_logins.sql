-- SAML 2.0 sources (issue 19). Keep in step with ../postgres/0013_saml_logins.sql.
--
-- The replay cache: the ID of every assertion accepted from a SAML source, kept until the
-- assertion would be refused as expired anyway; written in the login's transaction.
CREATE TABLE saml_assertions (
    connection_id   BLOB NOT NULL,
    assertion_id    TEXT NOT NULL,
    organization_id BLOB NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (connection_id, assertion_id)
) STRICT;
CREATE INDEX saml_assertions_expiry ON saml_assertions (expires_at);
