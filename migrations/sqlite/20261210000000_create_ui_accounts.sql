-- The web UI (issue 20): operator accounts for /admin, tenant members for /portal, the
-- server-side sessions of both, and the one-time sign-in links members may be sent.
-- Passwords are argon2id PHC strings; sessions and links are kept as the SHA-256 of their
-- secret, so the table alone signs no one in.
CREATE TABLE operators (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at_ms INTEGER NOT NULL
);

-- A member belongs to one tenant; an email address is one member.
CREATE TABLE tenant_members (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    email         TEXT NOT NULL UNIQUE,
    -- NULL until the member sets one (an invited member signs in by link).
    password_hash TEXT,
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    invited_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE INDEX tenant_members_tenant ON tenant_members (tenant_id);

CREATE TABLE ui_sessions (
    id_hash         TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('operator', 'member')),
    -- The operator's name, or the member's id.
    subject         TEXT NOT NULL,
    -- A member's tenant (NULL for operators).
    tenant_id       TEXT REFERENCES tenants (id),
    csrf_token      TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    last_seen_at_ms INTEGER NOT NULL,
    -- The absolute end, whatever the activity.
    expires_at_ms   INTEGER NOT NULL,
    revoked_at_ms   INTEGER,
    CHECK ((kind = 'member') = (tenant_id IS NOT NULL))
);

CREATE INDEX ui_sessions_subject ON ui_sessions (kind, subject);

CREATE TABLE login_links (
    token_hash    TEXT PRIMARY KEY,
    member_id     TEXT NOT NULL REFERENCES tenant_members (id),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER
);
