//! Building price sheets from the public price list (`model_prices_and_context_window.json`,
//! LiteLLM's format, MIT) and from the operator's overrides.
//!
//! Every number is read from its JSON text and parsed as a decimal ([`parse_rate`]); no float is
//! involved, so `3.75e-08` is exactly 0.0000000375. What is read, per model:
//!
//! | JSON field | price sheet |
//! |---|---|
//! | `input_cost_per_token` | `input` |
//! | `output_cost_per_token` | `output` |
//! | `cache_read_input_token_cost` | `cache_read` |
//! | `cache_creation_input_token_cost` | `cache_write` |
//! | `output_cost_per_reasoning_token` | `reasoning` |
//! | `input_cost_per_image` | `per_image` |
//! | `input_cost_per_request` | `per_request` |
//! | `<field>_above_<N>k_tokens` | a tier above N×1000 prompt tokens (fields it lacks are the base's) |
//! | `max_input_tokens`, `max_output_tokens` | context window and output cap |
//!
//! Batch, priority and flex prices, audio, video, per-character and per-second prices are not read
//! (Tollgate does not serve those modes yet). Entries without a `litellm_provider` or without any
//! per-token price are skipped. A model is keyed by `(litellm_provider, name)` where the name has
//! its `<provider>/` prefix removed; when both `gpt-4o` and `openai/gpt-4o` exist, the unprefixed
//! entry wins.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::{PriceSheet, Rates, Tier};
use crate::money::{parse_rate, MoneyError};

/// One priced model of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogEntry {
    pub provider: String,
    pub model: String,
    #[serde(flatten)]
    pub sheet: PriceSheet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the price list is not a JSON object of models: {0}")]
    Shape(String),
    #[error("line {line}: {message}")]
    Snapshot { line: usize, message: String },
    #[error("{model}.{field}: {source}")]
    Number {
        model: String,
        field: String,
        #[source]
        source: MoneyError,
    },
}

/// What an import read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub entries: Vec<CatalogEntry>,
    /// Entries without a provider or a per-token price.
    pub skipped: usize,
    /// Prefixed duplicates of an unprefixed entry.
    pub duplicates: usize,
}

const BASE: [&str; 5] = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
];

fn set(rates: &mut Rates, field: usize, value: rust_decimal::Decimal) {
    match field {
        0 => rates.input = value,
        1 => rates.output = value,
        2 => rates.cache_read = Some(value),
        3 => rates.cache_write = Some(value),
        _ => rates.reasoning = Some(value),
    }
}

/// `Some((field index, threshold))` for `<base field>_above_<N>k_tokens`.
fn tier_field(name: &str) -> Option<(usize, u64)> {
    let (base, rest) = name.split_once("_above_")?;
    let n = rest.strip_suffix("k_tokens")?;
    let k: u64 = n.parse().ok()?;
    let i = BASE[..4].iter().position(|b| *b == base)?;
    Some((i, k.checked_mul(1000)?))
}

/// The price sheet of the entry `name` with `fields`; `None` when it has no per-token price.
fn price_sheet(
    name: &str,
    fields: &BTreeMap<String, Box<RawValue>>,
) -> Result<Option<PriceSheet>, CatalogError> {
    let text = |f: &str| fields.get(f).map(|v| v.get());
    let number = |field: &str, t: &str| {
        parse_rate(t).map_err(|source| CatalogError::Number {
            model: name.to_owned(),
            field: field.to_owned(),
            source,
        })
    };
    let mut sheet = PriceSheet::default();
    let mut priced = false;
    for (i, field) in BASE.iter().enumerate() {
        if let Some(t) = text(field) {
            set(&mut sheet.rates, i, number(field, t)?);
            priced = true;
        }
    }
    if !priced {
        return Ok(None);
    }
    if let Some(t) = text("input_cost_per_image") {
        sheet.per_image = number("input_cost_per_image", t)?;
    }
    if let Some(t) = text("input_cost_per_request") {
        sheet.per_request = number("input_cost_per_request", t)?;
    }
    let mut tiers: BTreeMap<u64, Rates> = BTreeMap::new();
    for (field, value) in fields {
        if let Some((i, above)) = tier_field(field) {
            let rates = tiers.entry(above).or_insert_with(|| sheet.rates.clone());
            set(rates, i, number(field, value.get())?);
        }
    }
    sheet.tiers = tiers
        .into_iter()
        .map(|(above_tokens, rates)| Tier {
            above_tokens,
            rates,
        })
        .collect();
    Ok(Some(sheet))
}

/// Parses the public price list.
pub fn import_litellm(json: &str) -> Result<ImportReport, CatalogError> {
    let models: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(json).map_err(|e| CatalogError::Shape(e.to_string()))?;
    let mut report = ImportReport::default();
    let mut by_key: BTreeMap<(String, String), (bool, CatalogEntry)> = BTreeMap::new();
    for (name, raw) in &models {
        let Ok(fields) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get()) else {
            report.skipped += 1;
            continue;
        };
        let text = |f: &str| fields.get(f).map(|v| v.get());
        let Some(provider) =
            text("litellm_provider").and_then(|t| serde_json::from_str::<String>(t).ok())
        else {
            report.skipped += 1;
            continue;
        };
        let Some(sheet) = price_sheet(name, &fields)? else {
            report.skipped += 1;
            continue;
        };
        let count = |f: &str| text(f).and_then(|t| t.parse::<u64>().ok());
        let prefix = format!("{provider}/");
        let (model, prefixed) = match name.strip_prefix(&prefix) {
            Some(rest) => (rest.to_owned(), true),
            None => (name.clone(), false),
        };
        let entry = CatalogEntry {
            provider: provider.clone(),
            model: model.clone(),
            sheet,
            max_input_tokens: count("max_input_tokens"),
            max_output_tokens: count("max_output_tokens"),
        };
        match by_key.get(&(provider.clone(), model.clone())) {
            Some((was_prefixed, _)) if !*was_prefixed || prefixed => report.duplicates += 1,
            _ => {
                by_key.insert((provider, model), (prefixed, entry));
            }
        }
    }
    report.entries = by_key.into_values().map(|(_, e)| e).collect();
    Ok(report)
}

/// The first line of Tollgate's own price snapshot format; comment lines after it say where the
/// prices came from.
pub const SNAPSHOT_HEADER: &str = "# tollgate price snapshot v1";

/// Tollgate's own compact price list (`data/prices.jsonl`, embedded in the binary): the
/// [`SNAPSHOT_HEADER`] and `about` as `#` comment lines, then one [`CatalogEntry`] per line as
/// JSON, in (provider, model) order, its rates as decimal strings (exact, as everywhere).
pub fn write_snapshot(entries: &[CatalogEntry], about: &[String]) -> Result<String, CatalogError> {
    let mut sorted: Vec<&CatalogEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
    let mut out = String::with_capacity(entries.len() * 160);
    out.push_str(SNAPSHOT_HEADER);
    out.push('\n');
    for line in about {
        for l in line.lines() {
            out.push_str("# ");
            out.push_str(l);
            out.push('\n');
        }
    }
    for e in sorted {
        let json = serde_json::to_string(e).map_err(|e| CatalogError::Shape(e.to_string()))?;
        out.push_str(&json);
        out.push('\n');
    }
    Ok(out)
}

/// Reads a snapshot ([`write_snapshot`]): its entries, and its comment lines (without `# `).
pub fn read_snapshot(text: &str) -> Result<(Vec<CatalogEntry>, Vec<String>), CatalogError> {
    let bad = |line: usize, message: String| CatalogError::Snapshot { line, message };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first.trim_end() == SNAPSHOT_HEADER => {}
        _ => {
            return Err(bad(
                1,
                format!("not a price snapshot (no {SNAPSHOT_HEADER:?})"),
            ))
        }
    }
    let mut entries = Vec::new();
    let mut about = Vec::new();
    for (i, line) in lines {
        if let Some(comment) = line.strip_prefix('#') {
            about.push(comment.trim().to_owned());
        } else if !line.trim().is_empty() {
            let entry: CatalogEntry =
                serde_json::from_str(line).map_err(|e| bad(i + 1, e.to_string()))?;
            entries.push(entry);
        }
    }
    Ok((entries, about))
}

/// The operator's overrides file (TOML): `[[price]]` tables with `provider`, `model`, and the
/// price sheet's fields as decimal strings (`input = "0.000001"`), optionally `[[price.tiers]]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Overrides {
    #[serde(default)]
    pub price: Vec<CatalogEntry>,
}

/// Applies overrides to an import: an override replaces the entry with the same key, or adds one.
pub fn apply_overrides(entries: &mut Vec<CatalogEntry>, overrides: Vec<CatalogEntry>) {
    for o in overrides {
        match entries
            .iter_mut()
            .find(|e| e.provider == o.provider && e.model == o.model)
        {
            Some(e) => *e = o,
            None => entries.push(o),
        }
    }
    entries.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rust_decimal::Decimal;

    fn d(s: &str) -> Decimal {
        parse_rate(s).unwrap()
    }

    const SAMPLE: &str = r#"{
      "sample_spec": {"input_cost_per_token": 0, "mode": "chat"},
      "gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 2.5e-06,
                 "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06,
                 "input_cost_per_token_batches": 1.25e-06, "max_input_tokens": 128000,
                 "max_output_tokens": 16384, "supports_vision": true},
      "openai/gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 9e-06},
      "gemini/gemini-2.5-pro": {"litellm_provider": "gemini", "input_cost_per_token": 1.25e-06,
                 "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 3.125e-07,
                 "input_cost_per_token_above_200k_tokens": 2.5e-06,
                 "output_cost_per_token_above_200k_tokens": 1.5e-05},
      "tiny": {"litellm_provider": "x", "input_cost_per_token": 3.75e-08, "output_cost_per_token": 0.0000001},
      "no-price": {"litellm_provider": "x", "mode": "chat"},
      "no-provider": {"input_cost_per_token": 1e-06}
    }"#;

    #[test]
    fn reads_prices_exactly_with_tiers_and_skips_the_rest() {
        let r = import_litellm(SAMPLE).unwrap();
        assert_eq!(r.entries.len(), 3);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.skipped, 3);
        let gpt = r.entries.iter().find(|e| e.model == "gpt-4o").unwrap();
        assert_eq!(gpt.provider, "openai");
        assert_eq!(gpt.sheet.rates.input, d("0.0000025"));
        assert_eq!(gpt.sheet.rates.cache_read, Some(d("0.00000125")));
        assert_eq!(gpt.max_input_tokens, Some(128_000));
        let gem = r.entries.iter().find(|e| e.provider == "gemini").unwrap();
        assert_eq!(gem.model, "gemini-2.5-pro");
        assert_eq!(gem.sheet.tiers.len(), 1);
        assert_eq!(gem.sheet.tiers[0].above_tokens, 200_000);
        assert_eq!(gem.sheet.tiers[0].rates.input, d("0.0000025"));
        // A field the tier lacks is the base's.
        assert_eq!(gem.sheet.tiers[0].rates.cache_read, Some(d("3.125e-07")));
        let tiny = r.entries.iter().find(|e| e.model == "tiny").unwrap();
        assert_eq!(tiny.sheet.rates.input, d("0.0000000375"));
    }

    #[test]
    fn overrides_replace_or_add() {
        let mut entries = import_litellm(SAMPLE).unwrap().entries;
        let o: Overrides = toml::from_str(
            r#"
            [[price]]
            provider = "openai"
            model = "gpt-4o"
            input = "0.000002"
            output = "0.000008"

            [[price]]
            provider = "mock"
            model = "mock-gpt"
            input = "0.000001"
            output = "0.000002"
            per_request = "0.0001"
            "#,
        )
        .unwrap();
        apply_overrides(&mut entries, o.price);
        assert_eq!(entries.len(), 4);
        let gpt = entries.iter().find(|e| e.model == "gpt-4o").unwrap();
        assert_eq!(gpt.sheet.rates.input, d("0.000002"));
        assert_eq!(gpt.sheet.rates.cache_read, None);
        let mock = entries.iter().find(|e| e.provider == "mock").unwrap();
        assert_eq!(mock.sheet.per_request, d("0.0001"));
    }

    #[test]
    fn a_bad_number_names_its_model_and_field() {
        let err = import_litellm(r#"{"m": {"litellm_provider": "x", "input_cost_per_token": -1}}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string().split(':').next(),
            Some("m.input_cost_per_token")
        );
    }

    #[test]
    fn a_snapshot_keeps_every_price_exactly() {
        let json = r#"{
          "gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 2.5e-06,
                     "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06,
                     "max_input_tokens": 128000},
          "gemini/gemini-2.5-pro": {"litellm_provider": "gemini", "input_cost_per_token": 1.25e-06,
                     "output_cost_per_token": 1e-05, "input_cost_per_token_above_200k_tokens": 2.5e-06},
          "a": {"litellm_provider": "x", "input_cost_per_token": 3.75e-08, "input_cost_per_request": 0.01}
        }"#;
        let entries = import_litellm(json).unwrap().entries;
        let text = write_snapshot(&entries, &["from a test".into()]).unwrap();
        assert!(text.starts_with("# tollgate price snapshot v1\n# from a test\n"));
        assert!(text.contains(r#""input":"0.0000000375""#), "{text}");
        let (read, about) = read_snapshot(&text).unwrap();
        assert_eq!(read, entries);
        assert_eq!(about, ["from a test"]);
        assert_eq!(read.len(), 3);
        assert!(matches!(
            read_snapshot("{}"),
            Err(CatalogError::Snapshot { line: 1, .. })
        ));
        let broken = format!("{SNAPSHOT_HEADER}\n{{\"provider\": 1}}\n");
        assert!(matches!(
            read_snapshot(&broken),
            Err(CatalogError::Snapshot { line: 2, .. })
        ));
    }
}
