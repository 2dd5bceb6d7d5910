-- One row per proxied request: what was asked, what served it, how it ended, what it used.
-- Request ids start with their creation time in milliseconds (hex), so the primary key is also
-- the time order: no separate created_at index is needed for time ranges.
CREATE TABLE request_log (
    id                TEXT PRIMARY KEY,
    created_at_ms     BIGINT  NOT NULL,
    endpoint          TEXT    NOT NULL,
    public_model      TEXT    NOT NULL,
    provider          TEXT,
    deployment        TEXT,
    stream            BOOLEAN NOT NULL,
    outcome           TEXT    NOT NULL,
    status            INTEGER NOT NULL,
    attempts          INTEGER NOT NULL,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    total_tokens      BIGINT,
    cached_tokens     BIGINT,
    reasoning_tokens  BIGINT,
    latency_ms        BIGINT  NOT NULL,
    ttft_ms           BIGINT,
    error_code        TEXT
);
