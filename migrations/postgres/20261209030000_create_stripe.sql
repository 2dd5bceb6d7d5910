-- Stripe (issue 19): which Stripe customer each tenant is, the durable outbox of pushes to
-- Stripe, the webhook events already processed, and prepaid top-ups through Checkout.
CREATE TABLE stripe_customers (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants (id),
    customer_id   TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL
);

-- One row per object to push ('invoice:<invoice id>'). Each step's result is kept in progress
-- (JSON) as it is made, and every request carries an idempotency key derived from our ids, so a
-- retry after a crash repeats nothing.
CREATE TABLE stripe_outbox (
    id                 TEXT PRIMARY KEY,
    kind               TEXT NOT NULL,
    target_id          TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts           BIGINT NOT NULL,
    next_attempt_at_ms BIGINT NOT NULL,
    progress           TEXT NOT NULL,
    last_error         TEXT,
    stripe_id          TEXT,
    created_at_ms      BIGINT NOT NULL,
    updated_at_ms      BIGINT NOT NULL
);

CREATE INDEX stripe_outbox_due ON stripe_outbox (status, next_attempt_at_ms);

CREATE TABLE stripe_events (
    id             TEXT PRIMARY KEY,
    type           TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    outcome        TEXT NOT NULL
);

CREATE TABLE topups (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    amount_nanos    BIGINT NOT NULL CHECK (amount_nanos > 0),
    session_id      TEXT UNIQUE,
    url             TEXT,
    status          TEXT NOT NULL CHECK (status IN ('open', 'completed')),
    actor           TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    completed_at_ms BIGINT
);

ALTER TABLE invoices ADD COLUMN stripe_invoice_id TEXT;
