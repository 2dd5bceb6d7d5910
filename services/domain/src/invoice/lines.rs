//! An invoice's lines, from what the usage records say now and what earlier invoices already
//! billed.
//!
//! The store sums a tenant's billed usage records per **line key**: per period and public model
//! (usage), and per period the refunds (reversed charges) and the credit applied (the part of the
//! charges drawn from prepaid or promotional credit). An invoice for a period bills, for that
//! period and every earlier period already invoiced, the difference between those sums now and
//! what earlier invoices billed for the same key. For the invoice's own period that is all of it;
//! for an earlier period it is what arrived after that period's invoice was finalized (a late
//! record, a refund): an **adjustment** line naming its period. So, per tenant, Σ of the lines of
//! every invoice, key by key, equals the usage records' sums exactly, whatever arrives when.

use std::collections::BTreeMap;

use crate::money::Nanos;

/// What a line bills.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// The tenant prices of a public model's requests' tokens.
    Usage,
    /// A public model's per-request fees (requests × the per-request price); split from its
    /// usage line, so the two add up to what the records were charged.
    Fee,
    /// Charges reversed by a correction (negative).
    Refund,
    /// The part of the charges drawn from the tenant's credit (negative): already paid.
    Credit,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Usage => "usage",
            Self::Fee => "fee",
            Self::Refund => "refund",
            Self::Credit => "credit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "usage" => Some(Self::Usage),
            "fee" => Some(Self::Fee),
            "refund" => Some(Self::Refund),
            "credit" => Some(Self::Credit),
            _ => None,
        }
    }
}

/// What a line sums over: a kind, the period its records belong to (its start), and the public
/// model for usage lines.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineKey {
    pub period_start_ms: i64,
    pub kind: LineKind,
    pub model: Option<String>,
}

/// Quantities and the exact amount of a line (or of the records behind it).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quantities {
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    /// Exact, in nano-dollars.
    pub amount: Nanos,
}

impl Quantities {
    fn fields(&self) -> [i64; 7] {
        [
            self.requests,
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.amount.0,
        ]
    }

    fn from_fields(f: [i64; 7]) -> Self {
        Self {
            requests: f[0],
            prompt_tokens: f[1],
            completion_tokens: f[2],
            cached_tokens: f[3],
            cache_write_tokens: f[4],
            reasoning_tokens: f[5],
            amount: Nanos(f[6]),
        }
    }

    /// Field by field, checked.
    pub fn checked_add(&self, other: &Self) -> Option<Self> {
        zip_checked(self.fields(), other.fields(), i64::checked_add).map(Self::from_fields)
    }

    /// Field by field, checked.
    pub fn checked_sub(&self, other: &Self) -> Option<Self> {
        zip_checked(self.fields(), other.fields(), i64::checked_sub).map(Self::from_fields)
    }

    pub fn is_zero(&self) -> bool {
        self.fields() == [0; 7]
    }
}

fn zip_checked(a: [i64; 7], b: [i64; 7], op: fn(i64, i64) -> Option<i64>) -> Option<[i64; 7]> {
    let mut out = [0; 7];
    for i in 0..7 {
        out[i] = op(a[i], b[i])?;
    }
    Some(out)
}

/// Sums per line key.
pub type Sums = BTreeMap<LineKey, Quantities>;

/// Adds `q` to the sums under `key` (checked).
pub fn add_to(sums: &mut Sums, key: LineKey, q: Quantities) -> Option<()> {
    let entry = sums.entry(key).or_default();
    *entry = entry.checked_add(&q)?;
    Some(())
}

/// The lines an invoice bills: for every key, what the records sum to now less what earlier
/// invoices billed, where that is not zero, in key order (period, then usage, refunds, credit).
/// `None` if a difference cannot be represented.
pub fn unbilled(now: &Sums, billed: &Sums) -> Option<Vec<(LineKey, Quantities)>> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&LineKey> = now.keys().chain(billed.keys()).collect();
    for key in keys {
        let zero = Quantities::default();
        let diff = now
            .get(key)
            .unwrap_or(&zero)
            .checked_sub(billed.get(key).unwrap_or(&zero))?;
        if !diff.is_zero() {
            out.push((key.clone(), diff));
        }
    }
    Some(out)
}

/// An invoice's totals, from its lines' exact amounts: rounded to cents once per line (half to
/// even, [`super::to_cents`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Σ of the usage and fee lines, exact.
    pub subtotal: Nanos,
    /// Σ of the refund and credit lines, exact (zero or negative).
    pub credits: Nanos,
    /// Σ of every line, exact: what the period added to the tenant's receivable.
    pub total: Nanos,
    /// Σ of the lines' cents: the amount due.
    pub total_cents: i64,
    /// `total − total_cents × 10⁷`: what the rounding of the lines took (positive) or added.
    pub residue: Nanos,
}

/// The totals of lines with these exact amounts, and each line's cents and residue; `None` if a
/// sum cannot be represented.
pub fn totals(lines: &[(LineKind, Nanos)]) -> Option<(Totals, Vec<(i64, Nanos)>)> {
    let mut t = Totals::default();
    let mut rounded = Vec::with_capacity(lines.len());
    for (kind, exact) in lines {
        let (cents, residue) = super::to_cents(*exact)?;
        match kind {
            LineKind::Usage | LineKind::Fee => {
                t.subtotal = t.subtotal.0.checked_add(exact.0).map(Nanos)?;
            }
            LineKind::Refund | LineKind::Credit => {
                t.credits = t.credits.0.checked_add(exact.0).map(Nanos)?;
            }
        }
        t.total = t.total.0.checked_add(exact.0).map(Nanos)?;
        t.total_cents = t.total_cents.checked_add(cents)?;
        t.residue = t.residue.0.checked_add(residue.0).map(Nanos)?;
        rounded.push((cents, residue));
    }
    Some((t, rounded))
}

/// Splits what a usage line bills into the per-request fees of its `requests` at `fee` (dollars
/// per request, exact) and the rest, the tokens: `(tokens, fees)`, which add up to `usage`. The
/// fees are rounded once to the nano-dollar, half to even, and never more than the line (a
/// charge capped at its hold can be below its fee) nor below zero. `None` if they cannot be
/// represented.
pub fn split_fees(usage: Quantities, fee: rust_decimal::Decimal) -> Option<(Quantities, Nanos)> {
    use rust_decimal::prelude::ToPrimitive;
    if fee.is_zero() || usage.requests == 0 {
        return Some((usage, Nanos(0)));
    }
    let exact = fee
        .checked_mul(rust_decimal::Decimal::from(usage.requests))?
        .checked_mul(rust_decimal::Decimal::from(crate::money::NANOS_PER_USD))?
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointNearestEven)
        .to_i64()?;
    let fees = exact.clamp(0, usage.amount.0.max(0));
    let tokens = Quantities {
        amount: Nanos(usage.amount.0.checked_sub(fees)?),
        ..usage
    };
    Some((tokens, Nanos(fees)))
}
