//! The web UI's accounts: operators (who sign in to `/admin`), tenant members (who sign in to
//! `/portal`), their server-side sessions and one-time sign-in links. Secrets are never stored:
//! passwords as argon2id hashes, sessions and links as the SHA-256 of their token (the gateway's).

use std::future::Future;

use sqlx::Row;

use crate::backend::{Backend, Pooled};
use crate::error::StoreError;

/// An operator account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    /// `admin` or `viewer`.
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    pub created_at_ms: i64,
}

/// A member of a tenant, who may sign in to the customer portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub tenant_id: String,
    /// Lowercase.
    pub email: String,
    /// `None` until the member sets a password (a link signs them in until then).
    pub password_hash: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    pub invited_by: String,
    pub created_at_ms: i64,
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// SHA-256 (hex) of the cookie's token.
    pub id_hash: String,
    /// `operator` or `member`.
    pub kind: String,
    /// The operator's name or the member's id.
    pub subject: String,
    /// The member's tenant; `None` for an operator.
    pub tenant_id: Option<String>,
    pub csrf_token: String,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// Storage of the UI's accounts and sessions.
pub trait Accounts {
    /// A new operator; [`StoreError::Conflict`] if the name is taken.
    fn create_operator(&self, o: &Operator) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn operator(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Operator>, StoreError>> + Send;
    fn list_operators(&self) -> impl Future<Output = Result<Vec<Operator>, StoreError>> + Send;
    /// Saves an operator's password, role and status; false if there is no such operator.
    fn save_operator(&self, o: &Operator) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A new member; [`StoreError::Conflict`] if the email is taken or the tenant unknown.
    fn create_member(&self, m: &Member) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn member(&self, id: &str) -> impl Future<Output = Result<Option<Member>, StoreError>> + Send;
    fn member_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<Member>, StoreError>> + Send;
    fn list_members(
        &self,
        tenant_id: &str,
    ) -> impl Future<Output = Result<Vec<Member>, StoreError>> + Send;
    /// Saves a member's password and status; false if there is no such member.
    fn save_member(&self, m: &Member) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn create_session(&self, s: &UiSession) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn session(
        &self,
        id_hash: &str,
    ) -> impl Future<Output = Result<Option<UiSession>, StoreError>> + Send;
    /// Records activity (for the idle timeout).
    fn touch_session(
        &self,
        id_hash: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn revoke_session(
        &self,
        id_hash: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Revokes every live session of an operator or member; how many.
    fn revoke_sessions_of(
        &self,
        kind: &str,
        subject: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn create_login_link(
        &self,
        token_hash: &str,
        member_id: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Uses a link once: the member's id if it exists, is unused and has not expired.
    fn use_login_link(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

const OPERATOR_COLUMNS: &str = "name, password_hash, role, status, created_at_ms";
const MEMBER_COLUMNS: &str =
    "id, tenant_id, email, password_hash, status, invited_by, created_at_ms";
const SESSION_COLUMNS: &str = "id_hash, kind, subject, tenant_id, csrf_token, created_at_ms, \
    last_seen_at_ms, expires_at_ms, revoked_at_ms";

fn operator_from_row<B: Backend>(r: &B::Row) -> Result<Operator, StoreError> {
    Ok(Operator {
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        role: r.try_get("role")?,
        status: r.try_get("status")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

fn member_from_row<B: Backend>(r: &B::Row) -> Result<Member, StoreError> {
    Ok(Member {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        email: r.try_get("email")?,
        password_hash: r.try_get("password_hash")?,
        status: r.try_get("status")?,
        invited_by: r.try_get("invited_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

fn session_from_row<B: Backend>(r: &B::Row) -> Result<UiSession, StoreError> {
    Ok(UiSession {
        id_hash: r.try_get("id_hash")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        tenant_id: r.try_get("tenant_id")?,
        csrf_token: r.try_get("csrf_token")?,
        created_at_ms: r.try_get("created_at_ms")?,
        last_seen_at_ms: r.try_get("last_seen_at_ms")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
        revoked_at_ms: r.try_get("revoked_at_ms")?,
    })
}

impl<B: Backend, S: Pooled<Db = B>> Accounts for S {
    async fn create_operator(&self, o: &Operator) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO operators ({OPERATOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5)");
        sqlx::query(&sql)
            .bind(&o.name)
            .bind(&o.password_hash)
            .bind(&o.role)
            .bind(&o.status)
            .bind(o.created_at_ms)
            .execute(self.pool())
            .await
            .map_err(StoreError::from_write)?;
        Ok(())
    }

    async fn operator(&self, name: &str) -> Result<Option<Operator>, StoreError> {
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(operator_from_row::<B>).transpose()
    }

    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(operator_from_row::<B>).collect()
    }

    async fn save_operator(&self, o: &Operator) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE operators SET password_hash = $2, role = $3, status = $4 WHERE name = $1",
        )
        .bind(&o.name)
        .bind(&o.password_hash)
        .bind(&o.role)
        .bind(&o.status)
        .execute(self.pool())
        .await
        .map_err(StoreError::from_write)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn create_member(&self, m: &Member) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO tenant_members ({MEMBER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        );
        sqlx::query(&sql)
            .bind(&m.id)
            .bind(&m.tenant_id)
            .bind(&m.email)
            .bind(m.password_hash.as_deref())
            .bind(&m.status)
            .bind(&m.invited_by)
            .bind(m.created_at_ms)
            .execute(self.pool())
            .await
            .map_err(StoreError::from_write)?;
        Ok(())
    }

    async fn member(&self, id: &str) -> Result<Option<Member>, StoreError> {
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM tenant_members WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(member_from_row::<B>).transpose()
    }

    async fn member_by_email(&self, email: &str) -> Result<Option<Member>, StoreError> {
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM tenant_members WHERE email = $1");
        let row = sqlx::query(&sql)
            .bind(email)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(member_from_row::<B>).transpose()
    }

    async fn list_members(&self, tenant_id: &str) -> Result<Vec<Member>, StoreError> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM tenant_members WHERE tenant_id = $1 ORDER BY email"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(member_from_row::<B>).collect()
    }

    async fn save_member(&self, m: &Member) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tenant_members SET password_hash = $2, status = $3 WHERE id = $1")
                .bind(&m.id)
                .bind(m.password_hash.as_deref())
                .bind(&m.status)
                .execute(self.pool())
                .await
                .map_err(StoreError::from_write)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn create_session(&self, s: &UiSession) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO ui_sessions ({SESSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        sqlx::query(&sql)
            .bind(&s.id_hash)
            .bind(&s.kind)
            .bind(&s.subject)
            .bind(s.tenant_id.as_deref())
            .bind(&s.csrf_token)
            .bind(s.created_at_ms)
            .bind(s.last_seen_at_ms)
            .bind(s.expires_at_ms)
            .bind(s.revoked_at_ms)
            .execute(self.pool())
            .await
            .map_err(StoreError::from_write)?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<UiSession>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM ui_sessions WHERE id_hash = $1");
        let row = sqlx::query(&sql)
            .bind(id_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(session_from_row::<B>).transpose()
    }

    async fn touch_session(&self, id_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE ui_sessions SET last_seen_at_ms = $2 WHERE id_hash = $1")
            .bind(id_hash)
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn revoke_session(&self, id_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE ui_sessions SET revoked_at_ms = $2 \
             WHERE id_hash = $1 AND revoked_at_ms IS NULL",
        )
        .bind(id_hash)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn revoke_sessions_of(
        &self,
        kind: &str,
        subject: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE ui_sessions SET revoked_at_ms = $3 \
             WHERE kind = $1 AND subject = $2 AND revoked_at_ms IS NULL",
        )
        .bind(kind)
        .bind(subject)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(B::rows_affected(&done))
    }

    async fn create_login_link(
        &self,
        token_hash: &str,
        member_id: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_links (token_hash, member_id, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(member_id)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(self.pool())
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    async fn use_login_link(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        // One statement: two browsers following the same link cannot both be signed in.
        Ok(sqlx::query_scalar(
            "UPDATE login_links SET used_at_ms = $2 \
             WHERE token_hash = $1 AND used_at_ms IS NULL AND expires_at_ms > $2 \
             RETURNING member_id",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?)
    }
}
