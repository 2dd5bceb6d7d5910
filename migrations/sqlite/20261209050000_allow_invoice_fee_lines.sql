-- Invoice lines of per-request fees (kind 'fee', issue 19). SQLite cannot change a CHECK in
-- place: the table is rebuilt with the same columns, in the same order, and its index.
CREATE TABLE invoice_lines_new (
    invoice_id         TEXT    NOT NULL REFERENCES invoices (id),
    line_no            INTEGER NOT NULL,
    tenant_id          TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('usage', 'fee', 'refund', 'credit')),
    period_start_ms    INTEGER NOT NULL,
    period             TEXT    NOT NULL,
    model              TEXT,
    requests           INTEGER NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    cached_tokens      INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    amount_nanos       INTEGER NOT NULL,
    amount_cents       INTEGER NOT NULL,
    residue_nanos      INTEGER NOT NULL,
    unit_prices        TEXT,
    PRIMARY KEY (invoice_id, line_no)
);
INSERT INTO invoice_lines_new SELECT invoice_id, line_no, tenant_id, kind, period_start_ms, period,
    model, requests, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens,
    reasoning_tokens, amount_nanos, amount_cents, residue_nanos, unit_prices FROM invoice_lines;
DROP TABLE invoice_lines;
ALTER TABLE invoice_lines_new RENAME TO invoice_lines;
CREATE INDEX invoice_lines_tenant ON invoice_lines (tenant_id, period_start_ms);
