-- Invoices (issue 19): one per tenant and period once finalized (a draft is computed on read,
-- never stored). Amounts are nano-dollars, exact, except the *_cents columns: each line is
-- rounded to cents once, half to even, and its residue kept, so Σ cents × 10⁷ + Σ residues = Σ
-- exact amounts.
CREATE TABLE invoices (
    id                  TEXT    PRIMARY KEY,
    tenant_id           TEXT    NOT NULL REFERENCES tenants (id),
    -- [start, end) in milliseconds (UTC); the label is the start's YYYY-MM in the tenant's zone.
    period_start_ms     BIGINT  NOT NULL,
    period_end_ms       BIGINT  NOT NULL,
    period              TEXT    NOT NULL,
    -- Gap-free per year, from invoice_sequences, allocated in the finalizing transaction.
    number              TEXT    NOT NULL UNIQUE,
    status              TEXT    NOT NULL
        CHECK (status IN ('open', 'paid', 'void', 'uncollectible')),
    currency            TEXT    NOT NULL,
    subtotal_nanos      BIGINT  NOT NULL,
    credits_nanos       BIGINT  NOT NULL,
    total_nanos         BIGINT  NOT NULL,
    total_cents         BIGINT  NOT NULL,
    residue_nanos       BIGINT  NOT NULL,
    finalized_at_ms     BIGINT  NOT NULL,
    due_at_ms           BIGINT  NOT NULL,
    paid_at_ms          BIGINT,
    voided_at_ms        BIGINT,
    uncollectible_at_ms BIGINT,
    UNIQUE (tenant_id, period_start_ms)
);

CREATE INDEX invoices_status ON invoices (status, id);

-- A line bills, for one period (its start names it: the invoice's own, or an earlier one for an
-- adjustment) and kind (usage per public model, refunds, credit applied), what the usage records
-- added since the tenant's earlier invoices.
CREATE TABLE invoice_lines (
    invoice_id         TEXT    NOT NULL REFERENCES invoices (id),
    line_no            BIGINT  NOT NULL,
    tenant_id          TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('usage', 'refund', 'credit')),
    period_start_ms    BIGINT  NOT NULL,
    period             TEXT    NOT NULL,
    model              TEXT,
    requests           BIGINT  NOT NULL,
    prompt_tokens      BIGINT  NOT NULL,
    completion_tokens  BIGINT  NOT NULL,
    cached_tokens      BIGINT  NOT NULL,
    cache_write_tokens BIGINT  NOT NULL,
    reasoning_tokens   BIGINT  NOT NULL,
    amount_nanos       BIGINT  NOT NULL,
    amount_cents       BIGINT  NOT NULL,
    residue_nanos      BIGINT  NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);

CREATE INDEX invoice_lines_tenant ON invoice_lines (tenant_id, period_start_ms);

-- The last invoice number given in each year (of finalization, UTC).
CREATE TABLE invoice_sequences (
    year BIGINT PRIMARY KEY,
    last BIGINT NOT NULL
);
