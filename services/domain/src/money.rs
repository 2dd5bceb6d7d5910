//! Money: exact decimals for rates, integers for amounts.
//!
//! **The minor unit is the nano-dollar: 1 unit = 10⁻⁹ USD** (a billionth of a dollar). It is small
//! enough that a single token of the cheapest listed model costs a whole number of units or a
//! fraction of one, and large enough that an `i64` holds ±9.2 billion dollars. Rates (prices per
//! token) stay exact [`Decimal`]s parsed from text; a cost is computed exactly in decimals and
//! rounded to the minor unit **once per usage record** (half to even), so the rounding error of a
//! record is at most half a nano-dollar.

use std::fmt;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

/// Nano-dollars per dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// An amount of money in the minor unit (10⁻⁹ USD).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Nanos(pub i64);

/// A decimal that is not a valid rate or amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a decimal number")]
    NotANumber(String),
    #[error("`{0}` is negative")]
    Negative(String),
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

/// Parses a decimal from its text exactly: `0.000015`, `1.5e-07`, `2E-6`. No float is involved,
/// so `1.5e-07` is exactly 0.00000015.
pub fn parse_decimal(text: &str) -> Result<Decimal, MoneyError> {
    let t = text.trim();
    let parsed = if t.contains(['e', 'E']) {
        Decimal::from_scientific(t)
    } else {
        Decimal::from_str_exact(t)
    };
    parsed
        .map(|d| d.normalize())
        .map_err(|_| MoneyError::NotANumber(text.to_owned()))
}

/// Parses a non-negative rate (a price) from text.
pub fn parse_rate(text: &str) -> Result<Decimal, MoneyError> {
    let d = parse_decimal(text)?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(MoneyError::Negative(text.to_owned()));
    }
    Ok(d)
}

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// Rounds an exact amount in dollars to the minor unit, half to even.
    pub fn from_usd(usd: Decimal) -> Result<Self, MoneyError> {
        // Rounded at the ninth decimal on the amount's own digits, then scaled as an integer: one
        // exact rounding, even where `usd × 10⁹` would not fit a decimal's 96-bit mantissa.
        let rounded = usd.round_dp_with_strategy(9, RoundingStrategy::MidpointNearestEven);
        10i128
            .checked_pow(9 - rounded.scale().min(9))
            .and_then(|scale| rounded.mantissa().checked_mul(scale))
            .and_then(|n| i64::try_from(n).ok())
            .map(Nanos)
            .ok_or_else(|| MoneyError::OutOfRange(usd.to_string()))
    }

    /// Parses an amount in dollars (`"1.00"`, `"0.000000001"`); sub-nano digits are an error.
    pub fn parse_usd(text: &str) -> Result<Self, MoneyError> {
        let d = parse_decimal(text)?;
        let scaled = d
            .checked_mul(Decimal::from(NANOS_PER_USD))
            .ok_or_else(|| MoneyError::OutOfRange(text.to_owned()))?;
        if !scaled.fract().is_zero() {
            return Err(MoneyError::OutOfRange(format!(
                "{text} (finer than 10⁻⁹ USD)"
            )));
        }
        scaled
            .to_i64()
            .map(Nanos)
            .ok_or_else(|| MoneyError::OutOfRange(text.to_owned()))
    }

    /// The exact amount in dollars.
    pub fn usd(self) -> Decimal {
        Decimal::new(self.0, 9).normalize()
    }

    pub fn checked_add(self, other: Nanos) -> Option<Nanos> {
        self.0.checked_add(other.0).map(Nanos)
    }

    pub fn saturating_add(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(other.0))
    }
}

/// Dollars, exactly: `1.5`, `0.000000123`.
impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.usd())
    }
}

/// Serde for an optional amount written as a dollar string (`"1.00"`), exact both ways:
/// `#[serde(with = "tollgate_domain::money::usd_opt")]`.
pub mod usd_opt {
    use super::Nanos;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Nanos>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.collect_str(n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Nanos>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            let n = Nanos::parse_usd(&t).map_err(serde::de::Error::custom)?;
            if n.0 < 0 {
                return Err(serde::de::Error::custom(format!("`{t}` is negative")));
            }
            Ok(n)
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_scientific_and_plain_text_exactly() {
        assert_eq!(
            parse_decimal("1.5e-07").ok(),
            Decimal::from_str_exact("0.00000015").ok()
        );
        assert_eq!(
            parse_decimal("2E-6").ok(),
            Decimal::from_str_exact("0.000002").ok()
        );
        assert_eq!(
            parse_decimal("3.75e-08").ok(),
            Decimal::from_str_exact("0.0000000375").ok()
        );
        assert_eq!(
            parse_decimal("0.000015").ok(),
            Decimal::from_str_exact("0.000015").ok()
        );
        assert_eq!(parse_decimal("12").ok(), Some(Decimal::from(12)));
        assert!(parse_decimal("abc").is_err());
        assert!(parse_decimal("").is_err());
        assert!(parse_rate("-1e-6").is_err());
    }

    #[test]
    fn amounts_round_half_to_even_at_the_nano() {
        let d = |s: &str| Decimal::from_str_exact(s).unwrap_or_default();
        assert_eq!(Nanos::from_usd(d("0.0000000015")).ok(), Some(Nanos(2)));
        assert_eq!(Nanos::from_usd(d("0.0000000025")).ok(), Some(Nanos(2)));
        assert_eq!(Nanos::from_usd(d("0.00000000251")).ok(), Some(Nanos(3)));
        assert_eq!(Nanos::from_usd(d("1")).ok(), Some(Nanos(NANOS_PER_USD)));
        assert_eq!(Nanos::parse_usd("1.00").ok(), Some(Nanos(NANOS_PER_USD)));
        assert!(Nanos::parse_usd("0.0000000001").is_err());
        assert_eq!(Nanos(1_500_000_000).to_string(), "1.5");
        assert_eq!(Nanos(123).to_string(), "0.000000123");
    }

    proptest! {
        #[test]
        fn dollars_round_trip_through_text(n in any::<i64>()) {
            let text = Nanos(n).to_string();
            prop_assert_eq!(Nanos::parse_usd(&text).ok(), Some(Nanos(n)));
        }

        #[test]
        fn scientific_text_matches_plain_text(mantissa in 0u64..1_000_000, exp in 0u32..12) {
            let sci = format!("{mantissa}e-{exp}");
            let plain = Decimal::from_i128_with_scale(i128::from(mantissa), exp);
            prop_assert_eq!(parse_decimal(&sci).ok(), Some(plain.normalize()));
        }
    }
}
