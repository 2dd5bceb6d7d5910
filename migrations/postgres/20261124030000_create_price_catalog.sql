-- The price catalog: immutable versions, each a full snapshot of every (provider, model) price
-- sheet. A price change makes a new version; rows are never updated or deleted.
CREATE TABLE price_versions (
    version BIGINT PRIMARY KEY,
    created_at_ms BIGINT NOT NULL,
    source TEXT NOT NULL,
    note TEXT NOT NULL,
    entries BIGINT NOT NULL
);

CREATE TABLE prices (
    version BIGINT NOT NULL REFERENCES price_versions (version),
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    -- A tollgate_domain::pricing::PriceSheet as JSON, every rate a decimal string (dollars per token).
    sheet TEXT NOT NULL,
    max_input_tokens BIGINT,
    max_output_tokens BIGINT,
    PRIMARY KEY (version, provider, model)
);
