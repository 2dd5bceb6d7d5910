//! Durable storage: narrow traits in domain terms, a SQLite and a Postgres backend, chosen by the
//! database URL's scheme. Row types and SQL specific to one database stay in its backend module.
#![forbid(unsafe_code)]

pub mod accounts;
mod backend;
pub mod billing;
mod error;
mod health;
pub mod invoices;
mod metering;
mod migrate;
mod postgres;
mod postgres_writer;
pub mod prices;
pub mod reconcile;
mod record;
mod rollup;
mod sqlite;
mod sqlite_writer;
mod store;
pub mod stripe;
pub mod tenants;
pub mod testing;
mod util;

pub use accounts::{Accounts, Member, Operator, UiSession};
pub use billing::{
    Balances, Billing, CreditGrant, ExpiredGrant, GrantKind, GroupBy, LedgerEntry, SpendScope,
    UsageQuery, UsageRow,
};
pub use error::StoreError;
pub use health::Health;
pub use invoices::{CloseInvoice, Invoice, InvoiceFilter, InvoiceLine, Invoices, UnitPrices};
pub use migrate::{Migration, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
pub use postgres::PgStore;
pub use prices::{PriceVersion, Prices};
pub use reconcile::{InvoicedGroup, ProviderCost, Reconciliation, RecordDifference, UsageGroup};
pub use record::{Charge, Outcome, RequestLog, RequestRecord, TokenCounts};
pub use sqlite::SqliteStore;
pub use store::Store;
pub use stripe::{OutboxItem, StripeState, TopUp};
pub use tenants::{
    ApiKeyRecord, ApiKeys, AuditEntry, AuditLog, Page, Tenant, TenantUpdates, Tenants,
};
pub use util::{now_ms, redact};
