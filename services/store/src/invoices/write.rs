//! Writing a finalized invoice.

use sqlx::Transaction;

use super::Invoice;
use crate::backend::Backend;
use crate::error::StoreError;

/// An invoice's columns, in the order its statements use.
pub(super) const INVOICE_COLUMNS: &str = "id, tenant_id, number, status, period, period_start_ms, \
    period_end_ms, currency, subtotal_nanos, credits_nanos, total_nanos, total_cents, \
    residue_nanos, finalized_at_ms, due_at_ms, paid_at_ms, voided_at_ms, uncollectible_at_ms";

/// A line's columns, in the order its statements use.
pub(super) const LINE_COLUMNS: &str = "line_no, kind, period_start_ms, period, model, requests, \
    prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, \
    amount_nanos, amount_cents, residue_nanos, unit_prices";

/// Stores a finalized invoice and its lines.
pub(super) async fn insert<B: Backend>(
    tx: &mut Transaction<'_, B>,
    i: &Invoice,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO invoices ({INVOICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    );
    sqlx::query(&sql)
        .bind(&i.id)
        .bind(&i.tenant_id)
        .bind(&i.number)
        .bind(i.status.as_str())
        .bind(&i.period)
        .bind(i.period_start_ms)
        .bind(i.period_end_ms)
        .bind(&i.currency)
        .bind(i.subtotal.0)
        .bind(i.credits.0)
        .bind(i.total.0)
        .bind(i.total_cents)
        .bind(i.residue.0)
        .bind(i.finalized_at_ms)
        .bind(i.due_at_ms)
        .bind(i.paid_at_ms)
        .bind(i.voided_at_ms)
        .bind(i.uncollectible_at_ms)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?;
    let sql = format!(
        "INSERT INTO invoice_lines (invoice_id, tenant_id, {LINE_COLUMNS}) VALUES ($1, $2, $3, \
         $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    );
    for l in &i.lines {
        let q = &l.quantities;
        sqlx::query(&sql)
            .bind(&i.id)
            .bind(&i.tenant_id)
            .bind(l.line_no)
            .bind(l.kind.as_str())
            .bind(l.period_start_ms)
            .bind(&l.period)
            .bind(&l.model)
            .bind(q.requests)
            .bind(q.prompt_tokens)
            .bind(q.completion_tokens)
            .bind(q.cached_tokens)
            .bind(q.cache_write_tokens)
            .bind(q.reasoning_tokens)
            .bind(q.amount.0)
            .bind(l.amount_cents)
            .bind(l.residue.0)
            .bind(l.unit_prices.as_ref().map(|v| v.to_string()))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
