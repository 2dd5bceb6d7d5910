-- A request's postings are found by their keys, which the request id determines (see
-- tollgate_domain::ledger::usage_posting_keys): the unique key index serves corrections, and every
-- posting is one index entry cheaper to write.
DROP INDEX ledger_postings_request;
