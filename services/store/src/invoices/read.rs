//! What an invoice is computed from: the ranges of time the tenant's invoices cover, what the
//! usage records and their postings sum to in each, and what earlier invoices' lines billed.

use std::collections::BTreeMap;

use sqlx::Row;
use tollgate_domain::invoice::lines::{add_to, LineKey, LineKind, Quantities, Sums};
use tollgate_domain::invoice::period::{Period, PeriodError, PeriodRule};
use tollgate_domain::money::Nanos;

use crate::backend::Backend;
use crate::error::StoreError;

/// Per public model, over the billed records of a tenant created in `[$2, $3)`: requests,
/// tokens, the charges, the part drawn from credit, and what corrections reversed of each leg.
/// A record's postings are found by their keys (the unique key index), which its id determines.
const RANGE_SUMS: &str = "SELECT r.public_model, CAST(COUNT(*) AS BIGINT), \
    CAST(COALESCE(SUM(r.prompt_tokens), 0) AS BIGINT), \
    CAST(COALESCE(SUM(r.completion_tokens), 0) AS BIGINT), \
    CAST(COALESCE(SUM(r.cached_tokens), 0) AS BIGINT), \
    CAST(COALESCE(SUM(r.cache_write_tokens), 0) AS BIGINT), \
    CAST(COALESCE(SUM(r.reasoning_tokens), 0) AS BIGINT), \
    CAST(COALESCE(SUM(r.price_nanos), 0) AS BIGINT), \
    CAST(COALESCE(SUM(pc.amount), 0) AS BIGINT), \
    CAST(COALESCE(SUM(rc.amount), 0) AS BIGINT), \
    CAST(COALESCE(SUM(rr.amount), 0) AS BIGINT), \
    CAST(MIN(r.created_at_ms) AS BIGINT) \
    FROM request_log r \
    LEFT JOIN ledger_postings pc ON pc.key = 'usage:' || r.id || ':credit' \
    LEFT JOIN ledger_postings rc ON rc.key = 'reverse:usage:' || r.id || ':credit' \
    LEFT JOIN ledger_postings rr ON rr.key = 'reverse:usage:' || r.id || ':receivable' \
    WHERE r.tenant_id = $1 AND r.created_at_ms >= $2 AND r.created_at_ms < $3 \
    AND r.price_nanos IS NOT NULL GROUP BY r.public_model ORDER BY r.public_model";

/// What a tenant's earlier invoices billed, per line key.
const BILLED_SUMS: &str = "SELECT period_start_ms, kind, model, MIN(period), \
    CAST(SUM(requests) AS BIGINT), CAST(SUM(prompt_tokens) AS BIGINT), \
    CAST(SUM(completion_tokens) AS BIGINT), CAST(SUM(cached_tokens) AS BIGINT), \
    CAST(SUM(cache_write_tokens) AS BIGINT), CAST(SUM(reasoning_tokens) AS BIGINT), \
    CAST(SUM(amount_nanos) AS BIGINT) \
    FROM invoice_lines WHERE tenant_id = $1 GROUP BY period_start_ms, kind, model";

/// The periods of a tenant's invoices, oldest first.
const INVOICED_PERIODS: &str = "SELECT period_start_ms, period_end_ms, period FROM invoices \
    WHERE tenant_id = $1 ORDER BY period_start_ms";

/// A span of time whose records are summed under one period key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    /// The line key's period.
    pub key: i64,
    pub from_ms: i64,
    pub to_ms: i64,
    /// The period's name (`YYYY-MM`).
    pub label: String,
}

/// Why ranges cannot be made.
#[derive(Debug)]
pub(crate) enum RangeError {
    /// An invoice already covers the period (it ends at this instant, at or after the period's).
    Covered(i64),
    Period(PeriodError),
}

/// What an invoice for `period` sums over: every invoiced period; the periods never invoiced
/// before the first invoice (from the tenant's `earliest` billed record) and between invoices,
/// one range per period of the rule (their records are billed by this invoice, each under its
/// own period); and the period itself, starting no earlier than the last invoiced period's end (a
/// tenant whose anchor day changed gets one shorter period, never two invoices over the same
/// time). A range's key is its period's start (or the invoice end it follows, if later), which
/// stays the same at every later close, so what was billed under it is found again.
pub(crate) fn ranges(
    invoiced: &[(i64, i64, String)],
    period: &Period,
    rule: &PeriodRule,
    earliest: Option<i64>,
) -> Result<Vec<Range>, RangeError> {
    let mut out = Vec::new();
    let mut at: Option<i64> = None;
    for (start, end, label) in invoiced {
        gap(&mut out, rule, at, earliest, *start)?;
        out.push(Range {
            key: *start,
            from_ms: *start,
            to_ms: *end,
            label: label.clone(),
        });
        at = Some(*end);
    }
    if let Some(end) = at.filter(|end| *end >= period.end_ms) {
        return Err(RangeError::Covered(end));
    }
    let start = at.map_or(period.start_ms, |a| period.start_ms.max(a));
    gap(&mut out, rule, at, earliest, start)?;
    out.push(Range {
        key: start,
        from_ms: start,
        to_ms: period.end_ms,
        label: period.label(),
    });
    Ok(out)
}

/// The never-invoiced time before `to`, a range per period of the rule: from the end of the
/// invoice before (`after`), or, before the first invoice, from the start of the period of the
/// tenant's `earliest` record (nothing if it has none). Keys are the periods' starts (or `after`,
/// if later): they do not move when an earlier record arrives late.
fn gap(
    out: &mut Vec<Range>,
    rule: &PeriodRule,
    after: Option<i64>,
    earliest: Option<i64>,
    to: i64,
) -> Result<(), RangeError> {
    let Some(from) = after.or(earliest).filter(|f| *f < to) else {
        return Ok(());
    };
    let mut p = rule.period_at(from).map_err(RangeError::Period)?;
    while p.start_ms < to {
        let start = after.map_or(p.start_ms, |a| p.start_ms.max(a));
        out.push(Range {
            key: start,
            from_ms: start,
            to_ms: p.end_ms.min(to),
            label: p.label(),
        });
        p = rule.next(&p).map_err(RangeError::Period)?;
    }
    Ok(())
}

/// The ranges an invoice for `period` sums over (see [`ranges`]).
pub(crate) async fn ranges_of<B: Backend>(
    conn: &mut B::Connection,
    tenant_id: &str,
    rule: &PeriodRule,
    period: &Period,
) -> Result<Vec<Range>, StoreError> {
    let invoiced = invoiced_periods::<B>(conn, tenant_id).await?;
    let first = invoiced
        .first()
        .map_or(period.start_ms, |(start, _, _)| *start);
    let earliest = earliest_record::<B>(conn, tenant_id, first).await?;
    ranges(&invoiced, period, rule, earliest).map_err(|e| match e {
        RangeError::Covered(end) => StoreError::Conflict(format!(
            "an invoice of tenant {tenant_id} already covers the period until {end}"
        )),
        RangeError::Period(e) => StoreError::Invalid(e.to_string()),
    })
}

/// The time of the tenant's earliest billed record before `before_ms`, if any.
pub(crate) async fn earliest_record<B: Backend>(
    conn: &mut B::Connection,
    tenant_id: &str,
    before_ms: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(MIN(created_at_ms) AS BIGINT) FROM request_log WHERE tenant_id = $1 \
         AND price_nanos IS NOT NULL AND created_at_ms < $2",
    )
    .bind(tenant_id)
    .bind(before_ms)
    .fetch_one(&mut *conn)
    .await?)
}

/// The tenant's invoiced periods, oldest first.
pub(crate) async fn invoiced_periods<B: Backend>(
    conn: &mut B::Connection,
    tenant_id: &str,
) -> Result<Vec<(i64, i64, String)>, StoreError> {
    Ok(sqlx::query_as(INVOICED_PERIODS)
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?)
}

/// What the records sum to now, per line key, over `ranges`; and each key's period label.
pub(crate) async fn now_sums<B: Backend>(
    conn: &mut B::Connection,
    tenant_id: &str,
    ranges: &[Range],
) -> Result<(Sums, BTreeMap<i64, String>), StoreError> {
    let mut sums = Sums::new();
    let mut labels = BTreeMap::new();
    for range in ranges {
        let rows = sqlx::query(RANGE_SUMS)
            .bind(tenant_id)
            .bind(range.from_ms)
            .bind(range.to_ms)
            .fetch_all(&mut *conn)
            .await?;
        add_range::<B>(&mut sums, range.key, &rows)?;
        labels.insert(range.key, range.label.clone());
    }
    Ok((sums, labels))
}

fn overflow(e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("an invoice sum: {e}"))
}

/// Adds one range's rows (per model) to the sums under the period key `key`: a usage line per
/// model, and the range's refunds and credit applied; returns the range's first record's time.
fn add_range<B: Backend>(
    sums: &mut Sums,
    key: i64,
    rows: &[B::Row],
) -> Result<Option<i64>, StoreError> {
    let (mut refunded, mut credit, mut first) = (0i64, 0i64, None::<i64>);
    let line = |kind, model| LineKey {
        period_start_ms: key,
        kind,
        model,
    };
    for row in rows {
        let n = |i: usize| row.try_get::<i64, _>(i);
        let usage = Quantities {
            requests: n(1)?,
            prompt_tokens: n(2)?,
            completion_tokens: n(3)?,
            cached_tokens: n(4)?,
            cache_write_tokens: n(5)?,
            reasoning_tokens: n(6)?,
            amount: Nanos(n(7)?),
        };
        add_to(sums, line(LineKind::Usage, Some(row.try_get(0)?)), usage)
            .ok_or_else(|| overflow("usage"))?;
        let (drawn, credit_back, receivable_back) = (n(8)?, n(9)?, n(10)?);
        refunded = [credit_back, receivable_back]
            .into_iter()
            .try_fold(refunded, i64::checked_add)
            .ok_or_else(|| overflow("refunds"))?;
        credit = drawn
            .checked_sub(credit_back)
            .and_then(|c| credit.checked_add(c))
            .ok_or_else(|| overflow("credit"))?;
        let at = n(11)?;
        first = Some(first.map_or(at, |f: i64| f.min(at)));
    }
    for (kind, amount) in [(LineKind::Refund, refunded), (LineKind::Credit, credit)] {
        if amount != 0 {
            let q = Quantities {
                amount: Nanos(amount.checked_neg().ok_or_else(|| overflow("negation"))?),
                ..Quantities::default()
            };
            add_to(sums, line(kind, None), q).ok_or_else(|| overflow("credits"))?;
        }
    }
    Ok(first)
}

/// What the tenant's earlier invoices billed, per line key; and their labels.
pub(crate) async fn billed_sums<B: Backend>(
    conn: &mut B::Connection,
    tenant_id: &str,
) -> Result<(Sums, BTreeMap<i64, String>), StoreError> {
    let rows = sqlx::query(BILLED_SUMS)
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut sums = Sums::new();
    let mut labels = BTreeMap::new();
    for row in &rows {
        let n = |i: usize| row.try_get::<i64, _>(i);
        let kind: String = row.try_get(1)?;
        let kind = LineKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("invoice line kind {kind:?}")))?;
        // A fee line is part of its usage line's amount (its requests are the usage line's).
        let fee = kind == LineKind::Fee;
        let key = LineKey {
            period_start_ms: n(0)?,
            kind: if fee { LineKind::Usage } else { kind },
            model: row.try_get(2)?,
        };
        labels.insert(key.period_start_ms, row.try_get(3)?);
        let q = Quantities {
            requests: if fee { 0 } else { n(4)? },
            prompt_tokens: n(5)?,
            completion_tokens: n(6)?,
            cached_tokens: n(7)?,
            cache_write_tokens: n(8)?,
            reasoning_tokens: n(9)?,
            amount: Nanos(n(10)?),
        };
        add_to(&mut sums, key, q)
            .ok_or_else(|| StoreError::Corrupt("invoice lines overflow".into()))?;
    }
    Ok((sums, labels))
}
