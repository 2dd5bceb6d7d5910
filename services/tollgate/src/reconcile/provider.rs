//! A provider's own cost export, compared with Tollgate's provider-cost records: which days and
//! models the provider billed differently from what the records say, beyond a tolerance.
//!
//! Two exports are read, told apart by their header:
//! - **OpenAI**'s cost data (the usage dashboard's "Cost" export, or the Costs API
//!   `/v1/organization/costs` flattened): `start_time` (Unix seconds) or `start_time_iso`,
//!   `amount_value` (dollars), `amount_currency`, `line_item` (`"gpt-4o-2024-08-06, input"`:
//!   the model is what comes before the comma).
//! - **Anthropic**'s cost report (`/v1/organizations/cost_report`, flattened): `starting_at`
//!   (RFC 3339), `amount` (**cents**, as a decimal string: `"123.45"` is $1.2345), `currency`,
//!   `model` (empty for costs that are not tokens).
//!
//! Amounts are parsed from their text exactly and rounded once to the nano-dollar, half to even.
//! Models are matched without a trailing date (`gpt-4o-2024-08-06` and `gpt-4o` are one model;
//! so are `claude-sonnet-4-20250514` and `claude-sonnet-4`), case-insensitively.

use std::collections::BTreeMap;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use tollgate_domain::money::Nanos;

const MS_PER_DAY: i64 = 86_400_000;

/// Which export a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    OpenAi,
    Anthropic,
}

/// One billed amount: a UTC day (days since 1970-01-01), a model, an amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Billed {
    pub day: i64,
    pub model: String,
    pub amount: Nanos,
}

#[derive(Debug, thiserror::Error)]
pub enum BillError {
    #[error("not a CSV file: {0}")]
    Csv(#[from] csv::Error),
    #[error("neither an OpenAI cost export (amount_value, line_item, start_time) nor an Anthropic cost report (amount, starting_at): columns {0:?}")]
    UnknownFormat(Vec<String>),
    #[error("row {row}: {message}")]
    Row { row: usize, message: String },
}

/// Reads an export.
pub fn parse(bytes: &[u8]) -> Result<(Format, Vec<Billed>), BillError> {
    let mut reader = csv::Reader::from_reader(bytes);
    let headers: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let format = if col("amount_value").is_some() && col("line_item").is_some() {
        Format::OpenAi
    } else if col("amount").is_some() && col("starting_at").is_some() {
        Format::Anthropic
    } else {
        return Err(BillError::UnknownFormat(headers));
    };
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        let get = |name: &str| col(name).and_then(|c| record.get(c)).unwrap_or("").trim();
        let row = i + 2;
        let fail = |message: String| BillError::Row { row, message };
        let billed = match format {
            Format::OpenAi => openai_row(&get).map_err(fail)?,
            Format::Anthropic => anthropic_row(&get).map_err(fail)?,
        };
        out.push(billed);
    }
    Ok((format, out))
}

type Get<'a> = dyn Fn(&str) -> &'a str + 'a;

fn openai_row<'a>(get: &Get<'a>) -> Result<Billed, String> {
    let currency = get("amount_currency");
    if !currency.is_empty() && !currency.eq_ignore_ascii_case("usd") {
        return Err(format!("currency {currency:?} is not usd"));
    }
    let day = match (get("start_time"), get("start_time_iso")) {
        (secs, _) if !secs.is_empty() => {
            let secs: i64 = secs.parse().map_err(|_| format!("start_time {secs:?}"))?;
            secs.div_euclid(86_400)
        }
        (_, iso) => day_of_instant(iso)?,
    };
    let model = get("line_item")
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let amount = nanos(get("amount_value"), 9)?;
    Ok(Billed { day, model, amount })
}

fn anthropic_row<'a>(get: &Get<'a>) -> Result<Billed, String> {
    let currency = get("currency");
    if !currency.is_empty() && !currency.eq_ignore_ascii_case("usd") {
        return Err(format!("currency {currency:?} is not USD"));
    }
    let day = day_of_instant(get("starting_at"))?;
    let amount = nanos(get("amount"), 7)?;
    Ok(Billed {
        day,
        model: get("model").to_owned(),
        amount,
    })
}

fn day_of_instant(text: &str) -> Result<i64, String> {
    tollgate_domain::invoice::period::parse_instant(text)
        .map(|ms| ms.div_euclid(MS_PER_DAY))
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 instant"))
}

/// A decimal amount times 10^`scale` (9: dollars; 7: cents), rounded once to the nano-dollar.
fn nanos(text: &str, scale: u32) -> Result<Nanos, String> {
    let d = tollgate_domain::money::parse_decimal(text).map_err(|e| e.to_string())?;
    d.checked_mul(Decimal::from(10i64.pow(scale)))
        .map(|n| n.round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven))
        .and_then(|n| n.to_i64())
        .map(Nanos)
        .ok_or_else(|| format!("amount {text:?} is out of range"))
}

/// A model's name for matching: lower case, without a trailing date (`-2024-08-06`, `-20250514`).
pub fn model_key(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(cut) = lower.len().checked_sub(11) {
        let tail = &lower[cut..];
        let b = tail.as_bytes();
        if b[0] == b'-'
            && b[5] == b'-'
            && b[8] == b'-'
            && digits(&tail[1..5])
            && digits(&tail[6..8])
            && digits(&tail[9..])
        {
            return lower[..cut].to_owned();
        }
    }
    if let Some((head, tail)) = lower.rsplit_once('-') {
        if tail.len() == 8 && digits(tail) {
            return head.to_owned();
        }
    }
    lower
}

/// A day and model where the provider's bill and the records differ by more than the tolerance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostDifference {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub model: String,
    pub billed: Nanos,
    pub recorded: Nanos,
    /// `billed − recorded`.
    pub difference: Nanos,
}

/// One provider's export against its records over a span of UTC days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub provider: String,
    pub format: Format,
    pub billed: Nanos,
    pub recorded: Nanos,
    pub tolerance: Nanos,
    pub differences: Vec<CostDifference>,
}

/// Compares per (day, model) within `[from_day, to_day)`; bill rows outside are ignored.
pub fn compare(
    provider: &str,
    format: Format,
    bill: &[Billed],
    recorded: &[Billed],
    (from_day, to_day): (i64, i64),
    tolerance: Nanos,
) -> Comparison {
    let mut sides: BTreeMap<(i64, String), (i128, i128)> = BTreeMap::new();
    let within = |b: &&Billed| from_day <= b.day && b.day < to_day;
    for b in bill.iter().filter(within) {
        sides.entry((b.day, model_key(&b.model))).or_default().0 += i128::from(b.amount.0);
    }
    for r in recorded.iter().filter(within) {
        sides.entry((r.day, model_key(&r.model))).or_default().1 += i128::from(r.amount.0);
    }
    let clamp =
        |v: i128| Nanos(i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX }));
    let (mut billed, mut ours) = (0i128, 0i128);
    let mut differences = Vec::new();
    for ((day, model), (b, r)) in sides {
        billed += b;
        ours += r;
        if (b - r).abs() > i128::from(tolerance.0) {
            let (y, m, d) = tollgate_domain::calendar::civil_from_days(day);
            differences.push(CostDifference {
                day: format!("{y:04}-{m:02}-{d:02}"),
                model,
                billed: clamp(b),
                recorded: clamp(r),
                difference: clamp(b - r),
            });
        }
    }
    Comparison {
        provider: provider.to_owned(),
        format,
        billed: clamp(billed),
        recorded: clamp(ours),
        tolerance,
        differences,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The Costs API's documented example (`start_time` 1730419200 = 2024-11-01, `amount.value`
    /// 0.06 usd), flattened as the export writes it, with a line item.
    const OPENAI: &str = "start_time,end_time,amount_value,amount_currency,line_item,project_id\n\
        1730419200,1730505600,0.06,usd,\"gpt-4o-2024-08-06, input\",proj_abc\n\
        1730419200,1730505600,0.0000000015,usd,\"gpt-4o-2024-08-06, output\",proj_abc\n\
        1730505600,1730592000,1.5,usd,\"gpt-4o-mini-2024-07-18, input\",proj_abc\n";

    /// The cost report's documented shape: `amount` in cents as a decimal string ("123.45" USD is
    /// $1.2345).
    const ANTHROPIC: &str = "starting_at,ending_at,amount,currency,model,cost_type,token_type,description,workspace_id\n\
        2025-08-01T00:00:00Z,2025-08-02T00:00:00Z,123.45,USD,claude-sonnet-4-20250514,tokens,output_tokens,Claude Sonnet 4 Usage - Output Tokens,wrkspc_1\n\
        2025-08-01T00:00:00Z,2025-08-02T00:00:00Z,0.5,USD,,web_search,,Web Search Usage,wrkspc_1\n";

    #[test]
    fn reads_openai_cost_exports_exactly() {
        let (format, rows) = parse(OPENAI.as_bytes()).unwrap();
        assert_eq!(format, Format::OpenAi);
        let day = 1_730_419_200 / 86_400;
        assert_eq!(
            rows,
            [
                Billed {
                    day,
                    model: "gpt-4o-2024-08-06".into(),
                    amount: Nanos(60_000_000)
                },
                // 1.5 nano-dollars: half to even.
                Billed {
                    day,
                    model: "gpt-4o-2024-08-06".into(),
                    amount: Nanos(2)
                },
                Billed {
                    day: day + 1,
                    model: "gpt-4o-mini-2024-07-18".into(),
                    amount: Nanos(1_500_000_000)
                },
            ]
        );
    }

    #[test]
    fn reads_anthropic_cost_reports_in_cents() {
        let (format, rows) = parse(ANTHROPIC.as_bytes()).unwrap();
        assert_eq!(format, Format::Anthropic);
        assert_eq!(rows[0].amount, Nanos(1_234_500_000));
        assert_eq!(rows[0].model, "claude-sonnet-4-20250514");
        assert_eq!(rows[1].amount, Nanos(5_000_000));
        assert_eq!(rows[1].model, "");
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(
            parse(b"a,b\n1,2\n"),
            Err(BillError::UnknownFormat(_))
        ));
        let eur = "starting_at,amount,currency,model\n2025-08-01T00:00:00Z,1,EUR,m\n";
        assert!(matches!(
            parse(eur.as_bytes()),
            Err(BillError::Row { row: 2, .. })
        ));
        let bad = "start_time,amount_value,line_item\nyesterday,1,m\n";
        assert!(matches!(parse(bad.as_bytes()), Err(BillError::Row { .. })));
        let bad = "start_time,amount_value,line_item\n0,lots,m\n";
        assert!(matches!(parse(bad.as_bytes()), Err(BillError::Row { .. })));
    }

    #[test]
    fn models_match_without_their_dates() {
        assert_eq!(model_key("gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(model_key("claude-sonnet-4-20250514"), "claude-sonnet-4");
        assert_eq!(model_key("GPT-4o"), "gpt-4o");
        assert_eq!(model_key("o1"), "o1");
        assert_eq!(model_key("gpt-4-0613"), "gpt-4-0613");
    }

    #[test]
    fn lists_the_days_and_models_beyond_the_tolerance() {
        let b = |day, model: &str, n| Billed {
            day,
            model: model.into(),
            amount: Nanos(n),
        };
        let bill = [
            b(10, "gpt-4o-2024-08-06", 1_000),
            b(11, "gpt-4o", 5_000),
            b(12, "x", 10),
            b(99, "gpt-4o", 7),
        ];
        let ours = [
            b(10, "gpt-4o", 990),
            b(11, "gpt-4o", 1_000),
            b(13, "y", 3_000),
        ];
        let c = compare("openai", Format::OpenAi, &bill, &ours, (10, 20), Nanos(20));
        let listed: Vec<(&str, &str, i64)> = c
            .differences
            .iter()
            .map(|d| (d.day.as_str(), d.model.as_str(), d.difference.0))
            .collect();
        assert_eq!(
            listed,
            [("1970-01-12", "gpt-4o", 4_000), ("1970-01-14", "y", -3_000)]
        );
        assert_eq!((c.billed, c.recorded), (Nanos(6_010), Nanos(4_990)));
    }
}
