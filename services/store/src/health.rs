//! Is the store reachable?

use std::future::Future;

use crate::backend::{Backend, Pooled};
use crate::error::StoreError;

/// Is the store reachable?
pub trait Health {
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<B: Backend, S: Pooled<Db = B>> Health for S {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}
