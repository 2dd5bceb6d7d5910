-- A tenant balance that would pass the 64-bit range must refuse its transaction, never become a
-- float: SQLite turns an overflowing integer addition into a REAL, so the stored balance is
-- checked to stay an integer (Postgres raises "bigint out of range" by itself). The table is
-- rebuilt with the check (SQLite cannot add one in place).
CREATE TABLE account_balances_new (
    account TEXT    PRIMARY KEY,
    balance INTEGER NOT NULL CHECK (typeof(balance) = 'integer')
) WITHOUT ROWID;
INSERT INTO account_balances_new (account, balance) SELECT account, balance FROM account_balances;
DROP TABLE account_balances;
ALTER TABLE account_balances_new RENAME TO account_balances;
