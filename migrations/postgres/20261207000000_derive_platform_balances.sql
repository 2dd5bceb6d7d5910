-- Only the tenants' accounts keep a stored balance; the platform's and providers' balances are
-- derived from the postings on read (every metering batch of every replica updated their rows,
-- so replicas queued behind one row lock). The postings, the truth, are untouched.
DELETE FROM account_balances WHERE account NOT LIKE 'tenant:%';
