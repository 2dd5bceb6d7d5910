-- A request's postings, found for corrections (reversing postings).
CREATE INDEX ledger_postings_request ON ledger_postings (request_id);
