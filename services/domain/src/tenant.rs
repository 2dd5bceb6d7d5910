//! Tenants and their keys, as the domain sees them.

use serde::{Deserialize, Serialize};

use crate::money::Nanos;

/// Whether a tenant may use the gateway.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

/// How a tenant pays: from a prepaid credit balance, or afterwards up to a credit limit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingMode {
    Prepaid,
    Postpaid,
}

/// A key's life: active, disabled (can be enabled again) or revoked (for good).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Disabled,
    Revoked,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Suspended]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

impl BillingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepaid => "prepaid",
            Self::Postpaid => "postpaid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Prepaid, Self::Postpaid]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Disabled, Self::Revoked]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// What a tenant may reach. `None` means no restriction of that kind.
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = Policy, description = "What a tenant may reach; an absent list means no restriction.")
)]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_providers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_regions: Option<Vec<String>>,
    #[serde(default)]
    pub zero_retention_only: bool,
}

/// Admission limits of a tenant or a key. `None` means unlimited.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Spend per UTC day (resets at 00:00 UTC), in dollars as a decimal string.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::money::usd_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]{1,9})?$"))]
    pub daily_spend_usd: Option<Nanos>,
    /// Spend per UTC calendar month (resets at 00:00 UTC on the 1st).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::money::usd_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]{1,9})?$"))]
    pub monthly_spend_usd: Option<Nanos>,
    /// Spend over the whole life of the key or tenant.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::money::usd_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]{1,9})?$"))]
    pub total_spend_usd: Option<Nanos>,
}

impl Limits {
    /// Whether any spend limit is set.
    pub fn has_spend_limit(&self) -> bool {
        self.daily_spend_usd.is_some()
            || self.monthly_spend_usd.is_some()
            || self.total_spend_usd.is_some()
    }
}

/// Who an invoice is addressed to: the tenant's billing details, each optional (an invoice
/// without a legal name shows the tenant's name).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Postal address, lines separated by newlines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// VAT or other tax identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
}

impl BillingDetails {
    /// At most 500 characters each (and 10 lines of address); an email has an `@`.
    pub fn check(&self) -> Result<(), String> {
        for (field, value) in [
            ("legal_name", &self.legal_name),
            ("email", &self.email),
            ("address", &self.address),
            ("tax_id", &self.tax_id),
        ] {
            if value.as_ref().is_some_and(|v| v.chars().count() > 500) {
                return Err(format!("billing_details.{field} is at most 500 characters"));
            }
        }
        if self
            .address
            .as_ref()
            .is_some_and(|a| a.lines().count() > 10)
        {
            return Err("billing_details.address is at most 10 lines".into());
        }
        if self.email.as_ref().is_some_and(|e| !e.contains('@')) {
            return Err("billing_details.email is not an email address".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn statuses_round_trip_through_text() {
        for s in [TenantStatus::Active, TenantStatus::Suspended] {
            assert_eq!(TenantStatus::parse(s.as_str()), Some(s));
        }
        for s in [BillingMode::Prepaid, BillingMode::Postpaid] {
            assert_eq!(BillingMode::parse(s.as_str()), Some(s));
        }
        for s in [KeyStatus::Active, KeyStatus::Disabled, KeyStatus::Revoked] {
            assert_eq!(KeyStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(KeyStatus::parse("deleted"), None);
    }

    #[test]
    fn policies_and_limits_are_strict_json() {
        let p: TenantPolicy = serde_json::from_str(r#"{"allowed_regions":["eu-west"]}"#).unwrap();
        assert_eq!(
            p.allowed_regions.as_deref(),
            Some(&["eu-west".to_owned()][..])
        );
        assert!(!p.zero_retention_only);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"allowed_regions":["eu-west"],"zero_retention_only":false}"#
        );
        assert!(serde_json::from_str::<TenantPolicy>(r#"{"allowed_regionz":[]}"#).is_err());
        let l: Limits = serde_json::from_str(r#"{"requests_per_minute":60}"#).unwrap();
        assert_eq!(
            l,
            Limits {
                requests_per_minute: Some(60),
                ..Limits::default()
            }
        );
        let l: Limits = serde_json::from_str(r#"{"daily_spend_usd":"1.50"}"#).unwrap();
        assert_eq!(l.daily_spend_usd, Some(Nanos(1_500_000_000)));
        assert!(l.has_spend_limit());
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"daily_spend_usd":"1.5"}"#
        );
        assert!(serde_json::from_str::<Limits>(r#"{"daily_spend_usd":"-1"}"#).is_err());
        assert!(serde_json::from_str::<Limits>(r#"{"daily_spend_usd":1.5}"#).is_err());
    }
}
