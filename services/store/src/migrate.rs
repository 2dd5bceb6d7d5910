//! Embedded, forward-only migrations: `migrations/{sqlite,postgres}/<timestamp>_<verb_noun>.sql`,
//! the same names in both folders, applied in name order and recorded in `_tollgate_migrations`.

/// One migration file, embedded at build time.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

pub static SQLITE_MIGRATIONS: &[Migration] = &[
    Migration {
        name: "20261124000000_create_request_log",
        sql: include_str!("../../../migrations/sqlite/20261124000000_create_request_log.sql"),
    },
    Migration {
        name: "20261124010000_create_tenants_and_keys",
        sql: include_str!("../../../migrations/sqlite/20261124010000_create_tenants_and_keys.sql"),
    },
    Migration {
        name: "20261124020000_add_request_log_caller",
        sql: include_str!("../../../migrations/sqlite/20261124020000_add_request_log_caller.sql"),
    },
    Migration {
        name: "20261124030000_create_price_catalog",
        sql: include_str!("../../../migrations/sqlite/20261124030000_create_price_catalog.sql"),
    },
    Migration {
        name: "20261124040000_create_ledger",
        sql: include_str!("../../../migrations/sqlite/20261124040000_create_ledger.sql"),
    },
    Migration {
        name: "20261124050000_index_postings_by_request",
        sql: include_str!(
            "../../../migrations/sqlite/20261124050000_index_postings_by_request.sql"
        ),
    },
    Migration {
        name: "20261124060000_add_key_routing",
        sql: include_str!("../../../migrations/sqlite/20261124060000_add_key_routing.sql"),
    },
    Migration {
        name: "20261125000000_drop_postings_request_index",
        sql: include_str!(
            "../../../migrations/sqlite/20261125000000_drop_postings_request_index.sql"
        ),
    },
    Migration {
        name: "20261207000000_derive_platform_balances",
        sql: include_str!("../../../migrations/sqlite/20261207000000_derive_platform_balances.sql"),
    },
    Migration {
        name: "20261208000000_add_tenant_billing_period",
        sql: include_str!(
            "../../../migrations/sqlite/20261208000000_add_tenant_billing_period.sql"
        ),
    },
    Migration {
        name: "20261209000000_create_invoices",
        sql: include_str!("../../../migrations/sqlite/20261209000000_create_invoices.sql"),
    },
    Migration {
        name: "20261209010000_create_leases",
        sql: include_str!("../../../migrations/sqlite/20261209010000_create_leases.sql"),
    },
    Migration {
        name: "20261209020000_add_tenant_billing_details",
        sql: include_str!(
            "../../../migrations/sqlite/20261209020000_add_tenant_billing_details.sql"
        ),
    },
    Migration {
        name: "20261209030000_create_stripe",
        sql: include_str!("../../../migrations/sqlite/20261209030000_create_stripe.sql"),
    },
    Migration {
        name: "20261209040000_add_invoice_line_unit_prices",
        sql: include_str!(
            "../../../migrations/sqlite/20261209040000_add_invoice_line_unit_prices.sql"
        ),
    },
    Migration {
        name: "20261209050000_allow_invoice_fee_lines",
        sql: include_str!("../../../migrations/sqlite/20261209050000_allow_invoice_fee_lines.sql"),
    },
    Migration {
        name: "20261209060000_refuse_balance_overflow",
        sql: include_str!("../../../migrations/sqlite/20261209060000_refuse_balance_overflow.sql"),
    },
    Migration {
        name: "20261210000000_create_ui_accounts",
        sql: include_str!("../../../migrations/sqlite/20261210000000_create_ui_accounts.sql"),
    },
    Migration {
        name: "20261210010000_create_usage_daily",
        sql: include_str!("../../../migrations/sqlite/20261210010000_create_usage_daily.sql"),
    },
    Migration {
        name: "20261210020000_create_usage_summaries",
        sql: include_str!("../../../migrations/sqlite/20261210020000_create_usage_summaries.sql"),
    },
];

pub static POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration {
        name: "20261124000000_create_request_log",
        sql: include_str!("../../../migrations/postgres/20261124000000_create_request_log.sql"),
    },
    Migration {
        name: "20261124010000_create_tenants_and_keys",
        sql: include_str!(
            "../../../migrations/postgres/20261124010000_create_tenants_and_keys.sql"
        ),
    },
    Migration {
        name: "20261124020000_add_request_log_caller",
        sql: include_str!("../../../migrations/postgres/20261124020000_add_request_log_caller.sql"),
    },
    Migration {
        name: "20261124030000_create_price_catalog",
        sql: include_str!("../../../migrations/postgres/20261124030000_create_price_catalog.sql"),
    },
    Migration {
        name: "20261124040000_create_ledger",
        sql: include_str!("../../../migrations/postgres/20261124040000_create_ledger.sql"),
    },
    Migration {
        name: "20261124050000_index_postings_by_request",
        sql: include_str!(
            "../../../migrations/postgres/20261124050000_index_postings_by_request.sql"
        ),
    },
    Migration {
        name: "20261124060000_add_key_routing",
        sql: include_str!("../../../migrations/postgres/20261124060000_add_key_routing.sql"),
    },
    Migration {
        name: "20261125000000_drop_postings_request_index",
        sql: include_str!(
            "../../../migrations/postgres/20261125000000_drop_postings_request_index.sql"
        ),
    },
    Migration {
        name: "20261207000000_derive_platform_balances",
        sql: include_str!(
            "../../../migrations/postgres/20261207000000_derive_platform_balances.sql"
        ),
    },
    Migration {
        name: "20261208000000_add_tenant_billing_period",
        sql: include_str!(
            "../../../migrations/postgres/20261208000000_add_tenant_billing_period.sql"
        ),
    },
    Migration {
        name: "20261209000000_create_invoices",
        sql: include_str!("../../../migrations/postgres/20261209000000_create_invoices.sql"),
    },
    Migration {
        name: "20261209010000_create_leases",
        sql: include_str!("../../../migrations/postgres/20261209010000_create_leases.sql"),
    },
    Migration {
        name: "20261209020000_add_tenant_billing_details",
        sql: include_str!(
            "../../../migrations/postgres/20261209020000_add_tenant_billing_details.sql"
        ),
    },
    Migration {
        name: "20261209030000_create_stripe",
        sql: include_str!("../../../migrations/postgres/20261209030000_create_stripe.sql"),
    },
    Migration {
        name: "20261209040000_add_invoice_line_unit_prices",
        sql: include_str!(
            "../../../migrations/postgres/20261209040000_add_invoice_line_unit_prices.sql"
        ),
    },
    Migration {
        name: "20261209050000_allow_invoice_fee_lines",
        sql: include_str!(
            "../../../migrations/postgres/20261209050000_allow_invoice_fee_lines.sql"
        ),
    },
    Migration {
        name: "20261209060000_refuse_balance_overflow",
        sql: include_str!(
            "../../../migrations/postgres/20261209060000_refuse_balance_overflow.sql"
        ),
    },
    Migration {
        name: "20261210000000_create_ui_accounts",
        sql: include_str!("../../../migrations/postgres/20261210000000_create_ui_accounts.sql"),
    },
    Migration {
        name: "20261210010000_create_usage_daily",
        sql: include_str!("../../../migrations/postgres/20261210010000_create_usage_daily.sql"),
    },
    Migration {
        name: "20261210020000_create_usage_summaries",
        sql: include_str!("../../../migrations/postgres/20261210020000_create_usage_summaries.sql"),
    },
];

pub(crate) const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS _tollgate_migrations (
    name TEXT PRIMARY KEY,
    applied_at_ms BIGINT NOT NULL
)";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn names_on_disk(backend: &str) -> Vec<String> {
        let dir = format!("{}/../../migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".sql")
                    .to_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_file_is_embedded_in_order_and_both_backends_match() {
        for (backend, list) in [
            ("sqlite", SQLITE_MIGRATIONS),
            ("postgres", POSTGRES_MIGRATIONS),
        ] {
            let embedded: Vec<String> = list.iter().map(|m| m.name.to_owned()).collect();
            assert_eq!(embedded, names_on_disk(backend), "{backend}");
        }
        assert_eq!(names_on_disk("sqlite"), names_on_disk("postgres"));
    }
}
