//! What the Stripe integration keeps: tenants' Stripe customers, the durable outbox of pushes,
//! the webhook events already processed, and top-ups. The calls to Stripe are the gateway's.

use std::future::Future;

use sqlx::{Pool, Row};
use tollgate_domain::money::Nanos;

use crate::backend::{Backend, Pooled};
use crate::error::StoreError;
use crate::tenants::Page;

/// One push to Stripe.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxItem {
    /// `invoice:<invoice id>`.
    pub id: String,
    /// `push_invoice`.
    pub kind: String,
    pub target_id: String,
    /// `pending` (to do, or retrying), `done`, `failed` (gave up; push again to retry).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    /// The Stripe objects made so far (JSON).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub progress: serde_json::Value,
    pub last_error: Option<String>,
    /// The Stripe object pushed (the invoice), once done.
    pub stripe_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A prepaid top-up through a Stripe Checkout Session.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopUp {
    pub id: String,
    pub tenant_id: String,
    pub amount: Nanos,
    pub session_id: Option<String>,
    /// Where the payer pays (the Checkout Session's URL).
    pub url: Option<String>,
    /// `open` or `completed` (the credit granted).
    pub status: String,
    pub actor: String,
    pub created_at_ms: i64,
    pub completed_at_ms: Option<i64>,
}

const OUTBOX_COLUMNS: &str =
    "id, kind, target_id, status, attempts, next_attempt_at_ms, progress, \
    last_error, stripe_id, created_at_ms, updated_at_ms";
const TOPUP_COLUMNS: &str = "id, tenant_id, amount_nanos, session_id, url, status, actor, \
    created_at_ms, completed_at_ms";

/// The Stripe integration's storage.
pub trait StripeState {
    fn stripe_customer(
        &self,
        tenant_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Links a tenant to a Stripe customer (replacing an earlier link).
    fn set_stripe_customer(
        &self,
        tenant_id: &str,
        customer_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Queues a push of every open invoice with something due that has none yet; returns how
    /// many were queued.
    fn queue_invoice_pushes(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Queues (or re-arms, if it failed) the push of one invoice.
    fn queue_invoice_push(
        &self,
        invoice_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Pending pushes due at `now_ms`, oldest first.
    fn due_pushes(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OutboxItem>, StoreError>> + Send;

    /// Saves what a push made so far.
    fn save_progress(
        &self,
        id: &str,
        progress: &serde_json::Value,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends a push: done with the Stripe object's id, or another attempt at `retry_at_ms`
    /// (`None`: given up, `failed`) with the error.
    fn finish_push(
        &self,
        id: &str,
        outcome: Result<&str, (&str, Option<i64>)>,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn list_outbox(
        &self,
        page: Page<'_>,
    ) -> impl Future<Output = Result<Vec<OutboxItem>, StoreError>> + Send;

    /// Whether a webhook event was processed already.
    fn event_seen(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records a processed event (once; a second record changes nothing).
    fn record_event(
        &self,
        id: &str,
        event_type: &str,
        outcome: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn create_topup(&self, t: &TopUp) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn topup(&self, id: &str) -> impl Future<Output = Result<Option<TopUp>, StoreError>> + Send;

    /// Marks a top-up completed; `false` if it already was.
    fn complete_topup(
        &self,
        id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Sets the Stripe invoice an invoice was pushed as.
    fn set_stripe_invoice(
        &self,
        invoice_id: &str,
        stripe_invoice_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Our invoice pushed as this Stripe invoice.
    fn invoice_for_stripe(
        &self,
        stripe_invoice_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

fn outbox_from_row<B: Backend>(r: &B::Row) -> Result<OutboxItem, StoreError> {
    let progress: String = r.try_get("progress")?;
    Ok(OutboxItem {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        target_id: r.try_get("target_id")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at_ms: r.try_get("next_attempt_at_ms")?,
        progress: serde_json::from_str(&progress)
            .map_err(|e| StoreError::Corrupt(format!("outbox progress: {e}")))?,
        last_error: r.try_get("last_error")?,
        stripe_id: r.try_get("stripe_id")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

fn topup_from_row<B: Backend>(r: &B::Row) -> Result<TopUp, StoreError> {
    Ok(TopUp {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        amount: Nanos(r.try_get("amount_nanos")?),
        session_id: r.try_get("session_id")?,
        url: r.try_get("url")?,
        status: r.try_get("status")?,
        actor: r.try_get("actor")?,
        created_at_ms: r.try_get("created_at_ms")?,
        completed_at_ms: r.try_get("completed_at_ms")?,
    })
}

async fn exec<B: Backend>(
    pool: &Pool<B>,
    sql: &str,
    binds: &[&dyn Bind<B>],
) -> Result<u64, StoreError> {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = b.bind(q);
    }
    Ok(B::rows_affected(&q.execute(pool).await?))
}

/// A value [`exec`] binds: text, an optional text, or an integer.
trait Bind<B: Backend>: Sync {
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, B, <B as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, B, <B as sqlx::Database>::Arguments<'q>>;
}

impl<B: Backend> Bind<B> for &str {
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, B, <B as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, B, <B as sqlx::Database>::Arguments<'q>> {
        q.bind(*self)
    }
}

impl<B: Backend> Bind<B> for Option<&str> {
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, B, <B as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, B, <B as sqlx::Database>::Arguments<'q>> {
        q.bind(*self)
    }
}

impl<B: Backend> Bind<B> for i64 {
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, B, <B as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, B, <B as sqlx::Database>::Arguments<'q>> {
        q.bind(*self)
    }
}

impl<B: Backend, S: Pooled<Db = B>> StripeState for S {
    async fn stripe_customer(&self, tenant_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT customer_id FROM stripe_customers WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    async fn set_stripe_customer(
        &self,
        tenant_id: &str,
        customer_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO stripe_customers (tenant_id, customer_id, created_at_ms) \
            VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE SET customer_id = excluded.customer_id";
        sqlx::query(SQL)
            .bind(tenant_id)
            .bind(customer_id)
            .bind(now_ms)
            .execute(self.pool())
            .await
            .map_err(StoreError::from_write)?;
        Ok(())
    }

    async fn queue_invoice_pushes(&self, now_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "INSERT INTO stripe_outbox (id, kind, target_id, status, attempts, \
            next_attempt_at_ms, progress, created_at_ms, updated_at_ms) \
            SELECT 'invoice:' || i.id, 'push_invoice', i.id, 'pending', 0, $1, '{}', $1, $1 \
            FROM invoices i WHERE i.status = 'open' AND i.total_cents > 0 \
            AND NOT EXISTS (SELECT 1 FROM stripe_outbox o WHERE o.id = 'invoice:' || i.id) \
            ON CONFLICT (id) DO NOTHING";
        exec(self.pool(), SQL, &[&now_ms]).await
    }

    async fn queue_invoice_push(&self, invoice_id: &str, now_ms: i64) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO stripe_outbox (id, kind, target_id, status, attempts, \
            next_attempt_at_ms, progress, created_at_ms, updated_at_ms) \
            VALUES ('invoice:' || $1, 'push_invoice', $1, 'pending', 0, $2, '{}', $2, $2) \
            ON CONFLICT (id) DO UPDATE SET status = 'pending', next_attempt_at_ms = $2, \
            updated_at_ms = $2 WHERE stripe_outbox.status = 'failed'";
        exec(self.pool(), SQL, &[&invoice_id, &now_ms])
            .await
            .map(|_| ())
    }

    async fn due_pushes(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM stripe_outbox WHERE status = 'pending' \
             AND next_attempt_at_ms <= $1 ORDER BY next_attempt_at_ms, id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(outbox_from_row::<B>).collect()
    }

    async fn save_progress(
        &self,
        id: &str,
        progress: &serde_json::Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let text = progress.to_string();
        const SQL: &str =
            "UPDATE stripe_outbox SET progress = $1, updated_at_ms = $2 WHERE id = $3";
        exec(self.pool(), SQL, &[&text.as_str(), &now_ms, &id])
            .await
            .map(|_| ())
    }

    async fn finish_push(
        &self,
        id: &str,
        outcome: Result<&str, (&str, Option<i64>)>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        match outcome {
            Ok(stripe_id) => {
                const SQL: &str = "UPDATE stripe_outbox SET status = 'done', stripe_id = $1, \
                    attempts = attempts + 1, last_error = NULL, updated_at_ms = $2 WHERE id = $3";
                exec(self.pool(), SQL, &[&stripe_id, &now_ms, &id]).await?;
            }
            Err((error, retry_at)) => {
                const SQL: &str = "UPDATE stripe_outbox SET status = $1, last_error = $2, \
                    attempts = attempts + 1, next_attempt_at_ms = $3, updated_at_ms = $4 \
                    WHERE id = $5";
                let status = if retry_at.is_some() {
                    "pending"
                } else {
                    "failed"
                };
                let at = retry_at.unwrap_or(now_ms);
                exec(self.pool(), SQL, &[&status, &error, &at, &now_ms, &id]).await?;
            }
        }
        Ok(())
    }

    async fn list_outbox(&self, page: Page<'_>) -> Result<Vec<OutboxItem>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM stripe_outbox WHERE id > $1 ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(page.after.unwrap_or(""))
            .bind(i64::from(page.limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(outbox_from_row::<B>).collect()
    }

    async fn event_seen(&self, id: &str) -> Result<bool, StoreError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM stripe_events WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(found.is_some())
    }

    async fn record_event(
        &self,
        id: &str,
        event_type: &str,
        outcome: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO stripe_events (id, type, received_at_ms, outcome) \
            VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING";
        exec(self.pool(), SQL, &[&id, &event_type, &now_ms, &outcome])
            .await
            .map(|_| ())
    }

    async fn create_topup(&self, t: &TopUp) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO topups ({TOPUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        sqlx::query(&sql)
            .bind(&t.id)
            .bind(&t.tenant_id)
            .bind(t.amount.0)
            .bind(t.session_id.as_deref())
            .bind(t.url.as_deref())
            .bind(&t.status)
            .bind(&t.actor)
            .bind(t.created_at_ms)
            .bind(t.completed_at_ms)
            .execute(self.pool())
            .await
            .map_err(StoreError::from_write)?;
        Ok(())
    }

    async fn topup(&self, id: &str) -> Result<Option<TopUp>, StoreError> {
        let sql = format!("SELECT {TOPUP_COLUMNS} FROM topups WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| topup_from_row::<B>(&r)).transpose()
    }

    async fn complete_topup(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE topups SET status = 'completed', completed_at_ms = $1 \
            WHERE id = $2 AND status = 'open'";
        Ok(exec(self.pool(), SQL, &[&now_ms, &id]).await? > 0)
    }

    async fn set_stripe_invoice(
        &self,
        invoice_id: &str,
        stripe_invoice_id: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE invoices SET stripe_invoice_id = $1 WHERE id = $2";
        exec(self.pool(), SQL, &[&stripe_invoice_id, &invoice_id])
            .await
            .map(|_| ())
    }

    async fn invoice_for_stripe(
        &self,
        stripe_invoice_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM invoices WHERE stripe_invoice_id = $1")
                .bind(stripe_invoice_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
