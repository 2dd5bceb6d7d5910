-- Who made each request: the tenant and key (both empty for the operator key).
ALTER TABLE request_log ADD COLUMN tenant_id TEXT;
ALTER TABLE request_log ADD COLUMN key_id TEXT;
