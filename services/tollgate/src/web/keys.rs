//! A tenant's keys from `/admin/tenants/{id}`: create (the secret is shown on the answer to the
//! form, once, and never again), disable, enable, revoke, rotate.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tollgate_domain::tenant::KeyStatus;
use tollgate_store::ApiKeyRecord;

use super::error::UiError;
use super::guard::{self, SignedOperator};
use super::render;
use super::tenants::see_other;
use crate::state::AppState;
use crate::tenancy::{self, KeyView, NewKey};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/{tenant}/keys", web::post().to(create))
        .route("/tenants/{tenant}/keys/{key}/{action}", web::post().to(act));
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyForm {
    name: String,
    allowed_models: String,
    requests_per_minute: String,
    tokens_per_minute: String,
    monthly_spend_usd: String,
}

impl KeyForm {
    fn parse(&self) -> Result<NewKey, UiError> {
        let mut limits = Map::new();
        for (field, v) in [
            ("requests_per_minute", &self.requests_per_minute),
            ("tokens_per_minute", &self.tokens_per_minute),
        ] {
            if !v.trim().is_empty() {
                let n: u64 = v
                    .trim()
                    .parse()
                    .map_err(|_| UiError::BadRequest(format!("{field} must be a whole number")))?;
                limits.insert(field.into(), json!(n));
            }
        }
        if !self.monthly_spend_usd.trim().is_empty() {
            limits.insert(
                "monthly_spend_usd".into(),
                json!(self.monthly_spend_usd.trim()),
            );
        }
        let models: Vec<&str> = self
            .allowed_models
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        let mut body = Map::new();
        body.insert("name".into(), json!(self.name.trim()));
        body.insert("limits".into(), Value::Object(limits));
        if !models.is_empty() {
            body.insert("allowed_models".into(), json!(models));
        }
        serde_json::from_value(Value::Object(body)).map_err(|e| UiError::BadRequest(e.to_string()))
    }
}

/// The page that shows a new key's secret: the only time it is ever shown.
fn created(
    op: &SignedOperator,
    record: ApiKeyRecord,
    secret: &str,
) -> Result<HttpResponse, UiError> {
    Ok(render::page(
        "key_created.html",
        minijinja::context! {
            ui => op.chrome("/admin/tenants"), layout => "base.html",
            back => format!("/admin/tenants/{}", record.tenant_id),
            key => KeyView::from(record), secret => secret,
        },
    )?)
}

/// `POST /admin/tenants/{id}/keys`.
async fn create(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (op, form): (_, KeyForm) = guard::admin_form(&req, &state, &body).await?;
    let new = form.parse()?;
    let (record, secret) = tenancy::create_key(&state.store, &op.name, &path, new).await?;
    created(&op, record, &secret)
}

/// `POST /admin/tenants/{id}/keys/{key}/{disable|enable|revoke|rotate}`.
async fn act(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let (op, _): (_, serde::de::IgnoredAny) = guard::admin_form(&req, &state, &body).await?;
    let (tenant, key, action) = path.into_inner();
    let actor = op.name.clone();
    let status = match action.as_str() {
        "disable" => KeyStatus::Disabled,
        "enable" => KeyStatus::Active,
        "revoke" => KeyStatus::Revoked,
        "rotate" => {
            let (record, secret) = tenancy::rotate_key(&state.store, &actor, &tenant, &key).await?;
            return created(&op, record, &secret);
        }
        _ => return Err(UiError::NotFound("action")),
    };
    tenancy::set_key_status(&state.store, &actor, &tenant, &key, status).await?;
    Ok(see_other(&format!("/admin/tenants/{tenant}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_form_is_the_apis_body() {
        let f = KeyForm {
            name: "ci".into(),
            allowed_models: "gpt-4o, ".into(),
            requests_per_minute: "10".into(),
            monthly_spend_usd: "5".into(),
            ..KeyForm::default()
        };
        let k = f.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.name, "ci");
        assert_eq!(k.allowed_models, Some(vec!["gpt-4o".to_owned()]));
        assert_eq!(k.limits.requests_per_minute, Some(10));
        assert_eq!(k.limits.monthly_spend_usd.map(|n| n.0), Some(5_000_000_000));
        let bad = KeyForm {
            tokens_per_minute: "-1".into(),
            ..KeyForm::default()
        };
        assert!(bad.parse().is_err());
    }
}
