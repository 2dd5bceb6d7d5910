-- A tenant balance that would pass the 64-bit range refuses its transaction: Postgres raises
-- "bigint out of range" on the addition by itself (SQLite needs a check, see its migration).
COMMENT ON COLUMN account_balances.balance IS
    'credits minus debits, nano-dollars; an overflowing update raises bigint out of range';
