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

impl StoreError {
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
