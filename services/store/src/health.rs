//! Is the store reachable?

use std::future::Future;

use crate::error::StoreError;

/// Is the store reachable?
pub trait Health {
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
