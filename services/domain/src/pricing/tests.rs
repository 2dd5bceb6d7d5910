#![allow(clippy::unwrap_used)]
//! Costs against hand-computed expectations, for OpenAI-, Anthropic- and Gemini-style usage
//! reports (the prices are the public ones of the models named).

use proptest::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::*;
use crate::money::{parse_rate, Nanos};
use crate::usage::{AnthropicUsage, GeminiUsage};

fn d(s: &str) -> Decimal {
    parse_rate(s).unwrap()
}

fn rates(input: &str, output: &str) -> Rates {
    Rates {
        input: d(input),
        output: d(output),
        ..Rates::default()
    }
}

/// gpt-4o: $2.50 / $10.00 per million, cached reads $1.25.
fn gpt_4o() -> PriceSheet {
    PriceSheet {
        rates: Rates {
            cache_read: Some(d("1.25e-06")),
            ..rates("2.5e-06", "1e-05")
        },
        ..PriceSheet::default()
    }
}

/// Claude Sonnet: $3 / $15, cache reads $0.30, cache writes $3.75.
fn sonnet() -> PriceSheet {
    PriceSheet {
        rates: Rates {
            cache_read: Some(d("3e-07")),
            cache_write: Some(d("3.75e-06")),
            ..rates("3e-06", "1.5e-05")
        },
        ..PriceSheet::default()
    }
}

/// Gemini 2.5 Pro: $1.25 / $10, cache reads $0.3125; above 200k prompt tokens $2.50 / $15,
/// cache reads $0.625.
fn gemini_pro() -> PriceSheet {
    PriceSheet {
        rates: Rates {
            cache_read: Some(d("3.125e-07")),
            ..rates("1.25e-06", "1e-05")
        },
        tiers: vec![Tier {
            above_tokens: 200_000,
            rates: Rates {
                cache_read: Some(d("6.25e-07")),
                ..rates("2.5e-06", "1.5e-05")
            },
        }],
        ..PriceSheet::default()
    }
}

fn openai_usage(json: &str) -> Usage {
    Usage::from_openai_body(json.as_bytes()).unwrap().unwrap()
}

#[test]
fn openai_style_input_cached_output_and_reasoning() {
    // 600 uncached × 2.5e-6 = 0.0015; 400 cached × 1.25e-6 = 0.0005;
    // 300 visible × 1e-5 = 0.003; 200 reasoning × 1e-5 = 0.002. Total 0.007.
    let u = openai_usage(
        r#"{"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,
        "prompt_tokens_details":{"cached_tokens":400},"completion_tokens_details":{"reasoning_tokens":200}}}"#,
    );
    let c = gpt_4o().cost(&u, 0).unwrap();
    assert_eq!(c.input, d("0.0015"));
    assert_eq!(c.cache_read, d("0.0005"));
    assert_eq!(c.output, d("0.003"));
    assert_eq!(c.reasoning, d("0.002"));
    assert_eq!(c.total().unwrap(), d("0.007"));
    assert_eq!(c.nanos().unwrap(), Nanos(7_000_000));
}

#[test]
fn anthropic_style_cache_reads_and_writes() {
    // message_start carries input and cache counts, message_delta the final output count.
    let start: AnthropicUsage = serde_json::from_str(
        r#"{"input_tokens":100,"cache_read_input_tokens":2000,"cache_creation_input_tokens":500,"output_tokens":1}"#,
    )
    .unwrap();
    let delta: AnthropicUsage = serde_json::from_str(r#"{"output_tokens":300}"#).unwrap();
    let u = Usage::from(start.merge(delta));
    assert_eq!(
        (
            u.prompt_tokens,
            u.cached_tokens,
            u.cache_write_tokens,
            u.completion_tokens
        ),
        (2600, 2000, 500, 300)
    );
    // 100 × 3e-6 = 0.0003; 2000 × 3e-7 = 0.0006; 500 × 3.75e-6 = 0.001875; 300 × 1.5e-5 = 0.0045.
    let c = sonnet().cost(&u, 0).unwrap();
    assert_eq!(c.input, d("0.0003"));
    assert_eq!(c.cache_read, d("0.0006"));
    assert_eq!(c.cache_write, d("0.001875"));
    assert_eq!(c.output, d("0.0045"));
    assert_eq!(c.nanos().unwrap(), Nanos(7_275_000));
}

#[test]
fn gemini_style_long_context_tier_prices_every_token() {
    let g: GeminiUsage = serde_json::from_str(
        r#"{"promptTokenCount":250000,"cachedContentTokenCount":50000,"candidatesTokenCount":1000,
            "thoughtsTokenCount":3000,"totalTokenCount":254000}"#,
    )
    .unwrap();
    let u = Usage::from(g);
    assert_eq!((u.completion_tokens, u.reasoning_tokens), (4000, 3000));
    // Above 200k: 200000 × 2.5e-6 = 0.5; 50000 × 6.25e-7 = 0.03125; 1000 × 1.5e-5 = 0.015;
    // 3000 thinking × 1.5e-5 = 0.045. Total 0.59125.
    let c = gemini_pro().cost(&u, 0).unwrap();
    assert_eq!(c.total().unwrap(), d("0.59125"));
    assert_eq!(c.nanos().unwrap(), Nanos(591_250_000));
}

#[test]
fn gemini_style_below_and_at_the_threshold_uses_base_prices() {
    let small = Usage::from(
        serde_json::from_str::<GeminiUsage>(
            r#"{"promptTokenCount":1000,"candidatesTokenCount":10}"#,
        )
        .unwrap(),
    );
    // 1000 × 1.25e-6 + 10 × 1e-5 = 0.00135.
    assert_eq!(
        gemini_pro().cost(&small, 0).unwrap().total().unwrap(),
        d("0.00135")
    );
    let at = Usage {
        prompt_tokens: 200_000,
        ..Usage::default()
    };
    // Exactly 200k is not above 200k: 200000 × 1.25e-6 = 0.25.
    assert_eq!(
        gemini_pro().cost(&at, 0).unwrap().total().unwrap(),
        d("0.25")
    );
}

#[test]
fn reasoning_has_its_own_price_when_the_sheet_sets_one() {
    let mut sheet = gpt_4o();
    sheet.rates.reasoning = Some(d("2e-05"));
    let u = Usage {
        prompt_tokens: 0,
        completion_tokens: 100,
        reasoning_tokens: 40,
        ..Usage::default()
    };
    // 60 × 1e-5 + 40 × 2e-5 = 0.0006 + 0.0008.
    assert_eq!(sheet.cost(&u, 0).unwrap().total().unwrap(), d("0.0014"));
}

#[test]
fn fees_per_request_and_per_image() {
    let sheet = PriceSheet {
        per_request: d("0.005"),
        per_image: d("0.001"),
        ..PriceSheet::default()
    };
    assert_eq!(
        sheet.cost(&Usage::default(), 3).unwrap().total().unwrap(),
        d("0.008")
    );
}

#[test]
fn sub_nano_costs_round_once_half_to_even() {
    let sheet = PriceSheet {
        rates: rates("3.75e-08", "0"),
        ..PriceSheet::default()
    };
    let u = |n| Usage {
        prompt_tokens: n,
        ..Usage::default()
    };
    // 3 × 37.5 nano = 112.5 → 112 (even); 5 × 37.5 = 187.5 → 188 (even).
    assert_eq!(sheet.cost(&u(3), 0).unwrap().nanos().unwrap(), Nanos(112));
    assert_eq!(sheet.cost(&u(5), 0).unwrap().nanos().unwrap(), Nanos(188));
}

#[test]
fn markups_including_zero() {
    assert_eq!(
        Markup(d("20")).checked_apply(d("0.007")).unwrap(),
        d("0.0084")
    );
    assert_eq!(
        Markup(Decimal::ZERO).checked_apply(d("0.007")).unwrap(),
        d("0.007")
    );
    assert_eq!(Markup(d("12.5")).checked_apply(d("1")).unwrap(), d("1.125"));
}

fn sheet_strategy() -> impl Strategy<Value = PriceSheet> {
    let rate = || (0u32..100_000).prop_map(|n| Decimal::new(i64::from(n), 10));
    let opt = move || prop::option::of(rate());
    let rates = move || {
        (rate(), rate(), opt(), opt(), opt()).prop_map(|(i, o, r, w, re)| Rates {
            input: i,
            output: o,
            cache_read: r,
            cache_write: w,
            reasoning: re,
        })
    };
    (
        rates(),
        prop::collection::vec((1u64..400_000, rates()), 0..3),
    )
        .prop_map(|(base, tiers)| {
            let mut tiers: Vec<Tier> = tiers
                .into_iter()
                .map(|(above_tokens, rates)| Tier {
                    above_tokens,
                    rates,
                })
                .collect();
            tiers.sort_by_key(|t| t.above_tokens);
            PriceSheet {
                rates: base,
                tiers,
                ..PriceSheet::default()
            }
        })
}

proptest! {
    /// The hold a request takes (its maximum cost) covers whatever usage it can report within its
    /// prompt and output bounds, however the tokens split between kinds.
    #[test]
    fn max_cost_bounds_every_cost(
        sheet in sheet_strategy(),
        prompt in 0u64..500_000,
        output in 0u64..100_000,
        split in (0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0),
    ) {
        let p = (prompt as f64 * split.0) as u64;
        let cached = (p as f64 * split.1) as u64;
        let written = ((p - cached) as f64 * split.2) as u64;
        let o = (output as f64 * split.3) as u64;
        let u = Usage {
            prompt_tokens: p,
            completion_tokens: o,
            total_tokens: p + o,
            cached_tokens: cached,
            cache_write_tokens: written,
            reasoning_tokens: o / 3,
        };
        let bound = Bound { prompt_tokens: prompt, output_tokens: output, completions: 1, images: 0 };
        prop_assert!(sheet.cost(&u, 0).unwrap().total().unwrap() <= sheet.max_cost(&bound).unwrap());
    }

    /// Over random requests (choices, prompts, `max_tokens` up to `u64::MAX`, images, fees,
    /// markups, tiers): the hold is exactly the most the request can cost, computed here again in
    /// integers, or an error when that cannot be represented (the gateway then refuses the
    /// request: there is no "no hold" for a priced model); and no usage within the request's
    /// bounds is charged more than its hold.
    #[test]
    fn the_hold_bounds_every_charge_or_refuses(
        sheet in sheet_strategy(),
        fees in (0u32..100_000, 0u32..100_000),
        prompt in prop_oneof![0u64..500_000, any::<u64>()],
        max_tokens in prop_oneof![0u64..100_000, any::<u64>(), Just(u64::MAX), Just(5_000_000_000_000_000)],
        choices in (1u64..16, 1u64..128),
        images in prop_oneof![0u64..10, any::<u64>()],
        percent in 0u32..1000,
        split in (0.0f64..=1.0, 0.0f64..=1.0, 0.0f64..=1.0, 0.0f64..=1.0, 0.0f64..=1.0),
    ) {
        let sheet = PriceSheet {
            per_request: Decimal::new(i64::from(fees.0), 10),
            per_image: Decimal::new(i64::from(fees.1), 10),
            ..sheet
        };
        let markup = Markup(Decimal::from(percent));
        let completions = choices.0 * choices.1;
        let bound = Bound { prompt_tokens: prompt, output_tokens: max_tokens, completions, images };
        let hold = max_charge(&sheet, &bound, markup);

        // The same bound in integers: rates and fees are multiples of 1e-10 dollars and the
        // markup a whole percent, so the exact tenant price is a whole number of 1e-12 dollars.
        let units = |d: Decimal| (d * Decimal::from(10_000_000_000u64)).to_i128().unwrap();
        let mut dearest_in = 0i128;
        let mut dearest_out = 0i128;
        let tiers = sheet.tiers.iter().filter(|t| prompt > t.above_tokens).map(|t| &t.rates);
        for r in std::iter::once(&sheet.rates).chain(tiers) {
            for p in [Some(r.input), r.cache_read, r.cache_write].into_iter().flatten() {
                dearest_in = dearest_in.max(units(p));
            }
            for p in [Some(r.output), r.reasoning].into_iter().flatten() {
                dearest_out = dearest_out.max(units(p));
            }
        }
        let outputs = i128::from(max_tokens) * i128::from(completions);
        let exact = (i128::from(prompt) * dearest_in
            + outputs * dearest_out
            + units(sheet.per_request)
            + i128::from(images) * units(sheet.per_image))
            * (100 + i128::from(percent));
        // From 1e-12 dollars to nano-dollars (1e-9), half to even.
        let (q, r) = (exact / 1000, exact % 1000);
        let nanos = if r > 500 || (r == 500 && q % 2 == 1) { q + 1 } else { q };
        let representable = u64::try_from(outputs).is_ok() && nanos <= i128::from(i64::MAX);
        match &hold {
            Ok(h) => prop_assert_eq!(i128::from(h.0), nanos),
            Err(e) => prop_assert!(!representable, "refused a hold of {} nano-dollars: {}", nanos, e),
        }

        // Any usage within the bounds is charged at most the hold.
        if let Ok(h) = hold {
            let f = |x: u64, s: f64| (x as f64 * s) as u64;
            let p = f(prompt, split.0).min(prompt);
            let cached = f(p, split.1).min(p);
            let written = f(p - cached, split.2).min(p - cached);
            let o = f(max_tokens.saturating_mul(completions), split.3).min(max_tokens.saturating_mul(completions));
            let usage = Usage {
                prompt_tokens: p,
                completion_tokens: o,
                total_tokens: p.saturating_add(o),
                cached_tokens: cached,
                cache_write_tokens: written,
                reasoning_tokens: f(o, split.4).min(o),
            };
            let (_, price) = charge(&sheet, &usage, f(images, split.4).min(images), markup)
                .expect("a usage within a representable hold is representable");
            prop_assert!(price <= h, "charged {price:?} over a hold of {h:?}");
        }
    }
}
