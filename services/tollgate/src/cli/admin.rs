//! Operator commands: tokens, tenants and keys, straight against the configured store.

use std::process::ExitCode;

use tollgate_domain::tenant::{BillingMode, KeyStatus, TenantStatus};
use tollgate_store::{ApiKeys, Page, Store, Tenants};

use crate::admin::token::{self, Role};
use crate::catalog::Catalog;
use crate::settings::env::Environment;
use crate::settings::Settings;
use crate::tenancy::{self, KeyPatch, KeyView, NewKey, NewTenant, TenantPatch, TenantView};
use tollgate_domain::tenant::Limits;

/// Applies `--rpm`, `--tpm`, `--concurrency` (a number, or `none` for unlimited) over `limits`.
fn limits_from_flags(mut limits: Limits, flags: &[(String, String)]) -> Result<Limits, String> {
    fn value<T: std::str::FromStr>(flag_name: &str, v: &str) -> Result<Option<T>, String> {
        if v == "none" {
            return Ok(None);
        }
        v.parse()
            .map(Some)
            .map_err(|_| format!("--{flag_name} takes a number or \"none\""))
    }
    if let Some(v) = flag(flags, "rpm") {
        limits.requests_per_minute = value("rpm", v)?;
    }
    if let Some(v) = flag(flags, "tpm") {
        limits.tokens_per_minute = value("tpm", v)?;
    }
    if let Some(v) = flag(flags, "concurrency") {
        limits.max_concurrent = value("concurrency", v)?;
    }
    let usd = |name: &str, v: &str| -> Result<Option<tollgate_domain::money::Nanos>, String> {
        if v == "none" {
            return Ok(None);
        }
        match tollgate_domain::money::Nanos::parse_usd(v) {
            Ok(n) if n.0 >= 0 => Ok(Some(n)),
            _ => Err(format!("--{name} takes dollars (e.g. 10.00) or \"none\"")),
        }
    };
    if let Some(v) = flag(flags, "daily-spend") {
        limits.daily_spend_usd = usd("daily-spend", v)?;
    }
    if let Some(v) = flag(flags, "monthly-spend") {
        limits.monthly_spend_usd = usd("monthly-spend", v)?;
    }
    if let Some(v) = flag(flags, "total-spend") {
        limits.total_spend_usd = usd("total-spend", v)?;
    }
    Ok(limits)
}

pub(super) fn flag<'a>(flags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    flags
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}\n\nRun `tollgate help` for usage.");
    ExitCode::from(2)
}

pub(super) fn print(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: {e}"),
    }
}

fn now_s() -> u64 {
    u64::try_from(tollgate_store::now_ms() / 1000).unwrap_or(0)
}

/// Runs `token …`, `tenant …`, `key …` or `prices …`.
pub fn run(
    words: &[String],
    flags: &[(String, String)],
    settings: &Settings,
    catalog: &Catalog,
    env: &Environment,
) -> ExitCode {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    if words.first() == Some(&"token") {
        return issue_token(&words[1..], flags, catalog);
    }
    let actor = format!("cli:{}", env.get("USER").unwrap_or("operator"));
    let url = settings.database.url.expose().to_owned();
    let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    let flags = flags.to_vec();
    let outcome = actix_web::rt::System::new().block_on(async move {
        let store = Store::connect(&url, 2).await?;
        store.migrate().await?;
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let code = store_command(&store, &actor, &words, &flags).await;
        store.close().await;
        Ok::<_, anyhow::Error>(code)
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn issue_token(rest: &[&str], flags: &[(String, String)], catalog: &Catalog) -> ExitCode {
    if !rest.is_empty() {
        return usage("token takes only options");
    }
    let Some(secret) = &catalog.jwt_secret else {
        return usage(
            "no JWT secret: set the variable named by auth.jwt_secret_env (TOLLGATE_JWT_SECRET)",
        );
    };
    let Some(subject) = flag(flags, "subject").filter(|s| !s.is_empty()) else {
        return usage("token needs --subject NAME");
    };
    let Some(role) = flag(flags, "role").and_then(Role::parse) else {
        return usage("token needs --role admin|viewer");
    };
    let ttl_minutes = match flag(flags, "ttl-minutes").map(str::parse::<u64>) {
        None => 60,
        Some(Ok(m)) if (1..=60 * 24 * 30).contains(&m) => m,
        Some(_) => return usage("--ttl-minutes must be between 1 and 43200"),
    };
    match token::issue(
        secret.expose().as_bytes(),
        subject,
        role,
        now_s(),
        ttl_minutes * 60,
    ) {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn store_command(
    store: &Store,
    actor: &str,
    words: &[&str],
    flags: &[(String, String)],
) -> ExitCode {
    if words.first() == Some(&"prices") {
        return super::prices::run(store, actor, words, flags).await;
    }
    let result =
        match words {
            ["tenant", "create", name] => {
                let billing = match flag(flags, "billing") {
                    None => BillingMode::Prepaid,
                    Some(b) => match BillingMode::parse(b) {
                        Some(m) => m,
                        None => return usage("--billing must be prepaid or postpaid"),
                    },
                };
                let credit_limit_units = match flag(flags, "credit-limit") {
                    None => None,
                    Some(v) => match tollgate_domain::money::Nanos::parse_usd(v) {
                        Ok(n) if n.0 >= 0 => Some(n.0),
                        _ => return usage("--credit-limit takes dollars (e.g. 500.00)"),
                    },
                };
                let markup_percent = match flag(flags, "markup") {
                    None => None,
                    Some(v) => match tollgate_domain::money::parse_rate(v) {
                        Ok(m) => Some(m),
                        Err(_) => return usage("--markup takes a non-negative percentage"),
                    },
                };
                let limits = match limits_from_flags(Limits::default(), flags) {
                    Ok(l) => l,
                    Err(e) => return usage(&e),
                };
                let req = NewTenant {
                    name: (*name).to_owned(),
                    billing_mode: billing,
                    credit_limit_units,
                    policy: Default::default(),
                    limits,
                    plan: flag(flags, "plan").map(str::to_owned),
                    markup_percent,
                };
                tenancy::create_tenant(store, actor, req)
                    .await
                    .map(|t| print(&TenantView::from(t)))
            }
            ["tenant", "list"] => match store
                .list_tenants(
                    None,
                    Page {
                        after: None,
                        limit: 10_000,
                    },
                )
                .await
            {
                Ok(list) => {
                    print(&list.into_iter().map(TenantView::from).collect::<Vec<_>>());
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
            ["tenant", action @ ("suspend" | "activate"), id] => {
                let status = if *action == "suspend" {
                    TenantStatus::Suspended
                } else {
                    TenantStatus::Active
                };
                tenancy::set_tenant_status(store, actor, id, status)
                    .await
                    .map(|t| print(&TenantView::from(t)))
            }
            ["key", "create", tenant, name] => {
                let expires_at_ms = match flag(flags, "expires-in-days").map(str::parse::<i64>) {
                    None => None,
                    Some(Ok(d)) if (1..=3650).contains(&d) => {
                        Some(tollgate_store::now_ms() + d * 86_400_000)
                    }
                    Some(_) => return usage("--expires-in-days must be between 1 and 3650"),
                };
                let routing = match flag(flags, "routing").map(serde_json::from_str) {
                    None => None,
                    Some(Ok(v)) => Some(v),
                    Some(Err(e)) => return usage(&format!("--routing is not JSON: {e}")),
                };
                let req = NewKey {
                    name: (*name).to_owned(),
                    env: flag(flags, "env").map(str::to_owned),
                    expires_at_ms,
                    routing,
                    ..NewKey::default()
                };
                tenancy::create_key(store, actor, tenant, req)
                    .await
                    .map(|(record, key)| {
                        print(&serde_json::json!({"key": key, "record": KeyView::from(record)}));
                        eprintln!("Store the key now: it is shown only once.");
                    })
            }
            ["tenant", "set-limits", id] => {
                let current = match store.get_tenant(id).await {
                    Ok(Some(t)) => t.limits,
                    Ok(None) => return usage(&format!("no tenant {id}")),
                    Err(e) => return usage(&e.to_string()),
                };
                let limits = match limits_from_flags(current, flags) {
                    Ok(l) => l,
                    Err(e) => return usage(&e),
                };
                let patch = TenantPatch {
                    limits: Some(limits),
                    ..TenantPatch::default()
                };
                tenancy::update_tenant(store, actor, id, patch)
                    .await
                    .map(|t| print(&TenantView::from(t)))
            }
            ["key", "set-limits", tenant, key] => {
                let current = match store.get_key(tenant, key).await {
                    Ok(Some(k)) => k.limits,
                    Ok(None) => return usage(&format!("no key {key} in tenant {tenant}")),
                    Err(e) => return usage(&e.to_string()),
                };
                let limits = match limits_from_flags(current, flags) {
                    Ok(l) => l,
                    Err(e) => return usage(&e),
                };
                let patch = KeyPatch {
                    limits: Some(limits),
                    ..KeyPatch::default()
                };
                tenancy::update_key(store, actor, tenant, key, patch)
                    .await
                    .map(|k| print(&KeyView::from(k)))
            }
            ["key", "list", tenant] => match store
                .list_keys(
                    tenant,
                    Page {
                        after: None,
                        limit: 10_000,
                    },
                )
                .await
            {
                Ok(list) => {
                    print(&list.into_iter().map(KeyView::from).collect::<Vec<_>>());
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
            ["key", "rotate", tenant, key] => tenancy::rotate_key(store, actor, tenant, key)
                .await
                .map(|(record, key)| {
                    print(&serde_json::json!({"key": key, "record": KeyView::from(record)}));
                }),
            ["key", action @ ("disable" | "enable" | "revoke"), tenant, key] => {
                let status = match *action {
                    "disable" => KeyStatus::Disabled,
                    "enable" => KeyStatus::Active,
                    _ => KeyStatus::Revoked,
                };
                tenancy::set_key_status(store, actor, tenant, key, status)
                    .await
                    .map(|k| print(&KeyView::from(k)))
            }
            ["credit", "grant", tenant, amount] => {
                let expires_at_ms = match flag(flags, "expires-in-days").map(str::parse::<i64>) {
                    None => None,
                    Some(Ok(d)) if (1..=3650).contains(&d) => {
                        Some(tollgate_store::now_ms() + d * 86_400_000)
                    }
                    Some(_) => return usage("--expires-in-days must be between 1 and 3650"),
                };
                let promo = flags.iter().any(|(k, _)| k == "promo");
                let req = crate::billing::NewGrant {
                    amount_usd: (*amount).to_owned(),
                    kind: Some(if promo { "promo" } else { "topup" }.to_owned()),
                    expires_at_ms,
                    note: flag(flags, "note").unwrap_or_default().to_owned(),
                };
                crate::billing::grant_credit(store, actor, tenant, req)
                    .await
                    .map(|g| print(&g))
            }
            ["credit", "list", tenant] => match tollgate_store::Billing::list_grants(
                store,
                tenant,
                Page {
                    after: None,
                    limit: 10_000,
                },
            )
            .await
            {
                Ok(list) => {
                    print(&list);
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
            ["balance", id] => match store.get_tenant(id).await {
                Ok(Some(t)) => {
                    let budget = crate::budget::Budget::new(
                        store.clone(),
                        None,
                        crate::budget::BudgetFailure::Deny,
                    );
                    crate::billing::balance(store, &budget, &t)
                        .await
                        .map(|v| print(&v))
                }
                Ok(None) => return usage(&format!("no tenant {id}")),
                Err(e) => Err(e.into()),
            },
            _ => return usage(&format!("unknown command {:?}", words.join(" "))),
        };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(
            e @ (tenancy::TenancyError::NotFound(_)
            | tenancy::TenancyError::Conflict(_)
            | tenancy::TenancyError::Invalid(_)),
        ) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
