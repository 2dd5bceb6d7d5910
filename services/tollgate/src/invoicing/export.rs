//! An invoice as a file: JSON (as the API shows it), CSV (one row per line) and a printable HTML
//! page (the template `web/templates/invoice.html`, compiled into the binary and auto-escaped).

use minijinja::{context, Environment};
use serde::Serialize;
use tollgate_domain::invoice::lines::LineKind;
use tollgate_domain::invoice::period::PeriodRule;
use tollgate_store::{Invoice, InvoiceLine, Tenant};

use crate::settings::IssuerSettings;

const TEMPLATE: &str = include_str!("../../../../web/templates/invoice.html");

/// What an export is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
    Html,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Html => "text/html; charset=utf-8",
        }
    }
}

/// Why an export failed (a bug, not the input: every field is ours).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Other(String),
}

/// The invoice in `format`.
pub fn render(
    invoice: &Invoice,
    tenant: &Tenant,
    issuer: &IssuerSettings,
    format: Format,
) -> Result<Vec<u8>, ExportError> {
    match format {
        Format::Json => Ok(serde_json::to_vec_pretty(invoice)?),
        Format::Csv => csv_rows(invoice),
        Format::Html => html(invoice, tenant, issuer).map(String::into_bytes),
    }
}

/// Cents as dollars: `-1234` → `-12.34`.
pub fn cents(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    let a = c.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// What a line bills, in words.
pub fn describe(line: &InvoiceLine) -> String {
    let q = &line.quantities;
    let mut text = match line.kind {
        LineKind::Usage => format!(
            "{}: {} requests; {} prompt tokens ({} cached, {} cache write), {} completion tokens ({} reasoning)",
            line.model.as_deref().unwrap_or("?"),
            q.requests,
            q.prompt_tokens,
            q.cached_tokens,
            q.cache_write_tokens,
            q.completion_tokens,
            q.reasoning_tokens
        ),
        LineKind::Fee => format!(
            "{}: per-request fees, {} requests",
            line.model.as_deref().unwrap_or("?"),
            q.requests
        ),
        LineKind::Refund => "Refunds".to_owned(),
        LineKind::Credit => "Credit applied".to_owned(),
    };
    let units = match line.kind {
        LineKind::Usage => unit_summary(line),
        LineKind::Fee => line
            .unit_prices
            .as_ref()
            .and_then(|u| u["per_request"].as_str())
            .map(|f| format!("${f} each")),
        _ => None,
    };
    if let Some(units) = units {
        text.push_str(&format!(" at {units}"));
    }
    if line.adjustment {
        text.push_str(&format!(" (adjustment for {})", line.period));
    }
    text
}

/// A usage line's unit prices in words: `$1.2/M input, $120/M output tokens, $0.001 per request`.
fn unit_summary(line: &InvoiceLine) -> Option<String> {
    let u = line.unit_prices.as_ref()?;
    let field = |k: &str| u[k].as_str().map(str::to_owned);
    let mut parts = vec![
        format!("${}/M input", field("input_per_mtok")?),
        format!("${}/M output tokens", field("output_per_mtok")?),
    ];
    if let Some(fee) = field("per_request").filter(|f| f != "0") {
        parts.push(format!("${fee} per request"));
    }
    Some(parts.join(", "))
}

/// A unit price of a usage line, for the CSV (empty when it has none).
fn unit(line: &InvoiceLine, key: &str) -> String {
    line.unit_prices
        .as_ref()
        .and_then(|u| u[key].as_str())
        .unwrap_or("")
        .to_owned()
}

#[derive(Serialize)]
struct Row<'a> {
    invoice_number: &'a str,
    invoice_id: &'a str,
    tenant_id: &'a str,
    invoice_period: &'a str,
    line_no: i64,
    kind: &'static str,
    line_period: &'a str,
    adjustment: bool,
    model: &'a str,
    requests: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    cache_write_tokens: i64,
    reasoning_tokens: i64,
    amount_exact_usd: String,
    amount_usd: String,
    residue_usd: String,
    input_usd_per_mtok: String,
    output_usd_per_mtok: String,
    per_request_usd: String,
}

fn csv_rows(invoice: &Invoice) -> Result<Vec<u8>, ExportError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let number = invoice.number.as_deref().unwrap_or("");
    for line in &invoice.lines {
        let q = &line.quantities;
        out.serialize(Row {
            invoice_number: number,
            invoice_id: &invoice.id,
            tenant_id: &invoice.tenant_id,
            invoice_period: &invoice.period,
            line_no: line.line_no,
            kind: line.kind.as_str(),
            line_period: &line.period,
            adjustment: line.adjustment,
            model: line.model.as_deref().unwrap_or(""),
            requests: q.requests,
            prompt_tokens: q.prompt_tokens,
            completion_tokens: q.completion_tokens,
            cached_tokens: q.cached_tokens,
            cache_write_tokens: q.cache_write_tokens,
            reasoning_tokens: q.reasoning_tokens,
            amount_exact_usd: q.amount.to_string(),
            amount_usd: cents(line.amount_cents),
            residue_usd: line.residue.to_string(),
            input_usd_per_mtok: unit(line, "input_per_mtok"),
            output_usd_per_mtok: unit(line, "output_per_mtok"),
            per_request_usd: unit(line, "per_request"),
        })?;
    }
    if invoice.lines.is_empty() {
        // Headers even for an invoice without lines.
        out.write_record([
            "invoice_number",
            "invoice_id",
            "tenant_id",
            "invoice_period",
            "line_no",
            "kind",
            "line_period",
            "adjustment",
            "model",
            "requests",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "amount_exact_usd",
            "amount_usd",
            "residue_usd",
        ])?;
    }
    out.into_inner()
        .map_err(|e| ExportError::Other(e.to_string()))
}

fn lines_of(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Who the invoice is addressed to: the tenant's billing details, its name if it has no legal one.
fn bill_to(tenant: &Tenant) -> minijinja::Value {
    let details = &tenant.billing_details;
    context! {
        name => details.legal_name.as_deref().unwrap_or(&tenant.name),
        address => details.address.as_deref().map(lines_of).unwrap_or_default(),
        email => details.email.as_deref().unwrap_or(""),
        tax_id => details.tax_id.as_deref().unwrap_or(""),
    }
}

fn html(
    invoice: &Invoice,
    tenant: &Tenant,
    issuer: &IssuerSettings,
) -> Result<String, ExportError> {
    let rule = PeriodRule::new(tenant.billing_anchor_day, &tenant.billing_time_zone)
        .map_err(|e| ExportError::Other(e.to_string()))?;
    let date = |ms: i64| rule.local_date(ms).unwrap_or_default();
    let optional_date = |ms: Option<i64>| ms.map(date).unwrap_or_else(|| "—".to_owned());
    let usage_cents: i64 = invoice
        .lines
        .iter()
        .filter(|l| matches!(l.kind, LineKind::Usage | LineKind::Fee))
        .map(|l| l.amount_cents)
        .sum();
    let lines: Vec<_> = invoice
        .lines
        .iter()
        .map(|l| {
            context! {
                no => l.line_no,
                description => describe(l),
                exact => l.quantities.amount.to_string(),
                amount => cents(l.amount_cents),
            }
        })
        .collect();
    let mut env = Environment::new();
    env.add_template("invoice.html", TEMPLATE)?;
    let page = env.get_template("invoice.html")?.render(context! {
        number => invoice.number.as_deref().unwrap_or("(draft)"),
        status => invoice.status.as_str(),
        id => invoice.id,
        tenant_id => invoice.tenant_id,
        issuer => context! {
            name => issuer.name,
            address => lines_of(&issuer.address),
            email => issuer.email,
            tax_id => issuer.tax_id,
        },
        to => bill_to(tenant),
        period => invoice.period,
        period_from => date(invoice.period_start_ms),
        period_to => date(invoice.period_end_ms.saturating_sub(1)),
        time_zone => tenant.billing_time_zone,
        issued => optional_date(invoice.finalized_at_ms),
        due => optional_date(invoice.due_at_ms),
        lines => lines,
        subtotal => cents(usage_cents),
        credits => cents(invoice.total_cents.saturating_sub(usage_cents)),
        total => cents(invoice.total_cents),
        residue => invoice.residue.to_string(),
        total_exact => invoice.total.to_string(),
    })?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tollgate_domain::invoice::lines::Quantities;
    use tollgate_domain::invoice::status::InvoiceStatus;
    use tollgate_domain::money::Nanos;
    use tollgate_domain::tenant::BillingDetails;

    use super::*;

    fn line(no: i64, kind: LineKind, model: Option<&str>, exact: i64, cents: i64) -> InvoiceLine {
        InvoiceLine {
            line_no: no,
            kind,
            period: "2026-11".into(),
            period_start_ms: 0,
            adjustment: no == 2,
            model: model.map(str::to_owned),
            quantities: Quantities {
                requests: 3,
                prompt_tokens: 30,
                amount: Nanos(exact),
                ..Quantities::default()
            },
            amount_cents: cents,
            residue: Nanos(exact - cents * 10_000_000),
            unit_prices: (no == 1).then(|| {
                serde_json::json!({"input_per_mtok": "1.2", "output_per_mtok": "120", "per_request": "0.001"})
            }),
        }
    }

    fn sample() -> (Invoice, Tenant) {
        let invoice = Invoice {
            id: "inv_1".into(),
            tenant_id: "ten_1".into(),
            number: Some("TG-2026-000007".into()),
            status: InvoiceStatus::Open,
            period: "2026-11".into(),
            period_start_ms: 1_793_487_600_000,
            period_end_ms: 1_796_079_600_000,
            currency: "usd".into(),
            subtotal: Nanos(306_234_567),
            credits: Nanos(-100_000_000),
            total: Nanos(206_234_567),
            total_cents: 21,
            residue: Nanos(-3_765_433),
            finalized_at_ms: Some(1_796_083_300_000),
            due_at_ms: Some(1_798_675_300_000),
            paid_at_ms: None,
            voided_at_ms: None,
            uncollectible_at_ms: None,
            lines: vec![
                line(
                    1,
                    LineKind::Usage,
                    Some("gpt-a, \"quoted\""),
                    206_234_567,
                    21,
                ),
                line(2, LineKind::Usage, Some("gpt-b"), 100_000_000, 10),
                line(3, LineKind::Credit, None, -100_000_000, -10),
            ],
        };
        let tenant = Tenant {
            name: "Acme".into(),
            billing_time_zone: "Europe/Paris".into(),
            billing_details: BillingDetails {
                legal_name: Some("Acme <script>alert(1)</script> SA".into()),
                address: Some("1 rue de la Paix\n75002 Paris".into()),
                email: Some("billing@acme.example".into()),
                tax_id: Some("FR123".into()),
            },
            ..tollgate_store::testing::tenant("ten_1", 0)
        };
        (invoice, tenant)
    }

    #[test]
    fn cents_read_as_dollars() {
        assert_eq!(cents(0), "0.00");
        assert_eq!(cents(21), "0.21");
        assert_eq!(cents(-1_234), "-12.34");
        assert_eq!(cents(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn csv_has_a_row_per_line_quoted() {
        let (invoice, tenant) = sample();
        let out = render(&invoice, &tenant, &IssuerSettings::default(), Format::Csv).unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let headers = reader.headers().unwrap().clone();
        assert_eq!(&headers[0], "invoice_number");
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        let model = headers.iter().position(|h| h == "model").unwrap();
        assert_eq!(&rows[0][model], "gpt-a, \"quoted\"");
        let amount = headers.iter().position(|h| h == "amount_usd").unwrap();
        let exact = headers
            .iter()
            .position(|h| h == "amount_exact_usd")
            .unwrap();
        assert_eq!((&rows[0][amount], &rows[0][exact]), ("0.21", "0.206234567"));
        assert_eq!(&rows[2][amount], "-0.10");
        let input = headers
            .iter()
            .position(|h| h == "input_usd_per_mtok")
            .unwrap();
        assert_eq!((&rows[0][input], &rows[1][input]), ("1.2", ""));
    }

    #[test]
    fn the_page_shows_both_parties_lines_and_totals_escaped() {
        let (invoice, tenant) = sample();
        let issuer = IssuerSettings {
            name: "Gateway Ops Ltd".into(),
            address: "2 High St\nLondon".into(),
            email: "ar@ops.example".into(),
            tax_id: "GB999".into(),
        };
        let page =
            String::from_utf8(render(&invoice, &tenant, &issuer, Format::Html).unwrap()).unwrap();
        for expected in [
            "Invoice TG-2026-000007",
            "Gateway Ops Ltd",
            "<p>London</p>",
            "Acme &lt;script&gt;alert(1)&lt;&#x2f;script&gt; SA",
            "<p>75002 Paris</p>",
            "Tax id: FR123",
            "2026-11 (2026-11-01 to 2026-11-30, Europe&#x2f;Paris)",
            "(adjustment for 2026-11)",
            "at $1.2&#x2f;M input, $120&#x2f;M output tokens, $0.001 per request",
            "Credit applied",
            "<td class=\"num\">0.31</td>",
            "<td class=\"num\">-0.10</td>",
            "<td class=\"num\">0.21</td>",
        ] {
            assert!(page.contains(expected), "{expected:?} not in\n{page}");
        }
        assert!(!page.contains("<script>"), "escaped");
    }
}
