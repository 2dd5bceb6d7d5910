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
    pub fn total(&self) -> Decimal {
        self.input + self.cache_read + self.cache_write + self.output + self.reasoning + self.fees
    }

    /// The total in the minor unit (rounded once).
    pub fn nanos(&self) -> Result<Nanos, MoneyError> {
        Nanos::from_usd(self.total())
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

    /// The exact cost of one request with this usage and `images` input images.
    pub fn cost(&self, usage: &Usage, images: u64) -> Cost {
        let r = self.rates_for(usage.prompt_tokens);
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let written = usage
            .cache_write_tokens
            .min(usage.prompt_tokens.saturating_sub(cached));
        let uncached = usage.prompt_tokens - cached - written;
        let reasoning = usage.reasoning_tokens.min(usage.completion_tokens);
        let visible = usage.completion_tokens - reasoning;
        let n = Decimal::from;
        Cost {
            input: n(uncached) * r.input,
            cache_read: n(cached) * r.cache_read.unwrap_or(r.input),
            cache_write: n(written) * r.cache_write.unwrap_or(r.input),
            output: n(visible) * r.output,
            reasoning: n(reasoning) * r.reasoning.unwrap_or(r.output),
            fees: self.per_request + n(images) * self.per_image,
        }
    }

    /// The most a request can cost if its prompt is at most `prompt_tokens` and its output at
    /// most `output_tokens`: every input token at the dearest input-side price and every output
    /// token at the dearest output-side price of any tier such a prompt can fall in, plus fees.
    pub fn max_cost(&self, prompt_tokens: u64, output_tokens: u64, images: u64) -> Decimal {
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
        for t in self.tiers.iter().filter(|t| prompt_tokens > t.above_tokens) {
            consider(&t.rates);
        }
        Decimal::from(prompt_tokens) * input
            + Decimal::from(output_tokens) * output
            + self.per_request
            + Decimal::from(images) * self.per_image
    }
}

/// A markup in percent (`0` allowed): tenant price = cost × (1 + percent / 100).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Markup(pub Decimal);

impl Markup {
    pub fn apply(self, cost: Decimal) -> Decimal {
        cost + cost * self.0 / Decimal::ONE_HUNDRED
    }
}

#[cfg(test)]
mod tests;
