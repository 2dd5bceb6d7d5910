//! Prices and costs: what one request cost the operator (the provider's price) and what it costs
//! the tenant (that cost × the tenant's markup).
//!
//! A [`PriceSheet`] gives dollars per token for each kind of token, per-request and per-image
//! fees, and long-context tiers. Rules (documented in `docs/billing.md`):
//! - **token kinds**: uncached input, cached input read, cache write, output, reasoning. Cached
//!   reads and cache writes default to the input price, reasoning to the output price, when the
//!   sheet does not set them;
//! - **long-context tiers**: when a request's prompt (all input tokens, cached and written
//!   included) is *above* a tier's threshold, the highest such tier's prices apply to every token
//!   of the request (this is how providers price long context);
//! - the cost is exact (decimal) and rounded to the minor unit once, by [`crate::money::Nanos::from_usd`].

pub mod catalog;

use rust_decimal::Decimal;

use crate::money::{MoneyError, Nanos};
use crate::usage::Usage;

/// Dollars per token of each kind (`None`: the default described in the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rates {
    pub input: Decimal,
    pub output: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Decimal>,
}

/// Prices that apply when the prompt is longer than `above_tokens`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tier {
    pub above_tokens: u64,
    #[serde(flatten)]
    pub rates: Rates,
}

/// A deployment's prices.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PriceSheet {
    #[serde(flatten)]
    pub rates: Rates,
    /// Dollars per request.
    #[serde(default, skip_serializing_if = "Decimal::is_zero")]
    pub per_request: Decimal,
    /// Dollars per input image.
    #[serde(default, skip_serializing_if = "Decimal::is_zero")]
    pub per_image: Decimal,
    /// Long-context tiers, by ascending threshold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
}

/// A request's cost, exact, by kind (dollars).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub input: Decimal,
    pub cache_read: Decimal,
    pub cache_write: Decimal,
    pub output: Decimal,
    pub reasoning: Decimal,
    pub fees: Decimal,
}

impl Cost {
    /// The exact total; [`MoneyError::OutOfRange`] when it is too large for a decimal.
    pub fn total(&self) -> Result<Decimal, MoneyError> {
        [
            self.cache_read,
            self.cache_write,
            self.output,
            self.reasoning,
            self.fees,
        ]
        .into_iter()
        .try_fold(self.input, plus)
    }

    /// The total in the minor unit (rounded once).
    pub fn nanos(&self) -> Result<Nanos, MoneyError> {
        Nanos::from_usd(self.total()?)
    }
}

impl PriceSheet {
    /// The rates that apply to a prompt of `prompt_tokens`.
    pub fn rates_for(&self, prompt_tokens: u64) -> &Rates {
        self.tiers
            .iter()
            .rev()
            .find(|t| prompt_tokens > t.above_tokens)
            .map_or(&self.rates, |t| &t.rates)
    }

    /// The exact cost of one request with this usage and `images` input images, or
    /// [`MoneyError::OutOfRange`] when it is too large for a decimal (never saturated: an amount
    /// that cannot be represented is refused, not made free or capped).
    pub fn cost(&self, usage: &Usage, images: u64) -> Result<Cost, MoneyError> {
        let r = self.rates_for(usage.prompt_tokens);
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let written = usage
            .cache_write_tokens
            .min(usage.prompt_tokens.saturating_sub(cached));
        let uncached = usage.prompt_tokens - cached - written;
        let reasoning = usage.reasoning_tokens.min(usage.completion_tokens);
        let visible = usage.completion_tokens - reasoning;
        Ok(Cost {
            input: times(uncached, r.input)?,
            cache_read: times(cached, r.cache_read.unwrap_or(r.input))?,
            cache_write: times(written, r.cache_write.unwrap_or(r.input))?,
            output: times(visible, r.output)?,
            reasoning: times(reasoning, r.reasoning.unwrap_or(r.output))?,
            fees: plus(self.per_request, times(images, self.per_image)?)?,
        })
    }

    /// The most a request within `bound` can cost: every input token at the dearest input-side
    /// price and every output token at the dearest output-side price of any tier such a prompt
    /// can fall in, plus fees; [`MoneyError::OutOfRange`] when that is too large to represent.
    pub fn max_cost(&self, bound: &Bound) -> Result<Decimal, MoneyError> {
        let mut input = Decimal::ZERO;
        let mut output = Decimal::ZERO;
        let mut consider = |r: &Rates| {
            for p in [Some(r.input), r.cache_read, r.cache_write]
                .into_iter()
                .flatten()
            {
                input = input.max(p);
            }
            for p in [Some(r.output), r.reasoning].into_iter().flatten() {
                output = output.max(p);
            }
        };
        consider(&self.rates);
        for t in self
            .tiers
            .iter()
            .filter(|t| bound.prompt_tokens > t.above_tokens)
        {
            consider(&t.rates);
        }
        let outputs = bound.total_output_tokens()?;
        let tokens = plus(times(bound.prompt_tokens, input)?, times(outputs, output)?)?;
        plus(
            plus(tokens, self.per_request)?,
            times(bound.images, self.per_image)?,
        )
    }
}

/// What bounds a request's usage before it is sent, for its hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Most prompt tokens, every prompt of the request together.
    pub prompt_tokens: u64,
    /// Most output tokens of one completion (`max_tokens`, else the model's limit).
    pub output_tokens: u64,
    /// Completions generated for the request: `n` (or `best_of`) × prompts; at least 1.
    pub completions: u64,
    /// Input images.
    pub images: u64,
}

impl Bound {
    /// Output tokens of every completion together; [`MoneyError::OutOfRange`] on overflow.
    pub fn total_output_tokens(&self) -> Result<u64, MoneyError> {
        self.output_tokens
            .checked_mul(self.completions.max(1))
            .ok_or_else(|| {
                MoneyError::OutOfRange(format!(
                    "{} output tokens × {} completions",
                    self.output_tokens, self.completions
                ))
            })
    }
}

/// `tokens × rate`, exactly, or out of range.
fn times(tokens: u64, rate: Decimal) -> Result<Decimal, MoneyError> {
    Decimal::from(tokens)
        .checked_mul(rate)
        .ok_or_else(|| MoneyError::OutOfRange(format!("{tokens} × {rate}")))
}

fn plus(a: Decimal, b: Decimal) -> Result<Decimal, MoneyError> {
    a.checked_add(b)
        .ok_or_else(|| MoneyError::OutOfRange(format!("{a} + {b}")))
}

/// The most the tenant can be charged for a request within `bound` on `sheet` under `markup`,
/// in the minor unit. Every overflow is an error: the caller refuses the request rather than
/// serve it without a hold. Half-even rounding is monotone, so a charge computed from a smaller
/// exact price never rounds above this.
pub fn max_charge(sheet: &PriceSheet, bound: &Bound, markup: Markup) -> Result<Nanos, MoneyError> {
    Nanos::from_usd(markup.checked_apply(sheet.max_cost(bound)?)?)
}

/// What `usage` on `sheet` costs the operator and what it costs the tenant under `markup`, each
/// rounded once to the minor unit: `(cost, price)`. Out of range is an error, never a saturated
/// or zero amount.
pub fn charge(
    sheet: &PriceSheet,
    usage: &Usage,
    images: u64,
    markup: Markup,
) -> Result<(Nanos, Nanos), MoneyError> {
    let exact = sheet.cost(usage, images)?.total()?;
    Ok((
        Nanos::from_usd(exact)?,
        Nanos::from_usd(markup.checked_apply(exact)?)?,
    ))
}

/// A markup in percent (`0` allowed): tenant price = cost × (1 + percent / 100).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Markup(pub Decimal);

impl Markup {
    /// The tenant price of `cost`, exactly; [`MoneyError::OutOfRange`] when it is too large for a
    /// decimal.
    pub fn checked_apply(self, cost: Decimal) -> Result<Decimal, MoneyError> {
        cost.checked_mul(self.0)
            .and_then(|m| m.checked_div(Decimal::ONE_HUNDRED))
            .and_then(|m| cost.checked_add(m))
            .ok_or_else(|| MoneyError::OutOfRange(format!("{cost} marked up {}%", self.0)))
    }
}

#[cfg(test)]
mod tests;
