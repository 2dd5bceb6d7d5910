-- Daily usage rollups (issue 20): what the usage pages and the overview read instead of the
-- request log, so they cost the same with ten million records as with ten. One row per UTC day,
-- tenant, key, public model and provider ('' where the request log has NULL: the operator key, a
-- request no provider served). The metering writers add each batch's new records to it in the
-- batch's own transaction (the Postgres writer in its one statement), so it is never behind and
-- never ahead.
CREATE TABLE usage_daily (
    day                BIGINT NOT NULL,
    tenant_id          TEXT    NOT NULL,
    key_id             TEXT    NOT NULL,
    public_model       TEXT    NOT NULL,
    provider           TEXT    NOT NULL,
    requests           BIGINT NOT NULL,
    errors             BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost_nanos         BIGINT NOT NULL,
    price_nanos        BIGINT NOT NULL,
    PRIMARY KEY (day, tenant_id, key_id, public_model, provider)
);

CREATE INDEX usage_daily_tenant ON usage_daily (tenant_id, day);
CREATE INDEX usage_daily_key ON usage_daily (key_id, day);

-- What is already in the log.
INSERT INTO usage_daily (day, tenant_id, key_id, public_model, provider, requests, errors,
    prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens,
    cost_nanos, price_nanos)
SELECT created_at_ms / 86400000, COALESCE(tenant_id, ''), COALESCE(key_id, ''), public_model,
    COALESCE(provider, ''), COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
    COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),
    COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(cache_write_tokens), 0),
    COALESCE(SUM(reasoning_tokens), 0), COALESCE(SUM(cost_nanos), 0),
    COALESCE(SUM(price_nanos), 0)
FROM request_log
GROUP BY created_at_ms / 86400000, COALESCE(tenant_id, ''), COALESCE(key_id, ''), public_model,
    COALESCE(provider, '');

