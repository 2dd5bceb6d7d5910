//! Invoice rules (issue 19 groundwork): billing periods and the one rounding to cents.
//!
//! - [`period`]: a tenant's billing periods — monthly from an anchor day at local midnight in an
//!   IANA time zone, kept as UTC instants, across daylight-saving changes.
//! - [`to_cents`]: money stays integer nano-dollars until an invoice line is rounded to cents, half
//!   to even, once; what the rounding took or gave is the line's residue, carried on the invoice so
//!   that Σ cents + Σ residues = Σ exact amounts, to the nano-dollar.

pub mod period;

use crate::money::Nanos;

/// Nano-dollars in a cent.
pub const NANOS_PER_CENT: i64 = 10_000_000;

/// An exact amount rounded to cents, half to even, and the residue: `exact = cents × 10⁷ + residue`
/// (|residue| ≤ half a cent). Negative amounts (credits, adjustments) round symmetrically.
pub fn to_cents(exact: Nanos) -> (i64, Nanos) {
    let quotient = exact.0.div_euclid(NANOS_PER_CENT);
    let remainder = exact.0.rem_euclid(NANOS_PER_CENT);
    let up = match (2 * remainder).cmp(&NANOS_PER_CENT) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => quotient % 2 != 0,
        std::cmp::Ordering::Less => false,
    };
    let cents = quotient + i64::from(up);
    // cents × 10⁷ is within one cent of `exact`, so it cannot overflow where `exact` did not.
    (cents, Nanos(exact.0 - cents * NANOS_PER_CENT))
}

/// Invoice lines rounded: each line's cents, and the invoice's residue (Σ of the lines').
pub fn round_lines(exact: &[Nanos]) -> (Vec<i64>, Nanos) {
    let mut residue = 0i128;
    let cents = exact
        .iter()
        .map(|n| {
            let (c, r) = to_cents(*n);
            residue += i128::from(r.0);
            c
        })
        .collect();
    // At most half a cent per line: far inside i64 for any invoice that fits in memory.
    (cents, Nanos(i64::try_from(residue).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests;
