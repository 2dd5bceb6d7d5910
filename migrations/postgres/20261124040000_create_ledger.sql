-- Metering and the ledger: what each request cost and was charged, the double-entry postings,
-- the account balances kept in step with them, credit grants, and per-tenant pricing.

-- A request's usage and money. Amounts are nano-dollars (10⁻⁹ USD). `price_nanos` is NULL when
-- the request was not billed (operator key, or no price for its deployment).
ALTER TABLE request_log ADD COLUMN cache_write_tokens BIGINT;
ALTER TABLE request_log ADD COLUMN usage_estimated BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE request_log ADD COLUMN price_version BIGINT;
-- What the provider charged the operator.
ALTER TABLE request_log ADD COLUMN cost_nanos BIGINT;
-- What the tenant was charged (capped at the request's hold).
ALTER TABLE request_log ADD COLUMN price_nanos BIGINT;
-- The part of the price above the hold, absorbed by the operator (never charged).
ALTER TABLE request_log ADD COLUMN absorbed_nanos BIGINT;

-- Spend per key and per tenant over a time range.
CREATE INDEX request_log_key_time ON request_log (key_id, created_at_ms);
CREATE INDEX request_log_tenant_time ON request_log (tenant_id, created_at_ms);

-- Append-only: a posting moves `amount` from `debit` to `credit`; `key` makes it idempotent.
CREATE TABLE ledger_postings (
    seq        BIGSERIAL PRIMARY KEY,
    key        TEXT    NOT NULL UNIQUE,
    at_ms      BIGINT  NOT NULL,
    debit      TEXT    NOT NULL,
    credit     TEXT    NOT NULL,
    amount     BIGINT  NOT NULL CHECK (amount > 0),
    tenant_id  TEXT,
    request_id TEXT
);

CREATE INDEX ledger_postings_tenant ON ledger_postings (tenant_id, seq);

-- Credits minus debits of every account, updated in the same transaction as each posting (so the
-- balances always sum to zero and can be recomputed from the postings).
CREATE TABLE account_balances (
    account TEXT    PRIMARY KEY,
    balance BIGINT  NOT NULL
);

-- Credit given to a tenant: a paid top-up or a promotion, possibly expiring. Credit is consumed
-- soonest-expiring grant first; what is left of a grant at its expiry moves to platform:expired.
CREATE TABLE credit_grants (
    id            TEXT    PRIMARY KEY,
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id),
    kind          TEXT    NOT NULL CHECK (kind IN ('topup', 'promo')),
    amount_nanos  BIGINT  NOT NULL CHECK (amount_nanos > 0),
    expires_at_ms BIGINT,
    note          TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    expired_at_ms BIGINT,
    expired_nanos BIGINT
);

CREATE INDEX credit_grants_tenant ON credit_grants (tenant_id, id);
CREATE INDEX credit_grants_due ON credit_grants (expires_at_ms)
    WHERE expired_at_ms IS NULL AND expires_at_ms IS NOT NULL;

-- Per-tenant pricing: a plan name and a markup in percent (a decimal string, e.g. "12.5").
ALTER TABLE tenants ADD COLUMN plan TEXT;
ALTER TABLE tenants ADD COLUMN markup_percent TEXT;
