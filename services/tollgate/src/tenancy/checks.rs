//! The rules a tenant's or key's fields must follow, checked before anything is stored.

use super::error::TenancyError;

/// Checks a key's default routing preferences (the shape of a request's `provider` object).
pub(super) fn check_routing(routing: &Option<serde_json::Value>) -> Result<(), TenancyError> {
    if let Some(v) = routing {
        tollgate_domain::routing::ProviderPrefs::parse(&v.to_string())
            .map_err(|e| TenancyError::Invalid(format!("routing: {}", e.message)))?;
    }
    Ok(())
}

/// A billing period rule: an anchor day 1–31 and a time zone the bundled database knows.
pub(super) fn check_period(anchor_day: u8, time_zone: &str) -> Result<(), TenancyError> {
    tollgate_domain::invoice::period::PeriodRule::new(anchor_day, time_zone)
        .map(|_| ())
        .map_err(|e| TenancyError::Invalid(e.to_string()))
}

pub(super) fn check_markup(m: Option<rust_decimal::Decimal>) -> Result<(), TenancyError> {
    if m.is_some_and(|m| m.is_sign_negative() && !m.is_zero()) {
        return Err(TenancyError::Invalid(
            "markup_percent must not be negative".into(),
        ));
    }
    Ok(())
}

pub(super) fn check_name(name: &str) -> Result<String, TenancyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(TenancyError::Invalid(
            "name must be 1-200 printable characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// A tenant's billing details: lengths and an email's shape.
pub(super) fn check_billing_details(
    d: &tollgate_domain::tenant::BillingDetails,
) -> Result<(), TenancyError> {
    d.check().map_err(TenancyError::Invalid)
}
