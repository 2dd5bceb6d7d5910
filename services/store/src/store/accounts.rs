//! The dispatch of [`Accounts`] to the backend the store holds.

use super::Store;
use crate::accounts::{Accounts, Member, Operator, UiSession};
use crate::error::StoreError;

/// `match self` over both backends, calling the same method with the same arguments.
macro_rules! both {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Self::Sqlite(s) => s.$method($($arg),*).await,
            Self::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl Accounts for Store {
    async fn create_operator(&self, o: &Operator) -> Result<(), StoreError> {
        both!(self.create_operator(o))
    }

    async fn operator(&self, name: &str) -> Result<Option<Operator>, StoreError> {
        both!(self.operator(name))
    }

    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        both!(self.list_operators())
    }

    async fn save_operator(&self, o: &Operator) -> Result<bool, StoreError> {
        both!(self.save_operator(o))
    }

    async fn create_member(&self, m: &Member) -> Result<(), StoreError> {
        both!(self.create_member(m))
    }

    async fn member(&self, id: &str) -> Result<Option<Member>, StoreError> {
        both!(self.member(id))
    }

    async fn member_by_email(&self, email: &str) -> Result<Option<Member>, StoreError> {
        both!(self.member_by_email(email))
    }

    async fn list_members(&self, tenant_id: &str) -> Result<Vec<Member>, StoreError> {
        both!(self.list_members(tenant_id))
    }

    async fn save_member(&self, m: &Member) -> Result<bool, StoreError> {
        both!(self.save_member(m))
    }

    async fn create_session(&self, s: &UiSession) -> Result<(), StoreError> {
        both!(self.create_session(s))
    }

    async fn session(&self, id_hash: &str) -> Result<Option<UiSession>, StoreError> {
        both!(self.session(id_hash))
    }

    async fn touch_session(&self, id_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        both!(self.touch_session(id_hash, now_ms))
    }

    async fn revoke_session(&self, id_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        both!(self.revoke_session(id_hash, now_ms))
    }

    async fn revoke_sessions_of(
        &self,
        kind: &str,
        subject: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        both!(self.revoke_sessions_of(kind, subject, now_ms))
    }

    async fn create_login_link(
        &self,
        token_hash: &str,
        member_id: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        both!(self.create_login_link(token_hash, member_id, now_ms, expires_at_ms))
    }

    async fn use_login_link(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        both!(self.use_login_link(token_hash, now_ms))
    }
}
