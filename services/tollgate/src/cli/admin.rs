//! Operator commands: tokens, tenants, keys, credit and balances, straight against the configured
//! store, through the same [`crate::tenancy`] and [`crate::billing`] code as the admin API.

use tollgate_domain::tenant::{KeyStatus, Limits, TenantStatus};
use tollgate_store::{ApiKeys, Billing, Page, Store, Tenants};

use super::args::{CreditCommand, InvoiceCommand, KeyCommand, TenantCommand, TokenArgs, UsageArgs};
use super::output::{print, Failure};
use crate::admin::token::{self, Role};
use crate::catalog::Catalog;
use crate::tenancy::{self, KeyPatch, KeyView, NewKey, NewTenant, TenantPatch, TenantView};

/// Every row: the CLI lists without paging.
const ALL: Page<'static> = Page {
    after: None,
    limit: 10_000,
};

fn now_s() -> u64 {
    u64::try_from(tollgate_store::now_ms() / 1000).unwrap_or(0)
}

fn days_from_now(days: Option<i64>) -> Option<i64> {
    days.map(|d| tollgate_store::now_ms() + d * 86_400_000)
}

/// `token`: signs an operator JWT.
pub fn issue_token(args: &TokenArgs, catalog: &Catalog) -> Result<(), Failure> {
    let Some(secret) = &catalog.jwt_secret else {
        return Err(Failure::Usage(
            "no JWT secret: set the variable named by auth.jwt_secret_env (TOLLGATE_JWT_SECRET)"
                .into(),
        ));
    };
    if args.subject.is_empty() {
        return Err(Failure::Usage("token needs --subject NAME".into()));
    }
    let role = Role::parse(&args.role)
        .ok_or_else(|| Failure::Usage("token needs --role admin|viewer".into()))?;
    let ttl_s = args.ttl_minutes * 60;
    let t = token::issue(
        secret.expose().as_bytes(),
        &args.subject,
        role,
        now_s(),
        ttl_s,
    )
    .map_err(|e| Failure::Runtime(e.to_string()))?;
    println!("{t}");
    Ok(())
}

/// `tenant …`.
pub async fn tenant(store: &Store, actor: &str, command: &TenantCommand) -> Result<(), Failure> {
    let view = match command {
        TenantCommand::Create {
            name,
            billing,
            credit_limit,
            plan,
            markup,
            billing_anchor_day,
            billing_time_zone,
            billing_details,
            limits,
        } => {
            let req = NewTenant {
                name: name.clone(),
                billing_mode: *billing,
                credit_limit_units: credit_limit.map(|n| n.0),
                policy: Default::default(),
                limits: limits.apply(Limits::default()),
                plan: plan.clone(),
                markup_percent: *markup,
                billing_anchor_day: *billing_anchor_day,
                billing_time_zone: billing_time_zone.clone(),
                billing_details: billing_details.clone().unwrap_or_default(),
            };
            tenancy::create_tenant(store, actor, req).await?
        }
        TenantCommand::List => {
            let list = store.list_tenants(None, ALL).await?;
            return print(&list.into_iter().map(TenantView::from).collect::<Vec<_>>());
        }
        TenantCommand::Suspend { tenant_id } => {
            tenancy::set_tenant_status(store, actor, tenant_id, TenantStatus::Suspended).await?
        }
        TenantCommand::Activate { tenant_id } => {
            tenancy::set_tenant_status(store, actor, tenant_id, TenantStatus::Active).await?
        }
        TenantCommand::SetLimits { tenant_id, limits } => {
            let Some(current) = store.get_tenant(tenant_id).await? else {
                return Err(Failure::Usage(format!("no tenant {tenant_id}")));
            };
            let patch = TenantPatch {
                limits: Some(limits.apply(current.limits)),
                ..TenantPatch::default()
            };
            tenancy::update_tenant(store, actor, tenant_id, patch).await?
        }
    };
    print(&TenantView::from(view))
}

/// `key …`.
pub async fn key(store: &Store, actor: &str, command: &KeyCommand) -> Result<(), Failure> {
    let (tenant_id, key_id, status) = match command {
        KeyCommand::Create {
            tenant_id,
            name,
            env,
            expires_in_days,
            routing,
        } => {
            let req = NewKey {
                name: name.clone(),
                env: env.clone(),
                expires_at_ms: days_from_now(*expires_in_days),
                routing: routing.clone(),
                ..NewKey::default()
            };
            let (record, key) = tenancy::create_key(store, actor, tenant_id, req).await?;
            print(&serde_json::json!({"key": key, "record": KeyView::from(record)}))?;
            eprintln!("Store the key now: it is shown only once.");
            return Ok(());
        }
        KeyCommand::List { tenant_id } => {
            let list = store.list_keys(tenant_id, ALL).await?;
            return print(&list.into_iter().map(KeyView::from).collect::<Vec<_>>());
        }
        KeyCommand::Rotate { tenant_id, key_id } => {
            let (record, key) = tenancy::rotate_key(store, actor, tenant_id, key_id).await?;
            return print(&serde_json::json!({"key": key, "record": KeyView::from(record)}));
        }
        KeyCommand::SetLimits {
            tenant_id,
            key_id,
            limits,
        } => {
            let Some(current) = store.get_key(tenant_id, key_id).await? else {
                return Err(Failure::Usage(format!(
                    "no key {key_id} in tenant {tenant_id}"
                )));
            };
            let patch = KeyPatch {
                limits: Some(limits.apply(current.limits)),
                ..KeyPatch::default()
            };
            let k = tenancy::update_key(store, actor, tenant_id, key_id, patch).await?;
            return print(&KeyView::from(k));
        }
        KeyCommand::Disable { tenant_id, key_id } => (tenant_id, key_id, KeyStatus::Disabled),
        KeyCommand::Enable { tenant_id, key_id } => (tenant_id, key_id, KeyStatus::Active),
        KeyCommand::Revoke { tenant_id, key_id } => (tenant_id, key_id, KeyStatus::Revoked),
    };
    let k = tenancy::set_key_status(store, actor, tenant_id, key_id, status).await?;
    print(&KeyView::from(k))
}

/// `credit …`.
pub async fn credit(store: &Store, actor: &str, command: &CreditCommand) -> Result<(), Failure> {
    match command {
        CreditCommand::Grant {
            tenant_id,
            amount_usd,
            promo,
            expires_in_days,
            note,
        } => {
            let req = crate::billing::NewGrant {
                amount_usd: amount_usd.clone(),
                kind: Some(if *promo { "promo" } else { "topup" }.to_owned()),
                expires_at_ms: days_from_now(*expires_in_days),
                note: note.clone(),
            };
            print(&crate::billing::grant_credit(store, actor, tenant_id, req).await?)
        }
        CreditCommand::List { tenant_id } => print(&store.list_grants(tenant_id, ALL).await?),
    }
}

/// `balance TENANT_ID`.
pub async fn balance(store: &Store, tenant_id: &str) -> Result<(), Failure> {
    let Some(t) = store.get_tenant(tenant_id).await? else {
        return Err(Failure::Usage(format!("no tenant {tenant_id}")));
    };
    let budget =
        crate::budget::Budget::new(store.clone(), None, crate::budget::BudgetFailure::Deny);
    print(&crate::billing::balance(store, &budget, &t).await?)
}

/// The prices of the newest catalog version, as the gateway loads them.
async fn pricing(
    store: &Store,
    settings: &crate::settings::Settings,
    catalog: &crate::catalog::Catalog,
) -> Result<crate::pricing::Pricing, Failure> {
    let book = crate::pricing::PriceBook::load(store, catalog).await?;
    crate::pricing::Pricing::new(&settings.billing, book)
        .map_err(|e| Failure::Usage(format!("{e:#}")))
}

/// `invoice show ID [--format json|csv|html]`.
async fn show(
    store: &Store,
    terms: &crate::invoicing::InvoiceTerms,
    invoice_id: &str,
    format: &str,
) -> Result<(), Failure> {
    use crate::invoicing::export::Format;
    use std::io::Write;
    let format = match format {
        "csv" => Format::Csv,
        "html" => Format::Html,
        _ => return print(&crate::invoicing::get(store, invoice_id, None).await?),
    };
    let (body, _, _) = crate::invoicing::export(store, terms, invoice_id, None, format).await?;
    std::io::stdout()
        .write_all(&body)
        .map_err(|e| Failure::Runtime(e.to_string()))
}

/// `invoice …`.
pub async fn invoice(
    store: &Store,
    settings: &crate::settings::Settings,
    catalog: &crate::catalog::Catalog,
    actor: &str,
    command: &InvoiceCommand,
) -> Result<(), Failure> {
    let terms = &catalog.invoices;
    let pricing = pricing(store, settings, catalog).await?;
    let prices = crate::invoicing::PriceList {
        pricing: &pricing,
        catalog,
    };
    use tollgate_domain::invoice::status::{InvoiceStatus, Step};
    use tollgate_store::{InvoiceFilter, Invoices};
    match command {
        InvoiceCommand::Close { tenant_id, at } => {
            let at = crate::invoicing::instant(at.as_deref())?;
            print(
                &crate::invoicing::close(store, terms, prices, actor, tenant_id, at)
                    .await?
                    .0,
            )
        }
        InvoiceCommand::Run { at } => {
            let at = crate::invoicing::instant(at.as_deref())?;
            print(&crate::invoicing::run_due(store, terms, prices, actor, at).await?)
        }
        InvoiceCommand::Upcoming { tenant_id, at } => {
            let at = crate::invoicing::instant(at.as_deref())?;
            print(&crate::invoicing::upcoming(store, prices, tenant_id, at).await?)
        }
        InvoiceCommand::List { tenant, status } => {
            let filter = InvoiceFilter {
                tenant_id: tenant.as_deref(),
                status: status.as_deref().and_then(InvoiceStatus::parse),
            };
            print(&store.list_invoices(filter, ALL).await?)
        }
        InvoiceCommand::Show { invoice_id, format } => show(store, terms, invoice_id, format).await,
        InvoiceCommand::MarkPaid { invoice_id } => {
            print(&crate::invoicing::step(store, actor, invoice_id, Step::Pay).await?)
        }
        InvoiceCommand::Void { invoice_id } => {
            print(&crate::invoicing::step(store, actor, invoice_id, Step::Void).await?)
        }
        InvoiceCommand::MarkUncollectible { invoice_id } => {
            let s = Step::MarkUncollectible;
            print(&crate::invoicing::step(store, actor, invoice_id, s).await?)
        }
    }
}

/// `reconcile --period YYYY-MM`: prints the report; exit 3 when something differs.
pub async fn reconcile(
    store: &Store,
    catalog: &crate::catalog::Catalog,
    args: &super::args::ReconcileArgs,
) -> Result<(), Failure> {
    let mut bills = Vec::new();
    for (provider, path) in &args.provider_costs {
        let csv =
            std::fs::read(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
        bills.push(crate::reconcile::ProviderBill {
            provider: provider.clone(),
            csv,
        });
    }
    let mut report = crate::reconcile::reconcile(store, &args.period).await?;
    crate::reconcile::compare_bills(store, catalog, &mut report, &bills, args.tolerance_usd)
        .await?;
    print(&report)?;
    if report.ok {
        Ok(())
    } else {
        Err(Failure::Found(format!(
            "{} difference(s) in {}",
            report.differences, report.period
        )))
    }
}

/// `usage`: the admin API's usage view.
pub async fn usage(store: &Store, args: &UsageArgs) -> Result<(), Failure> {
    let params = crate::billing::UsageParams {
        tenant_id: args.tenant_id.clone(),
        key_id: args.key_id.clone(),
        model: args.model.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        group_by: args.group_by.clone(),
    };
    let q = params.query()?;
    print(&crate::billing::usage(store, &q).await?)
}

/// `rebuild-rollups`: the usage rollups recomputed from the request log.
pub async fn rebuild_rollups(store: &Store) -> Result<(), Failure> {
    let [daily, models, months] = store.rebuild_rollups().await?;
    print(&serde_json::json!({
        "usage_daily": daily,
        "usage_daily_models": models,
        "usage_monthly_keys": months,
    }))
}
