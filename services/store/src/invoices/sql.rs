//! The invoice statements, shared by both backends.

use sqlx::{Pool, Row};
use tollgate_domain::invoice::lines::{
    split_fees, totals, unbilled, LineKey, LineKind, Quantities,
};
use tollgate_domain::invoice::period::{Period, PeriodRule};
use tollgate_domain::invoice::status::{Billed, InvoiceStatus, Step, Transition};
use tollgate_domain::money::Nanos;

use super::lease;
use super::read::{billed_sums, now_sums, ranges_of};
use super::write::{insert, INVOICE_COLUMNS, LINE_COLUMNS};
use super::{CloseInvoice, Invoice, InvoiceFilter, InvoiceLine, Invoices, UnitPrices};
use crate::backend::{Backend, Pooled};
use crate::error::StoreError;
use crate::metering::{post, PostingRow};
use crate::tenants::sql::audit;
use crate::tenants::{AuditEntry, Page};

/// Locks the tenant's row for the rest of the transaction (a write: Postgres takes the row lock,
/// SQLite the database's write lock, before anything is read) and returns its period rule.
const LOCK_TENANT: &str = "UPDATE tenants SET billing_anchor_day = billing_anchor_day \
    WHERE id = $1 RETURNING billing_anchor_day, billing_time_zone";

const TENANT_RULE: &str = "SELECT billing_anchor_day, billing_time_zone FROM tenants WHERE id = $1";

/// The next number of a year: the row is created at 1 or incremented, in the finalizing
/// transaction (so a rolled-back finalization gives its number back: no gaps).
const NEXT_NUMBER: &str = "INSERT INTO invoice_sequences (year, last) VALUES ($1, 1) \
    ON CONFLICT (year) DO UPDATE SET last = invoice_sequences.last + 1 RETURNING last";

fn invalid(e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(e.to_string())
}

fn rule_from(anchor: i64, zone: &str) -> Result<PeriodRule, StoreError> {
    let anchor =
        u8::try_from(anchor).map_err(|_| StoreError::Corrupt(format!("anchor {anchor}")))?;
    PeriodRule::new(anchor, zone).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn invoice_from_row<B: Backend>(r: &B::Row) -> Result<Invoice, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(Invoice {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        number: Some(r.try_get("number")?),
        status: InvoiceStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("invoice status {status:?}")))?,
        period: r.try_get("period")?,
        period_start_ms: r.try_get("period_start_ms")?,
        period_end_ms: r.try_get("period_end_ms")?,
        currency: r.try_get("currency")?,
        subtotal: Nanos(r.try_get("subtotal_nanos")?),
        credits: Nanos(r.try_get("credits_nanos")?),
        total: Nanos(r.try_get("total_nanos")?),
        total_cents: r.try_get("total_cents")?,
        residue: Nanos(r.try_get("residue_nanos")?),
        finalized_at_ms: Some(r.try_get("finalized_at_ms")?),
        due_at_ms: Some(r.try_get("due_at_ms")?),
        paid_at_ms: r.try_get("paid_at_ms")?,
        voided_at_ms: r.try_get("voided_at_ms")?,
        uncollectible_at_ms: r.try_get("uncollectible_at_ms")?,
        lines: Vec::new(),
    })
}

fn line_from_row<B: Backend>(r: &B::Row, invoice_start: i64) -> Result<InvoiceLine, StoreError> {
    let kind: String = r.try_get("kind")?;
    let period_start_ms: i64 = r.try_get("period_start_ms")?;
    Ok(InvoiceLine {
        line_no: r.try_get("line_no")?,
        kind: LineKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("invoice line kind {kind:?}")))?,
        period: r.try_get("period")?,
        period_start_ms,
        adjustment: period_start_ms != invoice_start,
        model: r.try_get("model")?,
        quantities: Quantities {
            requests: r.try_get("requests")?,
            prompt_tokens: r.try_get("prompt_tokens")?,
            completion_tokens: r.try_get("completion_tokens")?,
            cached_tokens: r.try_get("cached_tokens")?,
            cache_write_tokens: r.try_get("cache_write_tokens")?,
            reasoning_tokens: r.try_get("reasoning_tokens")?,
            amount: Nanos(r.try_get("amount_nanos")?),
        },
        amount_cents: r.try_get("amount_cents")?,
        residue: Nanos(r.try_get("residue_nanos")?),
        unit_prices: r
            .try_get::<Option<String>, _>("unit_prices")?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("unit_prices: {e}")))?,
    })
}

/// Each usage line followed by its per-request fees, split off it at the model's per-request
/// price (`unit_prices[model].per_request`, dollars), when it has one.
fn with_fees(
    lines: Vec<(LineKey, Quantities)>,
    unit_prices: &UnitPrices,
) -> Result<Vec<(LineKey, Quantities)>, StoreError> {
    let mut out = Vec::with_capacity(lines.len());
    for (key, q) in lines {
        let fee = (key.kind == LineKind::Usage)
            .then(|| key.model.as_ref().and_then(|m| unit_prices.get(m)))
            .flatten()
            .and_then(|u| u["per_request"].as_str())
            .and_then(|f| tollgate_domain::money::parse_decimal(f).ok())
            .unwrap_or_default();
        let (tokens, fees) =
            split_fees(q, fee).ok_or_else(|| invalid("an invoice's fees overflow"))?;
        out.push((key.clone(), tokens));
        if fees.0 != 0 {
            let fee_key = LineKey {
                kind: LineKind::Fee,
                ..key
            };
            let fee_q = Quantities {
                requests: q.requests,
                amount: fees,
                ..Quantities::default()
            };
            out.push((fee_key, fee_q));
        }
    }
    Ok(out)
}

/// The invoice `period` would get now, as a draft: its lines (what the records sum to less what
/// earlier invoices billed) and totals. `Err(Conflict)` if an invoice already covers the period.
async fn compute<B: Backend>(
    conn: &mut B::Connection,
    tenant_id: &str,
    rule: &PeriodRule,
    period: &Period,
    currency: &str,
    unit_prices: &UnitPrices,
) -> Result<Invoice, StoreError> {
    let ranges = ranges_of::<B>(conn, tenant_id, rule, period).await?;
    let start = ranges.last().map_or(period.start_ms, |r| r.from_ms);
    let (now, mut labels) = now_sums::<B>(conn, tenant_id, &ranges).await?;
    let (billed, billed_labels) = billed_sums::<B>(conn, tenant_id).await?;
    labels.extend(billed_labels);
    let overflow = || invalid("an invoice amount overflows");
    let diff = with_fees(unbilled(&now, &billed).ok_or_else(overflow)?, unit_prices)?;
    let amounts: Vec<(LineKind, Nanos)> = diff.iter().map(|(k, q)| (k.kind, q.amount)).collect();
    let (t, rounded) = totals(&amounts).ok_or_else(overflow)?;
    let mut lines = Vec::with_capacity(diff.len());
    for (i, ((key, q), (cents, residue))) in diff.into_iter().zip(rounded).enumerate() {
        lines.push(InvoiceLine {
            line_no: i64::try_from(i + 1).map_err(|_| overflow())?,
            kind: key.kind,
            period: labels
                .get(&key.period_start_ms)
                .cloned()
                .unwrap_or_default(),
            period_start_ms: key.period_start_ms,
            adjustment: key.period_start_ms != start,
            unit_prices: key.model.as_ref().and_then(|m| unit_prices.get(m).cloned()),
            model: key.model,
            quantities: q,
            amount_cents: cents,
            residue,
        });
    }
    Ok(Invoice {
        id: String::new(),
        tenant_id: tenant_id.to_owned(),
        number: None,
        status: InvoiceStatus::Draft,
        period: period.label(),
        period_start_ms: start,
        period_end_ms: period.end_ms,
        currency: currency.to_owned(),
        subtotal: t.subtotal,
        credits: t.credits,
        total: t.total,
        total_cents: t.total_cents,
        residue: t.residue,
        finalized_at_ms: None,
        due_at_ms: None,
        paid_at_ms: None,
        voided_at_ms: None,
        uncollectible_at_ms: None,
        lines,
    })
}

/// The tenant's finalized invoice that ends at `end_ms`, with its lines.
async fn invoice_ending<B: Backend>(
    conn: &mut B::Connection,
    tenant_id: &str,
    end_ms: i64,
) -> Result<Option<Invoice>, StoreError> {
    let sql = format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE tenant_id = $1 AND period_end_ms = $2"
    );
    let row = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(end_ms)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => with_lines::<B>(conn, invoice_from_row::<B>(&row)?)
            .await
            .map(Some),
        None => Ok(None),
    }
}

async fn with_lines<B: Backend>(
    conn: &mut B::Connection,
    mut invoice: Invoice,
) -> Result<Invoice, StoreError> {
    let sql =
        format!("SELECT {LINE_COLUMNS} FROM invoice_lines WHERE invoice_id = $1 ORDER BY line_no");
    let rows = sqlx::query(&sql)
        .bind(&invoice.id)
        .fetch_all(&mut *conn)
        .await?;
    invoice.lines = rows
        .iter()
        .map(|r| line_from_row::<B>(r, invoice.period_start_ms))
        .collect::<Result<_, _>>()?;
    Ok(invoice)
}

/// The UTC year of an instant.
fn utc_year(ms: i64) -> i64 {
    tollgate_domain::calendar::civil_from_days(ms.div_euclid(86_400_000)).0
}

/// [`Invoices::close_invoice`].
async fn close_invoice<B: Backend>(
    pool: &Pool<B>,
    close: &CloseInvoice<'_>,
) -> Result<(Invoice, bool), StoreError> {
    let mut tx = pool.begin().await?;
    let lock: Option<(i64, String)> = sqlx::query_as(LOCK_TENANT)
        .bind(close.tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
    let (anchor, zone) =
        lock.ok_or_else(|| StoreError::Conflict(format!("no tenant {}", close.tenant_id)))?;
    let rule = rule_from(anchor, &zone)?;
    let period = rule.period_at(close.at_ms).map_err(invalid)?;
    if let Some(existing) = invoice_ending::<B>(&mut tx, close.tenant_id, period.end_ms).await? {
        tx.commit().await?;
        return Ok((existing, false));
    }
    let mut invoice = compute::<B>(
        &mut tx,
        close.tenant_id,
        &rule,
        &period,
        close.currency,
        close.unit_prices,
    )
    .await?;
    let year = utc_year(close.now_ms);
    let seq: i64 = sqlx::query_scalar(NEXT_NUMBER)
        .bind(year)
        .fetch_one(&mut *tx)
        .await?;
    invoice.id = close.id.to_owned();
    invoice.number = Some(format!("{}-{year:04}-{seq:06}", close.number_prefix));
    // Nothing due (no usage, or less than half a cent): paid as it is finalized, as Stripe does.
    if invoice.total_cents == 0 {
        invoice.status = InvoiceStatus::Paid;
        invoice.paid_at_ms = Some(close.now_ms);
    } else {
        invoice.status = InvoiceStatus::Open;
    }
    invoice.finalized_at_ms = Some(close.now_ms);
    invoice.due_at_ms = Some(close.due_at_ms);
    insert(&mut tx, &invoice).await?;
    let postings = billed(&invoice)
        .finalize()
        .ok_or_else(|| invalid("an invoice amount overflows"))?;
    let rows: Vec<PostingRow> = postings
        .into_iter()
        .map(|p| PostingRow::new(p, close.now_ms, Some(close.tenant_id), None))
        .collect();
    post(&mut tx, &rows).await?;
    let mut entry = close.audit.clone();
    entry.target_id = invoice.id.clone();
    audit(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok((invoice, true))
}

fn billed(invoice: &Invoice) -> Billed<'_> {
    Billed {
        invoice_id: &invoice.id,
        tenant_id: &invoice.tenant_id,
        total: invoice.total,
        total_cents: invoice.total_cents,
    }
}

/// [`Invoices::draft_invoice`].
async fn draft_invoice<B: Backend>(
    pool: &Pool<B>,
    tenant_id: &str,
    at_ms: i64,
    currency: &str,
    unit_prices: &UnitPrices,
) -> Result<Option<Invoice>, StoreError> {
    let mut conn = pool.acquire().await?;
    let rule: Option<(i64, String)> = sqlx::query_as(TENANT_RULE)
        .bind(tenant_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((anchor, zone)) = rule else {
        return Ok(None);
    };
    let rule = rule_from(anchor, &zone)?;
    let period = rule.period_at(at_ms).map_err(invalid)?;
    if let Some(existing) = invoice_ending::<B>(&mut conn, tenant_id, period.end_ms).await? {
        return Ok(Some(existing));
    }
    compute::<B>(&mut conn, tenant_id, &rule, &period, currency, unit_prices)
        .await
        .map(Some)
}

/// [`Invoices::step_invoice`].
async fn step_invoice<B: Backend>(
    pool: &Pool<B>,
    id: &str,
    step: Step,
    at_ms: i64,
    audit_entry: &AuditEntry,
) -> Result<Option<Invoice>, StoreError> {
    let mut tx = pool.begin().await?;
    // A write first: the row stays locked until commit (Postgres), the database's write lock is
    // taken before anything is read (SQLite); the postings are computed from the status read here.
    let lock =
        format!("UPDATE invoices SET status = status WHERE id = $1 RETURNING {INVOICE_COLUMNS}");
    let Some(row) = sqlx::query(&lock).bind(id).fetch_optional(&mut *tx).await? else {
        return Ok(None);
    };
    let invoice = invoice_from_row::<B>(&row)?;
    let transition = billed(&invoice)
        .step(invoice.status, step)
        .ok_or_else(|| invalid("an invoice amount overflows"))?
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let Transition::Post(postings) = transition else {
        tx.commit().await?;
        return get_invoice(pool, id).await;
    };
    let column = match step {
        Step::Pay => "paid_at_ms",
        Step::Void => "voided_at_ms",
        Step::MarkUncollectible => "uncollectible_at_ms",
    };
    sqlx::query(&format!(
        "UPDATE invoices SET status = $1, {column} = $2 WHERE id = $3"
    ))
    .bind(step.target().as_str())
    .bind(at_ms)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let rows: Vec<PostingRow> = postings
        .into_iter()
        .map(|p| PostingRow::new(p, at_ms, Some(&invoice.tenant_id), None))
        .collect();
    post(&mut tx, &rows).await?;
    audit(&mut tx, audit_entry).await?;
    tx.commit().await?;
    get_invoice(pool, id).await
}

/// [`Invoices::get_invoice`].
async fn get_invoice<B: Backend>(pool: &Pool<B>, id: &str) -> Result<Option<Invoice>, StoreError> {
    let mut conn = pool.acquire().await?;
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1");
    let Some(row) = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    with_lines::<B>(&mut conn, invoice_from_row::<B>(&row)?)
        .await
        .map(Some)
}

/// [`Invoices::list_invoices`].
async fn list_invoices<B: Backend>(
    pool: &Pool<B>,
    filter: InvoiceFilter<'_>,
    page: Page<'_>,
) -> Result<Vec<Invoice>, StoreError> {
    let sql = format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE id > $1 \
         AND ($2 IS NULL OR tenant_id = $2) AND ($3 IS NULL OR status = $3) ORDER BY id LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(page.after.unwrap_or(""))
        .bind(filter.tenant_id)
        .bind(filter.status.map(InvoiceStatus::as_str))
        .bind(i64::from(page.limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(invoice_from_row::<B>).collect()
}

impl<B: Backend, S: Pooled<Db = B>> Invoices for S {
    async fn invoiced_until(&self, tenant_id: &str) -> Result<Option<i64>, StoreError> {
        lease::invoiced_until(self.pool(), tenant_id).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        lease::take_lease(self.pool(), name, holder, now_ms, ttl_ms).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        lease::release_lease(self.pool(), name, holder).await
    }

    async fn close_invoice(&self, close: &CloseInvoice<'_>) -> Result<(Invoice, bool), StoreError> {
        close_invoice(self.pool(), close).await
    }

    async fn draft_invoice(
        &self,
        tenant_id: &str,
        at_ms: i64,
        currency: &str,
        unit_prices: &UnitPrices,
    ) -> Result<Option<Invoice>, StoreError> {
        draft_invoice(self.pool(), tenant_id, at_ms, currency, unit_prices).await
    }

    async fn get_invoice(&self, id: &str) -> Result<Option<Invoice>, StoreError> {
        get_invoice(self.pool(), id).await
    }

    async fn list_invoices(
        &self,
        filter: InvoiceFilter<'_>,
        page: Page<'_>,
    ) -> Result<Vec<Invoice>, StoreError> {
        list_invoices(self.pool(), filter, page).await
    }

    async fn step_invoice(
        &self,
        id: &str,
        step: Step,
        at_ms: i64,
        audit: &AuditEntry,
    ) -> Result<Option<Invoice>, StoreError> {
        step_invoice(self.pool(), id, step, at_ms, audit).await
    }
}
