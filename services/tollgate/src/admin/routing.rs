//! Deployment health for operators: circuit state, error rate, latency percentiles, in flight.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::auth::Viewer;
use super::openapi::{LookupErrors, ViewErrors};
use crate::catalog::{Catalog, Deployment};
use crate::error::ApiError;
use crate::routing::health::StateReport;
use crate::state::AppState;

/// A deployment and its live state.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DeploymentState)]
pub(crate) struct DeploymentView<'a> {
    name: &'a str,
    provider: &'a str,
    upstream_model: &'a str,
    region: Option<&'a str>,
    version: Option<&'a str>,
    quantization: Option<&'a str>,
    /// The public models it serves.
    models: Vec<&'a str>,
    #[serde(flatten)]
    state: StateReport,
}

/// Every deployment (not paged).
#[derive(Serialize, utoipa::ToSchema)]
struct Deployments<'a> {
    /// Always `list`.
    object: &'static str,
    data: Vec<DeploymentView<'a>>,
}

pub(crate) fn view<'a>(catalog: &'a Catalog, d: &'a Deployment, now: i64) -> DeploymentView<'a> {
    let mut models: Vec<&str> = catalog
        .models
        .values()
        .filter(|m| m.deployments.iter().any(|x| std::ptr::eq(x.as_ref(), d)))
        .map(|m| m.name.as_str())
        .collect();
    models.sort_unstable();
    DeploymentView {
        name: &d.name,
        provider: d.provider.name(),
        upstream_model: &d.upstream_model,
        region: d.region.as_deref(),
        version: d.version.as_deref(),
        quantization: d.quantization.as_deref(),
        models,
        state: d.state.report(now),
    }
}

/// Every deployment's live state on this replica: circuit, error rate over the breaker window, latency percentiles, requests in flight
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/deployments",
    operation_id = "list_deployments",
    tag = "deployments",
    responses((status = 200, description = "Every deployment", body = Deployments), ViewErrors),
    security(("operatorJwt" = []))
)]
pub async fn list(_v: Viewer, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = tollgate_store::now_ms();
    let catalog = state.catalog.current();
    let data: Vec<DeploymentView<'_>> = catalog
        .deployments()
        .into_iter()
        .map(|d| view(&catalog, d, now))
        .collect();
    Ok(HttpResponse::Ok().json(Deployments {
        object: "list",
        data,
    }))
}

/// One deployment's live state on this replica
///
/// Role: viewer.
#[utoipa::path(
    get,
    path = "/deployments/{deployment}",
    operation_id = "get_deployment",
    tag = "deployments",
    params(("deployment" = String, Path, description = "Deployment name")),
    responses((status = 200, description = "OK", body = DeploymentView), LookupErrors),
    security(("operatorJwt" = []))
)]
pub async fn get(
    _v: Viewer,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = tollgate_store::now_ms();
    let catalog = state.catalog.current();
    let d = catalog
        .deployments()
        .into_iter()
        .find(|d| d.name == *path)
        .ok_or(ApiError::NotFound("deployment"))?;
    Ok(HttpResponse::Ok().json(view(&catalog, d, now)))
}
