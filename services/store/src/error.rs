//! The storage layer's one error type.

/// Storage failures. The database's own error is kept as the source, for the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL (expected sqlite:… or postgres://…): {0}")]
    UnsupportedUrl(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// An error of the SQLite metering writer's own connection.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metering writer: {0}")]
    Writer(String),
    #[error("migration {name} failed")]
    Migration {
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input cannot be stored as given (a non-positive amount, an amount that overflows).
    #[error("invalid: {0}")]
    Invalid(String),
}

/// What a running sum that would leave 64 bits is refused with: Postgres's "numeric value out of
/// range", or SQLite's integer check on a sum (it would otherwise turn the sum into a float).
fn overflowed(code: Option<&str>, message: &str) -> bool {
    code == Some("22003") || message.contains("CHECK constraint failed: typeof(")
}

impl StoreError {
    /// A write that adds to running sums (the daily usage rollups, the balances): an overflow is
    /// [`StoreError::Invalid`], like the same overflow found before writing.
    pub(crate) fn from_sum(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if overflowed(db.code().as_deref(), db.message()) => {
                Self::Invalid(format!("a running sum overflows: {}", db.message()))
            }
            _ => Self::Database(e),
        }
    }

    /// [`StoreError::from_sum`] for the SQLite writer's own connection.
    pub(crate) fn from_sqlite_sum(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(_, Some(m)) if overflowed(None, m) => {
                Self::Invalid(format!("a running sum overflows: {m}"))
            }
            _ => Self::Sqlite(e),
        }
    }

    /// A write error, with unique and foreign-key violations turned into [`StoreError::Conflict`].
    pub(crate) fn from_write(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db)
                if db.is_unique_violation() || db.is_foreign_key_violation() =>
            {
                Self::Conflict(db.message().to_owned())
            }
            _ => Self::Database(e),
        }
    }
}
