-- Two coarser rollups beside usage_daily (issue 20), for the views across all tenants, whose
-- cost would otherwise grow with the number of keys: at 100k active keys a month of usage_daily
-- is millions of rows.
--   usage_daily_models: one row per UTC day, public model and provider (and writer shard): the
--     overview and the explorer by day, model or provider when no tenant or key is chosen.
--   usage_monthly_keys: one row per UTC calendar month, tenant and key: the explorer by tenant or
--     key over whole months.
-- The metering writers add each batch to all three in the batch's own transaction. `month` is the
-- day number (days since 1970-01-01) of the month's first day. `shard` spreads a day's row over
-- up to 16 rows, one per writer process, so that replicas' writers never wait on one another's
-- row (readers sum it away). Both are stored in their primary key's order (WITHOUT ROWID), so
-- a month's rows are read in tenant and key order without a second lookup per row.
CREATE TABLE usage_daily_models (
    day                INTEGER NOT NULL,
    public_model       TEXT    NOT NULL,
    provider           TEXT    NOT NULL,
    shard              INTEGER NOT NULL,
    requests           INTEGER NOT NULL,
    errors             INTEGER NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    cached_tokens      INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    cost_nanos         INTEGER NOT NULL,
    price_nanos        INTEGER NOT NULL,
    PRIMARY KEY (day, public_model, provider, shard),
    CHECK (typeof(cost_nanos) = 'integer' AND typeof(price_nanos) = 'integer')
) WITHOUT ROWID;

CREATE TABLE usage_monthly_keys (
    month              INTEGER NOT NULL,
    tenant_id          TEXT    NOT NULL,
    key_id             TEXT    NOT NULL,
    requests           INTEGER NOT NULL,
    errors             INTEGER NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    cached_tokens      INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    cost_nanos         INTEGER NOT NULL,
    price_nanos        INTEGER NOT NULL,
    PRIMARY KEY (month, tenant_id, key_id),
    CHECK (typeof(cost_nanos) = 'integer' AND typeof(price_nanos) = 'integer')
) WITHOUT ROWID;

-- What is already rolled up by day.
INSERT INTO usage_daily_models (day, public_model, provider, shard, requests, errors,
    prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens,
    cost_nanos, price_nanos)
SELECT day, public_model, provider, 0, SUM(requests), SUM(errors), SUM(prompt_tokens),
    SUM(completion_tokens), SUM(cached_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens),
    SUM(cost_nanos), SUM(price_nanos)
FROM usage_daily
GROUP BY day, public_model, provider;

INSERT INTO usage_monthly_keys (month, tenant_id, key_id, requests, errors, prompt_tokens,
    completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos,
    price_nanos)
SELECT CAST(julianday(date(day * 86400, 'unixepoch', 'start of month')) - 2440587.5 AS INTEGER),
    tenant_id, key_id, SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens),
    SUM(cached_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos),
    SUM(price_nanos)
FROM usage_daily
GROUP BY 1, tenant_id, key_id;
