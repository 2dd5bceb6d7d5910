//! The tenant form: its fields as the browser posts them, turned into the admin API's own body
//! (`NewTenant`, `TenantPatch`) so the same parsing and checks apply to both.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tollgate_store::Tenant;

use super::error::UiError;

/// Every field is text as posted; empty means "not set".
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TenantForm {
    pub name: String,
    pub billing_mode: String,
    pub credit_limit_usd: String,
    pub markup_percent: String,
    pub plan: String,
    pub requests_per_minute: String,
    pub tokens_per_minute: String,
    pub max_concurrent: String,
    pub daily_spend_usd: String,
    pub monthly_spend_usd: String,
    pub total_spend_usd: String,
    pub allowed_models: String,
    pub allowed_providers: String,
    pub allowed_regions: String,
    pub zero_retention_only: Option<String>,
    pub billing_anchor_day: String,
    pub billing_time_zone: String,
}

fn text(v: &str) -> Option<&str> {
    let v = v.trim();
    (!v.is_empty()).then_some(v)
}

fn number(field: &str, v: &str) -> Result<Option<u64>, UiError> {
    text(v)
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| UiError::BadRequest(format!("{field} must be a whole number")))
        })
        .transpose()
}

/// A comma-separated list; empty means no restriction.
fn list(v: &str) -> Option<Vec<String>> {
    let items: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

impl TenantForm {
    fn limits(&self) -> Result<Value, UiError> {
        let mut m = Map::new();
        for (field, v) in [
            ("requests_per_minute", &self.requests_per_minute),
            ("tokens_per_minute", &self.tokens_per_minute),
            ("max_concurrent", &self.max_concurrent),
        ] {
            if let Some(n) = number(field, v)? {
                m.insert(field.into(), json!(n));
            }
        }
        for (field, v) in [
            ("daily_spend_usd", &self.daily_spend_usd),
            ("monthly_spend_usd", &self.monthly_spend_usd),
            ("total_spend_usd", &self.total_spend_usd),
        ] {
            if let Some(t) = text(v) {
                m.insert(field.into(), json!(t));
            }
        }
        Ok(Value::Object(m))
    }

    fn policy(&self) -> Value {
        let mut m = Map::new();
        for (field, v) in [
            ("allowed_models", &self.allowed_models),
            ("allowed_providers", &self.allowed_providers),
            ("allowed_regions", &self.allowed_regions),
        ] {
            if let Some(items) = list(v) {
                m.insert(field.into(), json!(items));
            }
        }
        m.insert(
            "zero_retention_only".into(),
            json!(self.zero_retention_only.is_some()),
        );
        Value::Object(m)
    }

    /// The credit limit in nanodollars, from dollars.
    fn credit_limit(&self) -> Result<Value, UiError> {
        match text(&self.credit_limit_usd) {
            None => Ok(Value::Null),
            Some(t) => tollgate_domain::money::Nanos::parse_usd(t)
                .map(|n| json!(n.0))
                .map_err(|e| UiError::BadRequest(format!("credit limit: {e}"))),
        }
    }

    /// The body of "update a tenant": every field of the form, an empty one clearing it.
    pub(crate) fn body(&self) -> Result<Map<String, Value>, UiError> {
        let opt = |v: &str| text(v).map_or(Value::Null, |t| json!(t));
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name.trim()));
        if let Some(mode) = text(&self.billing_mode) {
            m.insert("billing_mode".into(), json!(mode));
        }
        m.insert("credit_limit_units".into(), self.credit_limit()?);
        m.insert("markup_percent".into(), opt(&self.markup_percent));
        m.insert("plan".into(), opt(&self.plan));
        m.insert("limits".into(), self.limits()?);
        m.insert("policy".into(), self.policy());
        if let Some(day) = number("billing anchor day", &self.billing_anchor_day)? {
            m.insert("billing_anchor_day".into(), json!(day));
        }
        if let Some(zone) = text(&self.billing_time_zone) {
            m.insert("billing_time_zone".into(), json!(zone));
        }
        Ok(m)
    }

    /// Read as `T` (the API's body type), so its own errors name the field.
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, UiError> {
        let mut body = self.body()?;
        // A new tenant has nothing to clear: absent, not null.
        body.retain(|_, v| !v.is_null());
        serde_json::from_value(Value::Object(body)).map_err(|e| UiError::BadRequest(e.to_string()))
    }

    /// The patch body, nulls included (they clear).
    pub(crate) fn patch<T: serde::de::DeserializeOwned>(&self) -> Result<T, UiError> {
        serde_json::from_value(Value::Object(self.body()?))
            .map_err(|e| UiError::BadRequest(e.to_string()))
    }

    /// The form filled with a tenant's current values.
    pub(crate) fn of(t: &Tenant) -> Self {
        let usd =
            |n: Option<tollgate_domain::money::Nanos>| n.map(|n| n.to_string()).unwrap_or_default();
        let join = |v: &Option<Vec<String>>| v.as_ref().map(|v| v.join(", ")).unwrap_or_default();
        let num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        Self {
            name: t.name.clone(),
            billing_mode: serde_json::to_value(t.billing_mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            credit_limit_usd: usd(t.credit_limit_units.map(tollgate_domain::money::Nanos)),
            markup_percent: t.markup_percent.map(|d| d.to_string()).unwrap_or_default(),
            plan: t.plan.clone().unwrap_or_default(),
            requests_per_minute: num(t.limits.requests_per_minute),
            tokens_per_minute: num(t.limits.tokens_per_minute),
            max_concurrent: num(t.limits.max_concurrent.map(u64::from)),
            daily_spend_usd: usd(t.limits.daily_spend_usd),
            monthly_spend_usd: usd(t.limits.monthly_spend_usd),
            total_spend_usd: usd(t.limits.total_spend_usd),
            allowed_models: join(&t.policy.allowed_models),
            allowed_providers: join(&t.policy.allowed_providers),
            allowed_regions: join(&t.policy.allowed_regions),
            zero_retention_only: t.policy.zero_retention_only.then(|| "on".into()),
            billing_anchor_day: t.billing_anchor_day.to_string(),
            billing_time_zone: t.billing_time_zone.clone(),
        }
    }

    /// The values for the template.
    pub(crate) fn view(&self) -> minijinja::Value {
        minijinja::context! {
            name => self.name, billing_mode => self.billing_mode,
            credit_limit_usd => self.credit_limit_usd, markup_percent => self.markup_percent,
            plan => self.plan, requests_per_minute => self.requests_per_minute,
            tokens_per_minute => self.tokens_per_minute, max_concurrent => self.max_concurrent,
            daily_spend_usd => self.daily_spend_usd, monthly_spend_usd => self.monthly_spend_usd,
            total_spend_usd => self.total_spend_usd, allowed_models => self.allowed_models,
            allowed_providers => self.allowed_providers, allowed_regions => self.allowed_regions,
            zero_retention_only => self.zero_retention_only.is_some(),
            billing_anchor_day => self.billing_anchor_day, billing_time_zone => self.billing_time_zone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{NewTenant, TenantPatch};

    fn form() -> TenantForm {
        TenantForm {
            name: " Acme ".into(),
            billing_mode: "postpaid".into(),
            credit_limit_usd: "100".into(),
            requests_per_minute: "60".into(),
            monthly_spend_usd: "12.50".into(),
            allowed_models: "gpt-4o, claude-3 ,".into(),
            ..TenantForm::default()
        }
    }

    #[test]
    fn a_form_is_the_apis_body() {
        let t: NewTenant = form().parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.name, "Acme");
        assert_eq!(t.credit_limit_units, Some(100_000_000_000));
        assert_eq!(t.limits.requests_per_minute, Some(60));
        assert_eq!(
            t.limits.monthly_spend_usd.map(|n| n.0),
            Some(12_500_000_000)
        );
        assert_eq!(
            t.policy.allowed_models,
            Some(vec!["gpt-4o".to_owned(), "claude-3".to_owned()])
        );
        assert_eq!(t.markup_percent, None);
    }

    #[test]
    fn an_empty_field_clears_in_a_patch_and_bad_numbers_are_refused() {
        let p: TenantPatch = form().patch().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.markup_percent, Some(None));
        assert_eq!(p.plan, Some(None));
        let bad = TenantForm {
            requests_per_minute: "sixty".into(),
            ..form()
        };
        assert!(matches!(
            bad.parse::<NewTenant>(),
            Err(UiError::BadRequest(_))
        ));
        let bad = TenantForm {
            monthly_spend_usd: "lots".into(),
            ..form()
        };
        assert!(matches!(
            bad.parse::<NewTenant>(),
            Err(UiError::BadRequest(_))
        ));
    }
}
