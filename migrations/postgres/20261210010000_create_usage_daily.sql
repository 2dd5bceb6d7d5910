-- Daily usage rollups (issue 20): what the usage pages and the overview read instead of the
-- request log, so they cost the same with ten million records as with ten. One row per UTC day,
-- tenant, key, public model and provider ('' where the request log has NULL: the operator key, a
-- request no provider served). The request log's insert trigger keeps it, in the same
-- transaction as the record, so it is never behind and never ahead.
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

-- Each insert statement (a writer's whole batch) adds its new records to their days' rows, in one
-- statement, in key order (so two batches lock shared rows in the same order and never deadlock).
CREATE FUNCTION request_log_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_daily AS u (day, tenant_id, key_id, public_model, provider, requests,
        errors, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens,
        reasoning_tokens, cost_nanos, price_nanos)
    SELECT created_at_ms / 86400000, COALESCE(tenant_id, ''), COALESCE(key_id, ''),
        public_model, COALESCE(provider, ''), COUNT(*),
        SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
        COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),
        COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(cache_write_tokens), 0),
        COALESCE(SUM(reasoning_tokens), 0), COALESCE(SUM(cost_nanos), 0),
        COALESCE(SUM(price_nanos), 0)
    FROM new_rows
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (day, tenant_id, key_id, public_model, provider) DO UPDATE SET
        requests = u.requests + excluded.requests,
        errors = u.errors + excluded.errors,
        prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = u.completion_tokens + excluded.completion_tokens,
        cached_tokens = u.cached_tokens + excluded.cached_tokens,
        cache_write_tokens = u.cache_write_tokens + excluded.cache_write_tokens,
        reasoning_tokens = u.reasoning_tokens + excluded.reasoning_tokens,
        cost_nanos = u.cost_nanos + excluded.cost_nanos,
        price_nanos = u.price_nanos + excluded.price_nanos;
    RETURN NULL;
END
$$;

CREATE TRIGGER request_log_rollup AFTER INSERT ON request_log
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION request_log_rollup();
