-- Tenants, their API keys (stored only as SHA-256 hashes) and the audit log of every change.
CREATE TABLE tenants (
    id                 TEXT PRIMARY KEY,
    name               TEXT    NOT NULL UNIQUE,
    status             TEXT    NOT NULL,
    billing_mode       TEXT    NOT NULL,
    credit_limit_units INTEGER,
    policy             TEXT    NOT NULL,
    limits             TEXT    NOT NULL,
    created_at_ms      INTEGER NOT NULL,
    updated_at_ms      INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT    NOT NULL REFERENCES tenants (id),
    name           TEXT    NOT NULL,
    env            TEXT    NOT NULL,
    public_id      TEXT    NOT NULL UNIQUE,
    key_hash       BLOB    NOT NULL UNIQUE,
    label          TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    expires_at_ms  INTEGER,
    allowed_models TEXT,
    limits         TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL
);

CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target_kind TEXT    NOT NULL,
    target_id   TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);
