-- Invoice lines of per-request fees (kind 'fee', issue 19).
ALTER TABLE invoice_lines DROP CONSTRAINT invoice_lines_kind_check;
ALTER TABLE invoice_lines ADD CONSTRAINT invoice_lines_kind_check
    CHECK (kind IN ('usage', 'fee', 'refund', 'credit'));
