//! Builds the [`Catalog`] from the settings, one section at a time, reporting every problem.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderValue;
use bytes::Bytes;
use http::Uri;
use sha2::{Digest, Sha256};
use tollgate_domain::{Endpoint, EnvelopeLimits, ModelName};
use tollgate_providers::{Preset, ProviderTarget, Timeouts};

use super::{endpoint_index, Catalog, Deployment, DeploymentHeaders, PublicModel};
use crate::settings::env::Environment;
use crate::settings::{DeploymentSettings, ProviderSettings, Settings};

/// Builds a [`Catalog`] while validation collects errors.
pub(crate) struct CatalogBuilder {
    defaults: Timeouts,
    providers: HashMap<String, Arc<ProviderTarget>>,
    pub(super) deployments: HashMap<String, Arc<Deployment>>,
    models: HashMap<String, PublicModel>,
}

pub(super) type Report<'a> = &'a mut dyn FnMut(String, String);

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// A Bedrock provider's SigV4 signing: its region (configured, else from the base URL) and
/// credentials from the environment (`required` for real Bedrock; the mock takes unsigned
/// requests). Errors name the field and say why.
fn aws_signing(
    p: &crate::settings::ProviderSettings,
    base_url: &str,
    env: &Environment,
    required: bool,
) -> Result<Option<tollgate_providers::AwsSigning>, (&'static str, String)> {
    let var = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_owned());
    let access_var = var(&p.aws_access_key_env, "AWS_ACCESS_KEY_ID");
    let secret_var = var(&p.aws_secret_key_env, "AWS_SECRET_ACCESS_KEY");
    let token_var = var(&p.aws_session_token_env, "AWS_SESSION_TOKEN");
    let (access, secret) = match (env.get(&access_var), env.get(&secret_var)) {
        (Some(a), Some(s)) => (a, s),
        _ if !required => return Ok(None),
        (None, _) => {
            return Err((
                "aws_access_key_env",
                format!("environment variable {access_var} is not set"),
            ))
        }
        (_, None) => {
            return Err((
                "aws_secret_key_env",
                format!("environment variable {secret_var} is not set"),
            ))
        }
    };
    let region = match &p.aws_region {
        Some(r) => r.clone(),
        None => base_url
            .split("://")
            .nth(1)
            .and_then(|host| host.strip_prefix("bedrock-runtime."))
            .and_then(|rest| rest.split('.').next())
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .ok_or((
                "aws_region",
                "required unless the base URL is https://bedrock-runtime.REGION.amazonaws.com"
                    .to_owned(),
            ))?,
    };
    Ok(Some(tollgate_providers::AwsSigning {
        region,
        credentials: tollgate_providers::bedrock::sigv4::Credentials::new(
            access,
            secret,
            env.get(&token_var).map(str::to_owned),
        ),
    }))
}

/// A Vertex provider's service account, from its key file.
fn google_account(
    p: &crate::settings::ProviderSettings,
    env: &Environment,
) -> Result<tollgate_providers::google_auth::ServiceAccount, (&'static str, String)> {
    let path = match &p.google_credentials_file {
        Some(f) => f.clone(),
        None => {
            let var = p
                .google_credentials_env
                .clone()
                .unwrap_or_else(|| "GOOGLE_APPLICATION_CREDENTIALS".to_owned());
            env.get(&var).map(str::to_owned).ok_or((
                "google_credentials_file",
                format!("required for the vertex preset (or set {var} to the key file's path)"),
            ))?
        }
    };
    let json = std::fs::read_to_string(&path).map_err(|e| {
        (
            "google_credentials_file",
            format!("cannot read {path}: {e}"),
        )
    })?;
    tollgate_providers::google_auth::ServiceAccount::from_json(&json)
        .map_err(|e| ("google_credentials_file", e.to_string()))
}

/// The provider's key, from the variable it names (required by some presets).
fn api_key<'e>(
    p: &ProviderSettings,
    preset: &Preset,
    env: &'e Environment,
) -> Result<Option<&'e str>, (&'static str, String)> {
    match &p.api_key_env {
        Some(var) => match env.get(var) {
            Some(k) => Ok(Some(k)),
            None => Err((
                "api_key_env",
                format!("environment variable {var} is not set"),
            )),
        },
        None if preset.key_required => Err((
            "api_key_env",
            format!(
                "required for the {} preset (name the variable holding the key)",
                preset.name
            ),
        )),
        None => Ok(None),
    }
}

/// One provider's settings, checked so far.
struct Provider<'a> {
    name: &'a str,
    settings: &'a ProviderSettings,
    preset: &'static Preset,
    base_url: &'a str,
    key: Option<&'a str>,
    timeouts: Timeouts,
}

impl Provider<'_> {
    /// The provider as a target: URLs and headers prepared, AWS signing and Google accounts
    /// attached where its preset needs them.
    fn target(&self, env: &Environment) -> Result<ProviderTarget, (&'static str, String)> {
        let (p, preset) = (self.settings, self.preset);
        let headers: Vec<(String, String)> = p
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let aws = if preset.wire == tollgate_providers::Wire::Bedrock {
            aws_signing(p, self.base_url, env, preset.name == "bedrock")?
        } else {
            None
        };
        let target = ProviderTarget::new(
            self.name,
            preset,
            self.base_url,
            self.key,
            p.api_version.as_deref(),
            &headers,
            self.timeouts,
        )
        .map_err(|e| {
            let field = match e {
                tollgate_providers::TargetError::BadBaseUrl(_) => "base_url",
                tollgate_providers::TargetError::BadKey => "api_key_env",
                _ => "headers",
            };
            (field, e.to_string())
        })?;
        let target = match aws {
            Some(aws) => target.with_aws(aws),
            None => target,
        };
        if preset.name == "vertex" {
            return Ok(target.with_google(google_account(p, env)?));
        }
        Ok(target)
    }
}

/// The deployment's upstream URL per endpoint its provider serves.
fn uris(provider: &ProviderTarget, model: &str) -> Result<[Option<Uri>; 3], String> {
    let mut uris: [Option<Uri>; 3] = [None, None, None];
    for e in [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
    ] {
        if provider.preset().supports(e) {
            uris[endpoint_index(e)] = Some(provider.uri(e, model).map_err(|e| e.to_string())?);
        }
    }
    Ok(uris)
}

/// Checks a deployment's capabilities, concurrency and header-borne fields.
fn check_deployment(d: &DeploymentSettings, err: &mut dyn FnMut(&str, String)) {
    const CAPABILITIES: [&str; 4] = ["tools", "vision", "json", "json_schema"];
    for c in d.capabilities.iter().flatten() {
        if !CAPABILITIES.contains(&c.as_str()) {
            err(
                "capabilities",
                format!(
                    "unknown capability {c:?}; known: {}",
                    CAPABILITIES.join(", ")
                ),
            );
        }
    }
    if d.max_concurrency == Some(0) {
        err("max_concurrency", "must be positive".into());
    }
    for (field, v) in [("region", &d.region), ("version", &d.version)] {
        if v.as_deref()
            .is_some_and(|v| HeaderValue::from_str(v).is_err() || v.is_empty())
        {
            err(field, "must be a non-empty printable string".into());
        }
    }
}

/// The runtime deployment (its id shared across replicas is its name and a digest of where it
/// sends requests).
fn deployment(
    name: &str,
    d: &DeploymentSettings,
    provider: &Arc<ProviderTarget>,
    uris: [Option<Uri>; 3],
    routing: &crate::settings::RoutingSettings,
) -> Deployment {
    let upstream = uris
        .iter()
        .flatten()
        .next()
        .map(Uri::to_string)
        .unwrap_or_default();
    let digest = Sha256::digest(format!("{upstream}\n{}", d.model).as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Deployment {
        name: name.to_owned(),
        shared_id: format!("{name}:{hex}"),
        provider: provider.clone(),
        upstream_model: d.model.clone(),
        region: d.region.clone(),
        version: d.version.clone(),
        price: d.price.clone(),
        context_window: d.context_window,
        max_concurrency: d.max_concurrency,
        quantization: d.quantization.clone(),
        capabilities: d.capabilities.clone(),
        weight: d.weight,
        no_data_collection: d.data_collection
            == Some(tollgate_domain::routing::DataCollection::Deny)
            || d.zdr,
        zdr: d.zdr,
        state: Arc::new(crate::routing::health::DeploymentState::new(
            d.max_concurrency,
            routing,
        )),
        uris,
        headers: DeploymentHeaders {
            provider: header(provider.name()),
            deployment: header(name),
            region: d.region.as_deref().map(header),
            version: d.version.as_deref().map(header),
        },
    }
}

impl CatalogBuilder {
    pub(crate) fn new(s: &Settings) -> Self {
        let u = &s.upstream_defaults;
        Self {
            defaults: Timeouts {
                connect: Duration::from_millis(u.connect_timeout_ms),
                first_byte: Duration::from_millis(u.first_byte_timeout_ms),
                idle: Duration::from_millis(u.idle_timeout_ms),
                total: Duration::from_millis(u.total_timeout_ms),
            },
            providers: HashMap::new(),
            deployments: HashMap::new(),
            models: HashMap::new(),
        }
    }

    pub(crate) fn add_providers(&mut self, s: &Settings, env: &Environment, err: Report<'_>) {
        for (name, p) in &s.providers {
            let path = |field: &str| format!("providers.{name}.{field}");
            let Some(preset) = Preset::by_name(&p.preset) else {
                let known: Vec<_> = tollgate_providers::PRESETS.iter().map(|p| p.name).collect();
                err(
                    path("preset"),
                    format!("unknown preset {:?}; known: {}", p.preset, known.join(", ")),
                );
                continue;
            };
            let Some(base_url) = p.base_url.as_deref().or(preset.base_url) else {
                err(
                    path("base_url"),
                    format!("required for the {} preset", preset.name),
                );
                continue;
            };
            let key = match api_key(p, preset, env) {
                Ok(key) => key,
                Err((field, message)) => {
                    err(path(field), message);
                    continue;
                }
            };
            let timeouts = self.timeouts(p, &mut |field, message| err(path(field), message));
            let provider = Provider {
                name,
                settings: p,
                preset,
                base_url,
                key,
                timeouts,
            };
            match provider.target(env) {
                Ok(t) => {
                    self.providers.insert(name.clone(), Arc::new(t));
                }
                Err((field, message)) => err(path(field), message),
            }
        }
    }

    /// The default timeouts with the provider's own (each must be positive).
    fn timeouts(&self, p: &ProviderSettings, err: &mut dyn FnMut(&str, String)) -> Timeouts {
        let mut timeouts = self.defaults;
        for (field, value, slot) in [
            (
                "connect_timeout_ms",
                p.connect_timeout_ms,
                &mut timeouts.connect,
            ),
            (
                "first_byte_timeout_ms",
                p.first_byte_timeout_ms,
                &mut timeouts.first_byte,
            ),
            ("idle_timeout_ms", p.idle_timeout_ms, &mut timeouts.idle),
            ("total_timeout_ms", p.total_timeout_ms, &mut timeouts.total),
        ] {
            match value {
                Some(0) => err(field, "must be positive".into()),
                Some(ms) => *slot = Duration::from_millis(ms),
                None => {}
            }
        }
        timeouts
    }

    pub(crate) fn add_deployments(&mut self, s: &Settings, err: Report<'_>) {
        for (name, d) in &s.deployments {
            let path = |field: &str| format!("deployments.{name}.{field}");
            let Some(provider) = self.providers.get(&d.provider) else {
                if !s.providers.contains_key(&d.provider) {
                    err(
                        path("provider"),
                        format!("no provider named {:?} in [providers]", d.provider),
                    );
                }
                continue;
            };
            if d.model.is_empty() {
                err(path("model"), "must not be empty".into());
                continue;
            }
            let uris = match uris(provider, &d.model) {
                Ok(uris) => uris,
                Err(message) => {
                    err(path("model"), message);
                    continue;
                }
            };
            check_deployment(d, &mut |field, message| err(path(field), message));
            let dep = deployment(name, d, provider, uris, &s.routing);
            self.deployments.insert(name.clone(), Arc::new(dep));
        }
    }

    pub(crate) fn add_models(&mut self, s: &Settings, err: Report<'_>) {
        for (name, m) in &s.models {
            let path = |field: &str| format!("models.{name}{field}");
            let public = match ModelName::parse(name) {
                Ok(n) => n,
                Err(e) => {
                    err(path(""), e.to_string());
                    continue;
                }
            };
            if m.deployments.is_empty() {
                err(
                    path(".deployments"),
                    "must name at least one deployment".into(),
                );
                continue;
            }
            let mut deployments = Vec::with_capacity(m.deployments.len());
            for (i, d) in m.deployments.iter().enumerate() {
                if m.deployments[..i].contains(d) {
                    err(
                        path(&format!(".deployments[{i}]")),
                        format!("{d:?} is listed twice"),
                    );
                } else if let Some(dep) = self.deployments.get(d) {
                    deployments.push(dep.clone());
                } else if !s.deployments.contains_key(d) {
                    err(
                        path(&format!(".deployments[{i}]")),
                        format!("no deployment named {d:?} in [deployments]"),
                    );
                }
            }
            let json = serde_json::json!({
                "id": name,
                "object": "model",
                "created": m.created.unwrap_or(0),
                "owned_by": m.owned_by.as_deref().unwrap_or("tollgate"),
            });
            self.models.insert(
                name.clone(),
                PublicModel {
                    name: public,
                    deployments,
                    strategy: m.strategy.unwrap_or(s.routing.strategy),
                    json: Bytes::from(json.to_string()),
                },
            );
        }
    }

    /// The catalog, with the scalar limits copied from the settings (the builder made the graph).
    pub(crate) fn finish(
        self,
        s: &Settings,
        operator_key: Option<&str>,
        jwt_secret: Option<&str>,
    ) -> Catalog {
        let mut connect_timeouts: Vec<Duration> = self
            .providers
            .values()
            .map(|p| p.timeouts().connect)
            .collect();
        connect_timeouts.push(self.defaults.connect);
        connect_timeouts.sort();
        connect_timeouts.dedup();
        let longest_request = self
            .providers
            .values()
            .map(|p| p.timeouts().total)
            .chain([self.defaults.total])
            .max()
            .unwrap_or(self.defaults.total);
        let mut catalog = Catalog {
            models: self.models,
            models_json: Bytes::new(),
            limits: EnvelopeLimits {
                max_fields: s.limits.max_fields,
                max_messages: s.limits.max_messages,
                max_inputs: s.limits.max_inputs,
                max_depth: s.limits.max_depth,
            },
            max_body_bytes: s.server.max_body_bytes,
            body_read_timeout: Duration::from_millis(s.server.body_read_timeout_ms),
            max_attempts: s.upstream_defaults.max_attempts,
            pool_idle_timeout: Duration::from_millis(s.upstream_defaults.pool_idle_timeout_ms),
            pool_max_idle_per_host: s.upstream_defaults.pool_max_idle_per_host,
            connect_timeouts,
            operator_key_digest: operator_key.map(|k| Sha256::digest(k.as_bytes()).into()),
            metrics_token_digest: None,
            key_cache_ttl: Duration::from_millis(s.auth.key_cache_ttl_ms),
            longest_request,
            jwt_secret: jwt_secret.map(|k| crate::settings::Secret(k.to_owned())),
            routing: s.routing.clone(),
            invoices: crate::invoicing::terms::InvoiceTerms::from(&s.billing),
            stripe: None,
            ui: s.ui.clone(),
        };
        catalog.models_json = catalog.models_list(|_| true);
        catalog
    }
}
