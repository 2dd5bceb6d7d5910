-- Invoices (issue 19): one per tenant and period once finalized (a draft is computed on read,
-- never stored). Amounts are nano-dollars, exact, except the *_cents columns: each line is
-- rounded to cents once, half to even, and its residue kept, so Σ cents × 10⁷ + Σ residues = Σ
-- exact amounts.
CREATE TABLE invoices (
    id                  TEXT    PRIMARY KEY,
    tenant_id           TEXT    NOT NULL REFERENCES tenants (id),
    -- [start, end) in milliseconds (UTC); the label is the start's YYYY-MM in the tenant's zone.
    period_start_ms     INTEGER  NOT NULL,
    period_end_ms       INTEGER  NOT NULL,
    period              TEXT    NOT NULL,
    -- Gap-free per year, from invoice_sequences, allocated in the finalizing transaction.
    number              TEXT    NOT NULL UNIQUE,
    status              TEXT    NOT NULL
        CHECK (status IN ('open', 'paid', 'void', 'uncollectible')),
    currency            TEXT    NOT NULL,
    subtotal_nanos      INTEGER  NOT NULL,
    credits_nanos       INTEGER  NOT NULL,
    total_nanos         INTEGER  NOT NULL,
    total_cents         INTEGER  NOT NULL,
    residue_nanos       INTEGER  NOT NULL,
    finalized_at_ms     INTEGER  NOT NULL,
    due_at_ms           INTEGER  NOT NULL,
    paid_at_ms          INTEGER,
    voided_at_ms        INTEGER,
    uncollectible_at_ms INTEGER,
    UNIQUE (tenant_id, period_start_ms)
);

CREATE INDEX invoices_status ON invoices (status, id);

-- A line bills, for one period (its start names it: the invoice's own, or an earlier one for an
-- adjustment) and kind (usage per public model, refunds, credit applied), what the usage records
-- added since the tenant's earlier invoices.
CREATE TABLE invoice_lines (
    invoice_id         TEXT    NOT NULL REFERENCES invoices (id),
    line_no            INTEGER  NOT NULL,
    tenant_id          TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('usage', 'refund', 'credit')),
    period_start_ms    INTEGER  NOT NULL,
    period             TEXT    NOT NULL,
    model              TEXT,
    requests           INTEGER  NOT NULL,
    prompt_tokens      INTEGER  NOT NULL,
    completion_tokens  INTEGER  NOT NULL,
    cached_tokens      INTEGER  NOT NULL,
    cache_write_tokens INTEGER  NOT NULL,
    reasoning_tokens   INTEGER  NOT NULL,
    amount_nanos       INTEGER  NOT NULL,
    amount_cents       INTEGER  NOT NULL,
    residue_nanos      INTEGER  NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);

CREATE INDEX invoice_lines_tenant ON invoice_lines (tenant_id, period_start_ms);

-- The last invoice number given in each year (of finalization, UTC).
CREATE TABLE invoice_sequences (
    year INTEGER PRIMARY KEY,
    last INTEGER NOT NULL
);
