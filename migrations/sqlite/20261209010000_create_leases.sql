-- Leases (issue 19): a named job that one replica at a time should run (the invoice run) is
-- held by whoever took it last until it expires; taking it is one conditional upsert.
CREATE TABLE leases (
    name          TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
