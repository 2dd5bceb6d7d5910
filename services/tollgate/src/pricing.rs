//! Prices on the request path: each deployment's price sheet from the newest catalog version
//! (looked up by the deployment's `price` reference, else `<preset>/<upstream model>`), tenant
//! markups (the tenant's own, else its plan's, else the default), hold amounts and charges.
//! A new catalog version is picked up by a background refresh, without a restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tollgate_domain::money::{parse_rate, MoneyError, Nanos};
use tollgate_domain::pricing::{max_charge, Bound, Markup, PriceSheet};
use tollgate_domain::Usage;
use tollgate_store::{Prices, Store, StoreError, Tenant};

use crate::catalog::{Catalog, Deployment};
use crate::settings::BillingSettings;

/// A deployment's price.
#[derive(Debug)]
pub struct DeploymentPrice {
    pub version: i64,
    pub sheet: PriceSheet,
    pub max_output_tokens: Option<u64>,
}

/// Every deployment's price under one catalog version.
#[derive(Debug, Default)]
pub struct PriceBook {
    pub version: Option<i64>,
    by_deployment: HashMap<String, Arc<DeploymentPrice>>,
    /// Deployments with no price in this version (served unbilled).
    pub unpriced: Vec<String>,
}

/// What a served request cost and what the tenant is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub version: i64,
    /// Provider cost, rounded once.
    pub cost: Nanos,
    /// Tenant price (cost × markup), rounded once, before the cap at the hold.
    pub price: Nanos,
}

/// The catalog reference of a deployment: `provider/model`.
fn reference(d: &Deployment) -> (String, String) {
    match d.price.as_deref().and_then(|p| p.split_once('/')) {
        Some((p, m)) => (p.to_owned(), m.to_owned()),
        None => (
            d.provider.preset().name.to_owned(),
            d.upstream_model.clone(),
        ),
    }
}

impl PriceBook {
    /// Resolves every deployment of `catalog` in the newest catalog version.
    pub async fn load(store: &Store, catalog: &Catalog) -> Result<Self, StoreError> {
        let Some(version) = store.latest_price_version().await? else {
            return Ok(Self {
                unpriced: deployments(catalog).map(|d| d.name.clone()).collect(),
                ..Self::default()
            });
        };
        let mut book = Self {
            version: Some(version.version),
            ..Self::default()
        };
        for d in deployments(catalog) {
            if book.by_deployment.contains_key(&d.name) {
                continue;
            }
            let (provider, model) = reference(d);
            match store.price(version.version, &provider, &model).await? {
                Some(entry) => {
                    book.by_deployment.insert(
                        d.name.clone(),
                        Arc::new(DeploymentPrice {
                            version: version.version,
                            sheet: entry.sheet,
                            max_output_tokens: entry.max_output_tokens,
                        }),
                    );
                }
                None => book.unpriced.push(d.name.clone()),
            }
        }
        book.unpriced.sort();
        book.unpriced.dedup();
        Ok(book)
    }
}

impl PriceBook {
    /// The price of `deployment` in this version.
    pub fn price_of(&self, deployment: &str) -> Option<Arc<DeploymentPrice>> {
        self.by_deployment.get(deployment).cloned()
    }
}

fn deployments(catalog: &Catalog) -> impl Iterator<Item = &Arc<Deployment>> {
    catalog.models.values().flat_map(|m| m.deployments.iter())
}

/// Prices and markups, shared by every worker.
pub struct Pricing {
    book: RwLock<Arc<PriceBook>>,
    /// Held by whoever loads and installs a new book (the periodic refresh, a reload), so that
    /// one never installs a book made for a catalog the other has replaced.
    pub updates: tokio::sync::Mutex<()>,
    default_markup: Markup,
    plans: HashMap<String, Markup>,
    pub default_max_output_tokens: u64,
    pub image_token_allowance: u64,
}

impl Pricing {
    /// Markups are validated with the settings; an invalid one here is a start-up error.
    pub fn new(settings: &BillingSettings, book: PriceBook) -> anyhow::Result<Self> {
        let markup = |s: &str| parse_rate(s).map(Markup);
        let mut plans = HashMap::new();
        for (name, p) in &settings.plans {
            plans.insert(name.clone(), markup(&p.markup_percent)?);
        }
        Ok(Self {
            book: RwLock::new(Arc::new(book)),
            updates: tokio::sync::Mutex::new(()),
            default_markup: markup(&settings.default_markup_percent)?,
            plans,
            default_max_output_tokens: settings.default_max_output_tokens,
            image_token_allowance: settings.image_token_allowance,
        })
    }

    pub fn book(&self) -> Arc<PriceBook> {
        self.book
            .read()
            .map(|b| b.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn replace(&self, book: PriceBook) {
        match self.book.write() {
            Ok(mut b) => *b = Arc::new(book),
            Err(p) => *p.into_inner() = Arc::new(book),
        }
    }

    pub fn price_of(&self, deployment: &str) -> Option<Arc<DeploymentPrice>> {
        self.book().by_deployment.get(deployment).cloned()
    }

    /// The tenant's markup: its own, else its plan's, else the default.
    pub fn markup(&self, tenant: &Tenant) -> Markup {
        tenant
            .markup_percent
            .map(Markup)
            .or_else(|| {
                tenant
                    .plan
                    .as_ref()
                    .and_then(|p| self.plans.get(p).copied())
            })
            .unwrap_or(self.default_markup)
    }

    /// The most the tenant can be charged for a request that any of `deployments` may serve:
    /// the prompt bounded by its body size in bytes (a token is at least one byte of text) plus
    /// an allowance per image part, each of its `completions` by `max_tokens`, else the model's
    /// output limit, else the configured default. `Ok(None)` when no deployment is priced (served
    /// unbilled, by the operator's choice); an error when the amount cannot be represented, which
    /// refuses the request (it never means "no hold").
    pub fn hold_amount<'d>(
        &self,
        book: &PriceBook,
        deployments: impl Iterator<Item = &'d Arc<Deployment>>,
        request: &RequestShape,
        markup: Markup,
    ) -> Result<Option<Nanos>, MoneyError> {
        let prompt = u64::try_from(request.body_len)
            .ok()
            .and_then(|b| {
                request
                    .images
                    .checked_mul(self.image_token_allowance)
                    .and_then(|i| b.checked_add(i))
            })
            .ok_or_else(|| MoneyError::OutOfRange("the prompt bound".into()))?;
        let mut most: Option<Nanos> = None;
        for d in deployments {
            let Some(p) = book.by_deployment.get(&d.name) else {
                continue;
            };
            let bound = Bound {
                prompt_tokens: prompt,
                output_tokens: request
                    .max_output
                    .or(p.max_output_tokens)
                    .unwrap_or(self.default_max_output_tokens),
                completions: request.completions,
                images: request.images,
            };
            let amount = max_charge(&p.sheet, &bound, markup)?;
            most = Some(most.map_or(amount, |m| m.max(amount)));
        }
        Ok(most)
    }
}

/// What bounds a request's cost, read from its body.
#[derive(Debug, Clone, Copy)]
pub struct RequestShape {
    pub body_len: usize,
    pub images: u64,
    /// `max_tokens` (or `max_completion_tokens`), if the client set one.
    pub max_output: Option<u64>,
    /// Completions generated (`n`, `best_of`, prompts): at least 1.
    pub completions: u64,
}

/// What `usage` costs on `price`, and its tenant price under `markup`; an error when either is
/// too large to represent (the meter then fails the response: never free, never saturated).
pub fn charge(
    price: &DeploymentPrice,
    usage: &Usage,
    images: u64,
    markup: Markup,
) -> Result<Charge, MoneyError> {
    let (cost, price_nanos) =
        tollgate_domain::pricing::charge(&price.sheet, usage, images, markup)?;
    Ok(Charge {
        version: price.version,
        cost,
        price: price_nanos,
    })
}

/// Looks for a new catalog version every `every` and swaps it in.
pub fn spawn_refresh(
    pricing: Arc<Pricing>,
    store: Store,
    live: Arc<crate::catalog::live::LiveCatalog>,
    every: std::time::Duration,
) {
    if every.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let latest = match store.latest_price_version().await {
                Ok(v) => v.map(|v| v.version),
                Err(e) => {
                    tracing::warn!(error = %e, "price catalog refresh failed");
                    continue;
                }
            };
            if latest == pricing.book().version {
                continue;
            }
            let _one = pricing.updates.lock().await;
            match PriceBook::load(&store, &live.current()).await {
                Ok(book) => {
                    tracing::info!(version = ?book.version, unpriced = ?book.unpriced, "price catalog version loaded");
                    pricing.replace(book);
                }
                Err(e) => tracing::warn!(error = %e, "price catalog refresh failed"),
            }
        }
    });
}
