//! What an invoice is computed from: the ranges of time the tenant's invoices cover, what the
//! usage records and their postings sum to in each, and what earlier invoices' lines billed.

use std::collections::BTreeMap;

use sqlx::Row;
use tollgate_domain::invoice::lines::{add_to, LineKey, LineKind, Quantities, Sums};
use tollgate_domain::invoice::period::{Period, PeriodRule};
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
    /// The line key's period: the range's start.
    pub key: i64,
    pub from_ms: i64,
    pub to_ms: i64,
    /// `Some` for an invoiced period (its stored label) or the period being closed.
    pub label: Option<String>,
}

/// What an invoice for `period` sums over: every invoiced period, the gaps between them and
/// before the first (periods never invoiced: their records are billed by the next invoice), and
/// the period itself, starting no earlier than the last invoiced period's end (a tenant whose
/// anchor day changed gets one shorter period, never two invoices over the same time).
/// `Err(end)`: an invoice already covers the period (it ends at `end`, at or after the period's).
pub(crate) fn ranges(invoiced: &[(i64, i64, String)], period: &Period) -> Result<Vec<Range>, i64> {
    let mut out = Vec::new();
    let mut at = i64::MIN;
    for (start, end, label) in invoiced {
        if *start > at {
            out.push(gap(at, *start));
        }
        out.push(Range {
            key: *start,
            from_ms: *start,
            to_ms: *end,
            label: Some(label.clone()),
        });
        at = *end;
    }
    if at >= period.end_ms {
        return Err(at);
    }
    let start = period.start_ms.max(at);
    if start > at {
        out.push(gap(at, start));
    }
    out.push(Range {
        key: start,
        from_ms: start,
        to_ms: period.end_ms,
        label: Some(period.label()),
    });
    Ok(out)
}

fn gap(from_ms: i64, to_ms: i64) -> Range {
    Range {
        key: from_ms,
        from_ms,
        to_ms,
        label: None,
    }
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

/// What the records sum to now, per line key, over `ranges`; and each key's period label (a
/// gap's is the period, by `rule`, of its first record).
pub(crate) async fn now_sums<B: Backend>(
    conn: &mut B::Connection,
    tenant_id: &str,
    ranges: &[Range],
    rule: &PeriodRule,
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
        let first = add_range::<B>(&mut sums, range.key, &rows)?;
        let label = match (&range.label, first) {
            (Some(l), _) => l.clone(),
            (None, Some(first)) => rule.period_at(first).map_err(overflow)?.label(),
            (None, None) => continue,
        };
        labels.insert(range.key, label);
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
        let key = LineKey {
            period_start_ms: n(0)?,
            kind: LineKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("invoice line kind {kind:?}")))?,
            model: row.try_get(2)?,
        };
        labels.insert(key.period_start_ms, row.try_get(3)?);
        let q = Quantities {
            requests: n(4)?,
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
