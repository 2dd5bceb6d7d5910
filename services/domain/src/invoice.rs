//! Invoice rules: billing periods, lines, the one rounding to cents, and an invoice's life.
//!
//! - [`period`]: a tenant's billing periods — monthly from an anchor day at local midnight in an
//!   IANA time zone, kept as UTC instants, across daylight-saving changes.
//! - [`lines`]: what an invoice bills — per period and model, what the usage records sum to now
//!   less what earlier invoices billed (late usage becomes an adjustment naming its period).
//! - [`status`]: open → paid / void / uncollectible, and the ledger postings of each step.
//! - [`to_cents`]: money stays integer nano-dollars until an invoice line is rounded to cents, half
//!   to even, once; what the rounding took or gave is the line's residue, carried on the invoice so
//!   that Σ cents + Σ residues = Σ exact amounts, to the nano-dollar.

pub mod lines;
pub mod period;
pub mod status;

use crate::money::Nanos;

/// Nano-dollars in a cent.
pub const NANOS_PER_CENT: i64 = 10_000_000;

/// An exact amount rounded to cents, half to even, and the residue: `exact = cents × 10⁷ + residue`
/// (|residue| ≤ half a cent). Negative amounts (credits, adjustments) round symmetrically. Checked
/// arithmetic throughout: `None` rather than a wrapped amount if a step could not be represented.
pub fn to_cents(exact: Nanos) -> Option<(i64, Nanos)> {
    let quotient = exact.0.div_euclid(NANOS_PER_CENT);
    let remainder = exact.0.rem_euclid(NANOS_PER_CENT);
    let up = match (2 * remainder).cmp(&NANOS_PER_CENT) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => quotient % 2 != 0,
        std::cmp::Ordering::Less => false,
    };
    let cents = quotient.checked_add(i64::from(up))?;
    let residue = exact.0.checked_sub(cents.checked_mul(NANOS_PER_CENT)?)?;
    Some((cents, Nanos(residue)))
}

/// Invoice lines rounded: each line's cents, and the invoice's residue (Σ of the lines'). `None`
/// if a line or the residue cannot be represented: an invoice is never rounded by saturating.
pub fn round_lines(exact: &[Nanos]) -> Option<(Vec<i64>, Nanos)> {
    let mut residue = 0i64;
    let mut cents = Vec::with_capacity(exact.len());
    for n in exact {
        let (c, r) = to_cents(*n)?;
        residue = residue.checked_add(r.0)?;
        cents.push(c);
    }
    Some((cents, Nanos(residue)))
}

#[cfg(test)]
mod tests;
