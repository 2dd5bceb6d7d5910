//! What tenant and key operations fail with (mapped to HTTP at the admin edge).

use tollgate_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no OS randomness to mint a key")]
    Randomness,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for TenancyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Store(other),
        }
    }
}
