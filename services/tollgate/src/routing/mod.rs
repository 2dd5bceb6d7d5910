//! The routing layer: which deployments may serve a request, and in what order.
//!
//! A plan is made once per request, before admission: the requested model (and its `models`
//! fallbacks), each model's deployments filtered by the tenant's policy (hard: allowed providers,
//! allowed regions, zero retention), then by the request's `provider` preferences (which only
//! narrow), then ranked: health first ([`Health`]), then `provider.order`, then the strategy
//! (`provider.sort`, a `:floor`/`:nitro` suffix, the model's or the default). The proxy walks the
//! plan with retries and fallbacks ([`crate::proxy`]).

pub mod health;
pub mod shared;

use std::fmt::Write as _;
use std::sync::Arc;

use rust_decimal::Decimal;
use tollgate_domain::routing::{split_suffix, ProviderPrefs, Sort};
use tollgate_domain::RequestEnvelope;

pub use health::{DeploymentState, Health, Lease};

use crate::auth::Caller;
use crate::catalog::{Catalog, Deployment, PublicModel};
use crate::error::ApiError;
use crate::pricing::Pricing;
use crate::settings::Strategy;

/// One deployment to try, and the public model it serves.
#[derive(Debug, Clone)]
pub struct Candidate<'c> {
    pub deployment: &'c Arc<Deployment>,
    pub model: &'c PublicModel,
}

/// The deployments to try, best first.
#[derive(Debug)]
pub struct Plan<'c> {
    pub candidates: Vec<Candidate<'c>>,
}

impl Plan<'_> {
    /// Every deployment of the plan (for holds: the most any of them can cost).
    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.candidates.iter().map(|c| c.deployment)
    }
}

/// Why deployments were left out, counted for the error that says why nothing fits.
#[derive(Debug, Default)]
struct Excluded {
    reasons: Vec<(&'static str, usize)>,
}

impl Excluded {
    fn add(&mut self, reason: &'static str) {
        match self.reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.reasons.push((reason, 1)),
        }
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for (i, (reason, n)) in self.reasons.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            let _ = write!(out, "{n} {reason}");
        }
        out
    }
}

/// Whether a `provider.only` / `ignore` / `order` entry names this deployment: its provider's
/// configured name, its provider's preset (`openai`, `azure`, …) or the deployment's own name.
fn names(d: &Deployment, entry: &str) -> bool {
    entry.eq_ignore_ascii_case(d.provider.name())
        || entry.eq_ignore_ascii_case(d.provider.preset().name)
        || entry == d.name
}

/// The first filter a deployment fails, if any.
fn exclusion(
    d: &Deployment,
    caller: &Caller,
    prefs: &ProviderPrefs,
    envelope: &RequestEnvelope<'_>,
    pricing: &Pricing,
) -> Option<&'static str> {
    policy_exclusion(d, caller)
        .or_else(|| prefs_exclusion(d, prefs, envelope))
        .or_else(|| price_exclusion(d, prefs, pricing))
}

/// The tenant's policy: allowed providers and regions, zero data retention.
fn policy_exclusion(d: &Deployment, caller: &Caller) -> Option<&'static str> {
    let Caller::Tenant(tk) = caller else {
        return None;
    };
    let policy = &tk.tenant.policy;
    if let Some(allowed) = &policy.allowed_providers {
        if !allowed.iter().any(|p| names(d, p)) {
            return Some("from providers the tenant's policy does not allow");
        }
    }
    if let Some(allowed) = &policy.allowed_regions {
        if !d
            .region
            .as_ref()
            .is_some_and(|r| allowed.iter().any(|a| a == r))
        {
            return Some("outside the regions the tenant's policy allows");
        }
    }
    if policy.zero_retention_only && !d.zdr {
        return Some("without zero data retention, which the tenant's policy requires");
    }
    None
}

/// The request's `provider` preferences, but its price ceiling.
fn prefs_exclusion(
    d: &Deployment,
    prefs: &ProviderPrefs,
    envelope: &RequestEnvelope<'_>,
) -> Option<&'static str> {
    if let Some(only) = &prefs.only {
        if !only.iter().any(|p| names(d, p)) {
            return Some("not in provider.only");
        }
    }
    if let Some(ignore) = &prefs.ignore {
        if ignore.iter().any(|p| names(d, p)) {
            return Some("in provider.ignore");
        }
    }
    if let Some(wanted) = &prefs.quantizations {
        if !d.quantization.as_ref().is_some_and(|q| wanted.contains(q)) {
            return Some("with another (or unknown) quantization than provider.quantizations");
        }
    }
    if let Some(wanted) = &prefs.versions {
        if !d.version.as_ref().is_some_and(|v| wanted.contains(v)) {
            return Some("with another (or unknown) model version than provider.versions");
        }
    }
    if prefs.data_collection == Some(tollgate_domain::routing::DataCollection::Deny)
        && !d.no_data_collection
    {
        return Some("that may collect data (provider.data_collection is deny)");
    }
    if prefs.zdr == Some(true) && !d.zdr {
        return Some("without zero data retention (provider.zdr)");
    }
    if prefs.require_parameters == Some(true) {
        let caps = d.capabilities.as_deref().unwrap_or_default();
        if envelope
            .needs()
            .names()
            .any(|n| !caps.iter().any(|c| c == n))
        {
            return Some("not known to support every parameter (provider.require_parameters)");
        }
    }
    None
}

/// `provider.max_price`: per million prompt or completion tokens, per request, per image.
fn price_exclusion(
    d: &Deployment,
    prefs: &ProviderPrefs,
    pricing: &Pricing,
) -> Option<&'static str> {
    let max = prefs.max_price.as_ref()?;
    let Some(price) = pricing.price_of(&d.name) else {
        return Some("without a known price (provider.max_price)");
    };
    let million = Decimal::from(1_000_000u32);
    let rates = &price.sheet.rates;
    let over = |limit: Option<Decimal>, price: Decimal| limit.is_some_and(|l| price > l);
    if over(max.prompt, rates.input * million)
        || over(max.completion, rates.output * million)
        || over(max.request, price.sheet.per_request)
        || over(max.image, price.sheet.per_image)
    {
        return Some("priced above provider.max_price");
    }
    None
}

/// Latency and throughput figures older than this are measured again (one request at a time).
const REMEASURE_MS: i64 = 60_000;

/// A cheap per-request random number in `[0, 1)` (for weighted ranking).
fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// The ranking key of a deployment under a measured strategy (smaller first; price is ranked
/// by [`price_key`]).
fn strategy_key(d: &Deployment, strategy: Strategy, now_ms: i64) -> f64 {
    match strategy {
        Strategy::Order => 0.0,
        // Ranked by [`price_key`], in exact integer nanodollars.
        Strategy::Price => 0.0,
        // A deployment without recent figures is explored with one request at a time: ranked
        // first while nothing of it is in flight, after the measured ones otherwise (so a burst
        // does not all land on an unknown, possibly slow, deployment).
        Strategy::Latency | Strategy::Throughput if d.state.unmeasured(now_ms, REMEASURE_MS) => {
            if d.state.in_flight() == 0 {
                f64::NEG_INFINITY
            } else {
                f64::MAX
            }
        }
        Strategy::Latency => d.state.ttft_p50_ms().map_or(0.0, f64::from),
        Strategy::Throughput => d.state.tps_p50_milli().map_or(0.0, |t| -f64::from(t)),
        // Efraimidis–Spirakis: the smallest -ln(u)/w wins with probability ∝ w.
        Strategy::Weighted => {
            let w = f64::from(d.weight.max(1));
            -(1.0 - unit_random()).ln() / w
        }
        Strategy::LeastBusy => f64::from(d.state.in_flight()),
    }
}

/// The expected cost of the request on `d` in nanodollars (exact, never a float), for the
/// `price` strategy; unpriced deployments last.
fn price_key(
    d: &Deployment,
    envelope: &RequestEnvelope<'_>,
    prompt_estimate: u64,
    pricing: &Pricing,
) -> i64 {
    pricing.price_of(&d.name).map_or(i64::MAX, |p| {
        let bound = tollgate_domain::pricing::Bound {
            prompt_tokens: prompt_estimate,
            output_tokens: envelope.max_output_tokens().unwrap_or(256),
            completions: envelope.completions(),
            images: envelope.image_parts(),
        };
        // A ranking key only (the hold is computed, and refused on overflow, separately).
        p.sheet
            .max_cost(&bound)
            .and_then(tollgate_domain::money::Nanos::from_usd)
            .map_or(i64::MAX, |n| n.0)
    })
}

/// A deployment's sort keys, in order: health, position in `provider.order`, expected price
/// (`price` strategy), the measured strategy's key, the configured position.
type Ranked<'c> = (Health, usize, i64, f64, usize, &'c Arc<Deployment>);

/// Makes the plan for a request, or says why no deployment may serve it.
pub fn plan<'c>(
    catalog: &'c Catalog,
    caller: &Caller,
    envelope: &RequestEnvelope<'_>,
    prefs: &ProviderPrefs,
    pricing: &Pricing,
    body_len: usize,
    now_ms: i64,
) -> Result<Plan<'c>, ApiError> {
    let models = requested_models(catalog, caller, envelope)?;
    let ranking = Ranking {
        caller,
        prefs,
        envelope,
        pricing,
        prompt_estimate: u64::try_from(body_len / 4).unwrap_or(u64::MAX),
        now_ms,
    };
    let mut excluded = Excluded::default();
    let mut candidates: Vec<Candidate<'c>> = Vec::new();
    for (model, suffix) in &models {
        let strategy = match prefs.sort.or(*suffix) {
            Some(Sort::Price) => Strategy::Price,
            Some(Sort::Latency) => Strategy::Latency,
            Some(Sort::Throughput) => Strategy::Throughput,
            None => model.strategy,
        };
        let mut ranked = ranking.rank(model, strategy, &mut excluded);
        if prefs.allow_fallbacks == Some(false) {
            if prefs.order.is_some() {
                ranked.retain(|r| r.1 != usize::MAX);
            } else {
                ranked.truncate(1);
            }
        }
        for r in ranked {
            if !candidates.iter().any(|c| Arc::ptr_eq(c.deployment, r.5)) {
                candidates.push(Candidate {
                    deployment: r.5,
                    model,
                });
            }
        }
    }
    if candidates.is_empty() {
        let names: Vec<&str> = models.iter().map(|(m, _)| m.name.as_str()).collect();
        return Err(ApiError::NoEligibleDeployment {
            model: names.join(", "),
            reasons: excluded.describe(),
        });
    }
    Ok(Plan { candidates })
}

/// The public models a request names (its model, then its fallback `models`), each with the
/// ranking its name's suffix asks for (`:floor`, `:nitro`).
fn requested_models<'c>(
    catalog: &'c Catalog,
    caller: &Caller,
    envelope: &RequestEnvelope<'_>,
) -> Result<Vec<(&'c PublicModel, Option<Sort>)>, ApiError> {
    let endpoint = envelope.endpoint();
    let requested = std::iter::once(envelope.model())
        .chain(envelope.fallback_models().iter().map(String::as_str));
    let mut models: Vec<(&'c PublicModel, Option<Sort>)> = Vec::new();
    for (i, name) in requested.enumerate() {
        // An exact name wins over a suffix reading (a model may be called `x:floor`).
        let (model, suffix) = match catalog.models.get(name) {
            Some(m) => (m, None),
            None => {
                let (base, suffix) = split_suffix(name);
                match catalog.models.get(base).filter(|_| suffix.is_some()) {
                    Some(m) => (m, suffix),
                    None => return Err(ApiError::ModelNotFound(name.to_owned())),
                }
            }
        };
        if !caller.may_use(model.name.as_str()) {
            return Err(ApiError::ModelNotFound(name.to_owned()));
        }
        if !model.serves(endpoint) {
            if i == 0 {
                return Err(ApiError::EndpointNotSupported {
                    model: model.name.to_string(),
                    endpoint: endpoint.path(),
                });
            }
            continue;
        }
        if !models.iter().any(|(m, _)| std::ptr::eq(*m, model)) {
            models.push((model, suffix));
        }
    }

    Ok(models)
}

/// What ranking a model's deployments reads.
struct Ranking<'r, 'e> {
    caller: &'r Caller,
    prefs: &'r ProviderPrefs,
    envelope: &'r RequestEnvelope<'e>,
    pricing: &'r Pricing,
    prompt_estimate: u64,
    now_ms: i64,
}

impl Ranking<'_, '_> {
    /// A model's eligible deployments with their sort keys, sorted (`excluded` counts the others).
    fn rank<'c>(
        &self,
        model: &'c PublicModel,
        strategy: Strategy,
        excluded: &mut Excluded,
    ) -> Vec<Ranked<'c>> {
        let (caller, prefs, envelope, pricing) =
            (self.caller, self.prefs, self.envelope, self.pricing);
        let (prompt_estimate, now_ms) = (self.prompt_estimate, self.now_ms);
        let endpoint = envelope.endpoint();
        let mut ranked: Vec<Ranked<'c>> = Vec::new();
        for (index, d) in model.deployments.iter().enumerate() {
            if d.uri(endpoint).is_none() {
                continue;
            }
            if let Some(reason) = exclusion(d, caller, prefs, envelope, pricing) {
                excluded.add(reason);
                continue;
            }
            let order = prefs
                .order
                .as_ref()
                .and_then(|o| o.iter().position(|p| names(d, p)))
                .unwrap_or(usize::MAX);
            let price = if strategy == Strategy::Price {
                price_key(d, envelope, prompt_estimate, pricing)
            } else {
                0
            };
            let key = strategy_key(d, strategy, now_ms);
            ranked.push((d.state.health(now_ms), order, price, key, index, d));
        }
        ranked.sort_by(|a, b| {
            (a.0, a.1, a.2)
                .cmp(&(b.0, b.1, b.2))
                .then(a.3.total_cmp(&b.3))
                .then(a.4.cmp(&b.4))
        });
        ranked
    }
}

/// Records an attempt's outcome on its deployment's breaker, and shares a transition.
pub fn report(d: &Deployment, sync: Option<&shared::HealthSync>, ok: bool, counts: bool) {
    if let Some(t) = d.state.record(tollgate_store::now_ms(), ok, counts) {
        match t {
            health::Transition::Opened { until_ms } => {
                tracing::warn!(deployment = %d.name, until_ms, "circuit opened");
            }
            health::Transition::Closed => tracing::info!(deployment = %d.name, "circuit closed"),
        }
        if let Some(s) = sync {
            s.publish(d, t);
        }
    }
}
