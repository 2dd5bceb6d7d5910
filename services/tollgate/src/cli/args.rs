//! The operator commands' arguments, as `clap` derive types: each parsed once into domain types
//! (dollars into [`Nanos`], limits into "set" or "clear"), so the commands only act.

use clap::{Args, Subcommand};
use tollgate_domain::money::Nanos;
use tollgate_domain::tenant::{BillingMode, Limits};

/// What `prices import` reads by default: the price snapshot built into the binary
/// (`data/prices.jsonl`).
pub const BUILTIN_PRICE_LIST: &str = "builtin";

/// A limit flag's value: a number or dollars, or `none` to clear the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clearable<T>(pub Option<T>);

fn count<T: std::str::FromStr>(v: &str) -> Result<Clearable<T>, String> {
    if v == "none" {
        return Ok(Clearable(None));
    }
    v.parse()
        .map(|n| Clearable(Some(n)))
        .map_err(|_| "takes a number or \"none\"".to_owned())
}

fn dollars_or_none(v: &str) -> Result<Clearable<Nanos>, String> {
    if v == "none" {
        return Ok(Clearable(None));
    }
    dollars(v).map(|n| Clearable(Some(n)))
}

/// Non-negative dollars (`10.00`), exact to the nano-dollar.
fn dollars(v: &str) -> Result<Nanos, String> {
    match Nanos::parse_usd(v) {
        Ok(n) if n.0 >= 0 => Ok(n),
        _ => Err("takes non-negative dollars (e.g. 10.00)".to_owned()),
    }
}

fn percent(v: &str) -> Result<rust_decimal::Decimal, String> {
    tollgate_domain::money::parse_rate(v).map_err(|_| "takes a non-negative percentage".to_owned())
}

fn billing_mode(v: &str) -> Result<BillingMode, String> {
    BillingMode::parse(v).ok_or_else(|| "must be prepaid or postpaid".to_owned())
}

fn billing_details(v: &str) -> Result<tollgate_domain::tenant::BillingDetails, String> {
    serde_json::from_str(v).map_err(|e| format!("is not billing details in JSON: {e}"))
}

fn routing_json(v: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(v).map_err(|e| format!("is not JSON: {e}"))
}

/// `--rpm`, `--tpm`, `--concurrency`, `--daily-spend`, `--monthly-spend`, `--total-spend`.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Requests per minute (a number, or `none` for unlimited)
    #[arg(long, value_name = "N|none", value_parser = count::<u64>)]
    pub rpm: Option<Clearable<u64>>,
    /// Tokens per minute
    #[arg(long, value_name = "N|none", value_parser = count::<u64>)]
    pub tpm: Option<Clearable<u64>>,
    /// Concurrent requests
    #[arg(long, value_name = "N|none", value_parser = count::<u32>)]
    pub concurrency: Option<Clearable<u32>>,
    /// Spend per UTC day, in dollars
    #[arg(long, value_name = "USD|none", value_parser = dollars_or_none)]
    pub daily_spend: Option<Clearable<Nanos>>,
    /// Spend per UTC calendar month, in dollars
    #[arg(long, value_name = "USD|none", value_parser = dollars_or_none)]
    pub monthly_spend: Option<Clearable<Nanos>>,
    /// Spend in all, in dollars
    #[arg(long, value_name = "USD|none", value_parser = dollars_or_none)]
    pub total_spend: Option<Clearable<Nanos>>,
}

impl LimitArgs {
    /// `limits` with the flags given applied over it.
    pub fn apply(&self, mut limits: Limits) -> Limits {
        fn set<T: Copy>(field: &mut Option<T>, flag: Option<Clearable<T>>) {
            if let Some(Clearable(v)) = flag {
                *field = v;
            }
        }
        set(&mut limits.requests_per_minute, self.rpm);
        set(&mut limits.tokens_per_minute, self.tpm);
        set(&mut limits.max_concurrent, self.concurrency);
        set(&mut limits.daily_spend_usd, self.daily_spend);
        set(&mut limits.monthly_spend_usd, self.monthly_spend);
        set(&mut limits.total_spend_usd, self.total_spend);
        limits
    }
}

/// `token`: sign an operator JWT for the admin API (needs the JWT secret).
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Who the token is for
    #[arg(long, value_name = "NAME")]
    pub subject: String,
    /// `admin` (read and write) or `viewer` (read only)
    #[arg(long, value_parser = ["admin", "viewer"])]
    pub role: String,
    /// Lifetime, 1 to 43200 minutes
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=43_200))]
    pub ttl_minutes: u64,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant
    Create {
        name: String,
        #[arg(long, default_value = "prepaid", value_parser = billing_mode)]
        billing: BillingMode,
        /// Postpaid credit limit, in dollars
        #[arg(long, value_name = "USD", value_parser = dollars)]
        credit_limit: Option<Nanos>,
        /// The plan (its markup applies unless --markup is given)
        #[arg(long, value_name = "NAME")]
        plan: Option<String>,
        /// Markup over provider cost, in percent
        #[arg(long, value_name = "PERCENT", value_parser = percent)]
        markup: Option<rust_decimal::Decimal>,
        /// Billing periods start on this day of the month (1-31, clamped to the month's end)
        #[arg(long, value_name = "DAY", default_value_t = 1)]
        billing_anchor_day: u8,
        /// ...at local midnight in this IANA time zone
        #[arg(long, value_name = "ZONE", default_value = "UTC")]
        billing_time_zone: String,
        /// Who invoices are addressed to, as JSON:
        /// {"legal_name": "…", "email": "…", "address": "…", "tax_id": "…"}
        #[arg(long, value_name = "JSON", value_parser = billing_details)]
        billing_details: Option<tollgate_domain::tenant::BillingDetails>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List tenants
    List,
    /// Suspend a tenant: its keys are refused until it is activated
    Suspend { tenant_id: String },
    /// Activate a suspended tenant
    Activate { tenant_id: String },
    /// Change a tenant's limits (each a value, or none to clear; spend periods are UTC)
    SetLimits {
        tenant_id: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeyCommand {
    /// Create a key; prints it once (only its hash is stored)
    Create {
        tenant_id: String,
        name: String,
        /// The key's environment, shown in its prefix (`live` by default)
        #[arg(long)]
        env: Option<String>,
        /// Expire the key after this many days (1 to 3650)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=3650))]
        expires_in_days: Option<i64>,
        /// Default routing preferences, as a request's `provider` object in JSON
        #[arg(long, value_name = "JSON", value_parser = routing_json)]
        routing: Option<serde_json::Value>,
    },
    /// List a tenant's keys (never their secrets)
    List { tenant_id: String },
    /// Disable a key (reversible)
    Disable { tenant_id: String, key_id: String },
    /// Enable a disabled key
    Enable { tenant_id: String, key_id: String },
    /// Revoke a key for good
    Revoke { tenant_id: String, key_id: String },
    /// Replace a key's secret; prints the new one once
    Rotate { tenant_id: String, key_id: String },
    /// Change a key's limits
    SetLimits {
        tenant_id: String,
        key_id: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum CreditCommand {
    /// Top up (or give promotional) credit; posted to the ledger
    Grant {
        tenant_id: String,
        /// Dollars, as a decimal (`25.00`)
        amount_usd: String,
        /// Promotional credit (given away; may expire)
        #[arg(long)]
        promo: bool,
        /// Promotional credit only: expire the unspent rest after this many days (1 to 3650)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=3650))]
        expires_in_days: Option<i64>,
        #[arg(long, value_name = "TEXT", default_value = "")]
        note: String,
    },
    /// List a tenant's grants
    List { tenant_id: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum InvoiceCommand {
    /// Finalize a tenant's invoice for its period now and print it (re-running prints the same)
    Close {
        tenant_id: String,
        /// An RFC 3339 instant in the period to close (default: now)
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
    },
    /// Close every tenant's periods that ended (plus billing.invoice_grace_s) and have no
    /// invoice yet, oldest first; prints the invoices finalized (re-running makes none)
    Run {
        /// Run as of this RFC 3339 instant (default: now)
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
    },
    /// The invoice of a tenant's period as it stands (a draft until finalized)
    Upcoming {
        tenant_id: String,
        /// An RFC 3339 instant in the period (default: now)
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
    },
    /// List finalized invoices, oldest first
    List {
        /// Only this tenant's
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<String>,
        /// Only those with this status (open, paid, void, uncollectible)
        #[arg(long, value_parser = ["open", "paid", "void", "uncollectible"])]
        status: Option<String>,
    },
    /// Show one invoice with its lines (JSON), or export it as CSV or a printable HTML page
    Show {
        invoice_id: String,
        #[arg(long, default_value = "json", value_parser = ["json", "csv", "html"])]
        format: String,
    },
    /// Mark an invoice paid (money received outside Stripe)
    MarkPaid { invoice_id: String },
    /// Void an invoice: its charge is cancelled
    Void { invoice_id: String },
    /// Write an invoice off as uncollectible
    MarkUncollectible { invoice_id: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum PricesCommand {
    /// Make a new price catalog version from the public price list and/or an overrides file
    Import {
        /// The prices: `builtin` (the snapshot built into this binary, data/prices.jsonl), a
        /// snapshot file, the public price list (LiteLLM's model_prices_and_context_window.json),
        /// or `none` to import only overrides
        #[arg(long, value_name = "builtin|PATH|none", default_value = BUILTIN_PRICE_LIST)]
        from: String,
        /// A TOML file of prices that replace or add to the list (docs/billing.md)
        #[arg(long, value_name = "PATH")]
        overrides: Option<String>,
        #[arg(long, value_name = "TEXT", default_value = "imported")]
        note: String,
    },
    /// Write Tollgate's price snapshot (data/prices.jsonl) from the public price list; needs no
    /// store
    Snapshot {
        /// The public price list: LiteLLM's model_prices_and_context_window.json
        #[arg(long, value_name = "PATH")]
        from: String,
        /// Where to write it (standard output when absent)
        #[arg(long, value_name = "PATH")]
        out: Option<std::path::PathBuf>,
    },
    /// List the catalog's versions
    Versions,
    /// Show one model's price
    Show {
        provider: String,
        model: String,
        /// The version to read (the latest by default)
        #[arg(long, value_name = "N")]
        price_version: Option<i64>,
    },
}

/// `reconcile`.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// The period, `YYYY-MM` (each tenant's period of that name, by its anchor day and zone)
    #[arg(long, value_name = "YYYY-MM")]
    pub period: String,
    /// A provider's cost export to compare with its cost records over the UTC month (repeatable):
    /// PROVIDER is its name in the configuration; OpenAI's cost export or Anthropic's cost report
    /// as CSV (docs/billing.md#reconciliation)
    #[arg(long, value_name = "PROVIDER=PATH", value_parser = provider_file)]
    pub provider_costs: Vec<(String, std::path::PathBuf)>,
    /// The largest difference per day and model that is not reported, in dollars
    #[arg(long, value_name = "USD", default_value = "0.01", value_parser = dollars)]
    pub tolerance_usd: Nanos,
}

fn provider_file(v: &str) -> Result<(String, std::path::PathBuf), String> {
    match v.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_owned(), path.into()))
        }
        _ => Err("takes PROVIDER=PATH".to_owned()),
    }
}

/// `operator …`: the accounts that sign in to the admin web UI. A password is read from the
/// variable `TOLLGATE_OPERATOR_PASSWORD`, else from the first line of standard input.
#[derive(Debug, Clone, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator (prints it, never the password)
    Create {
        name: String,
        /// `admin` (read and write) or `viewer` (read only)
        #[arg(long, default_value = "admin", value_parser = ["admin", "viewer"])]
        role: String,
    },
    /// List operators
    List,
    /// Set an operator's password (signs them out everywhere)
    SetPassword { name: String },
    /// Change an operator's role (signs them out everywhere)
    SetRole {
        name: String,
        #[arg(value_parser = ["admin", "viewer"])]
        role: String,
    },
    /// Stop an operator signing in (and sign them out)
    Disable { name: String },
    /// Let a disabled operator sign in again
    Enable { name: String },
}

/// `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The address to bind (0.0.0.0 in a container)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The gateway's port (0 picks a free one)
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The directory of the demo's SQLite database (default: a new one in the system's temporary
    /// directory)
    #[arg(long, value_name = "DIR")]
    pub data: Option<std::path::PathBuf>,
}

/// `usage`: the admin API's usage view (`/admin/api/usage`) from the command line.
#[derive(Debug, Clone, Args)]
pub struct UsageArgs {
    #[arg(long, value_name = "ID")]
    pub tenant_id: Option<String>,
    #[arg(long, value_name = "ID")]
    pub key_id: Option<String>,
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// `YYYY-MM-DD` (UTC) or milliseconds since the epoch, inclusive
    #[arg(long, value_name = "WHEN")]
    pub from: Option<String>,
    /// `YYYY-MM-DD` (UTC) or milliseconds since the epoch, exclusive
    #[arg(long, value_name = "WHEN")]
    pub to: Option<String>,
    /// Comma-separated: day, model, key, tenant, provider
    #[arg(long, value_name = "LIST")]
    pub group_by: Option<String>,
}
