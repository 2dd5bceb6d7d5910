-- One row per proxied request: what was asked, what served it, how it ended, what it used.
-- Request ids start with their creation time in milliseconds (hex), so the primary key is also
-- the time order: no separate created_at index is needed for time ranges.
CREATE TABLE request_log (
    id                TEXT PRIMARY KEY,
    created_at_ms     INTEGER NOT NULL,
    endpoint          TEXT    NOT NULL,
    public_model      TEXT    NOT NULL,
    provider          TEXT,
    deployment        TEXT,
    stream            INTEGER NOT NULL,
    outcome           TEXT    NOT NULL,
    status            INTEGER NOT NULL,
    attempts          INTEGER NOT NULL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    total_tokens      INTEGER,
    cached_tokens     INTEGER,
    reasoning_tokens  INTEGER,
    latency_ms        INTEGER NOT NULL,
    ttft_ms           INTEGER,
    error_code        TEXT
) WITHOUT ROWID;
