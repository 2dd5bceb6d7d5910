//! Building and running the application: store, migrations, request-log writer, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::{web, App, HttpMessage, HttpServer};
use anyhow::Context;
use tollgate_providers::UpstreamClient;
use tollgate_store::Store;

use crate::catalog::live::LiveCatalog;
use crate::catalog::Catalog;
use crate::request_log::RequestLogger;
use crate::routes;
use crate::settings::Settings;
use crate::state::AppState;

/// The running gateway: bound to its port, serving until stopped.
pub struct Application {
    server: Server,
    port: u16,
    host: String,
    logger: RequestLogger,
    writer: tokio::task::JoinHandle<()>,
    store: Store,
    state: web::Data<AppState>,
}

impl Application {
    /// Connects the store, applies migrations, binds the listener (port 0 picks a free one).
    pub async fn build(settings: &Settings, catalog: Catalog) -> anyhow::Result<Self> {
        let (state, writer) = app_state(settings, catalog).await?;
        crate::metrics::traffic::label_tenants(settings.metrics.tenant_labels);
        let (server, port) = server(settings, state.clone())?;
        Ok(Self {
            server,
            port,
            host: settings.server.host.clone(),
            logger: state.log.clone(),
            writer,
            store: state.store.clone(),
            state,
        })
    }

    /// Reloads the configuration on SIGHUP (see [`crate::reload`]).
    pub fn reload_on_sighup(&self, reloader: crate::reload::Reloader) {
        crate::reload::on_sighup(reloader, self.state.clone());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn address(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Serves until SIGTERM/SIGINT (in-flight requests drain), then flushes the request log.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.server.await;
        self.logger.shutdown();
        if let Err(e) = self.writer.await {
            tracing::error!(error = %e, "request log writer failed");
        }
        self.store.close().await;
        served.context("HTTP server")
    }
}

/// The state every worker shares: the store (migrated), the request-log writer (its task is
/// returned), the catalog, admission, pricing, budgets and the shared health.
pub async fn app_state(
    settings: &Settings,
    catalog: Catalog,
) -> anyhow::Result<(web::Data<AppState>, tokio::task::JoinHandle<()>)> {
    let url = settings.database.url.expose();
    let store = Store::connect(url, settings.database.max_connections)
        .await
        .with_context(|| format!("connecting to the database {}", tollgate_store::redact(url)))?;
    let applied = store.migrate().await.context("applying migrations")?;
    if !applied.is_empty() {
        tracing::info!(?applied, backend = store.backend(), "migrations applied");
    }
    let (logger, writer) = RequestLogger::start(store.clone());
    let live = Arc::new(LiveCatalog::new(catalog));
    let catalog = live.current();
    let admission = Arc::new(admission(settings, &catalog)?);
    let pricing = Arc::new(pricing(settings, &store, &catalog).await?);
    crate::pricing::spawn_refresh(
        pricing.clone(),
        store.clone(),
        live.clone(),
        Duration::from_secs(settings.billing.price_refresh_s),
    );
    let budget = Arc::new(budget(settings, &store, &admission, &catalog));
    crate::billing::spawn_expiry(store.clone(), Duration::from_secs(60));
    crate::invoicing::spawn_run(
        store.clone(),
        catalog.invoices.clone(),
        pricing.clone(),
        live.clone(),
    );
    crate::reconcile::spawn_daily(store.clone());
    let stripe = match catalog.stripe.clone() {
        Some(config) => {
            let stripe = std::sync::Arc::new(crate::stripe::Stripe::new(config)?);
            crate::stripe::push::spawn(store.clone(), stripe.clone());
            Some(stripe)
        }
        None => None,
    };
    let state = web::Data::new(AppState {
        stripe,
        health_sync: health_sync(settings, &live)?,
        keys: crate::key_cache::KeyCache::new(catalog.key_cache_ttl, 100_000),
        catalog: live,
        store,
        log: logger,
        admission,
        pricing,
        budget,
    });
    Ok((state, writer))
}

/// Budgets, on the admission's Redis when it has one.
fn budget(
    settings: &Settings,
    store: &Store,
    admission: &crate::admission::Admission,
    catalog: &Catalog,
) -> crate::budget::Budget {
    // No request outlives its attempts' total timeouts; a hold outlives that by a minute.
    let attempts = u32::try_from(catalog.max_attempts.max(1)).unwrap_or(u32::MAX);
    let hold_ttl = catalog.longest_request * attempts + Duration::from_secs(60);
    crate::budget::Budget::new(
        store.clone(),
        admission.redis().map(|r| {
            Arc::new(crate::budget::redis::RedisBudget::new(
                r,
                u64::try_from(hold_ttl.as_millis()).unwrap_or(u64::MAX),
                Duration::from_millis(settings.billing.redis_timeout_ms),
            ))
        }),
        settings.billing.on_redis_failure,
    )
}

/// Circuit states shared across replicas, when Redis is configured.
fn health_sync(
    settings: &Settings,
    live: &Arc<LiveCatalog>,
) -> anyhow::Result<Option<Arc<crate::routing::shared::HealthSync>>> {
    let Some(url) = &settings.quota.redis_url else {
        return Ok(None);
    };
    let timeout = Duration::from_millis(settings.quota.redis_timeout_ms.max(100));
    let sync = Arc::new(
        crate::routing::shared::HealthSync::new(url.expose(), timeout)
            .context("quota.redis_url")?,
    );
    crate::routing::shared::spawn(sync.clone(), live.clone());
    Ok(Some(sync))
}

/// The HTTP server on its listener (port 0 picks a free one), and the port it got.
fn server(settings: &Settings, state: web::Data<AppState>) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
        .with_context(|| format!("binding {}:{}", settings.server.host, settings.server.port))?;
    let port = listener.local_addr()?.port();
    let workers = match settings.server.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    // Connection pools are made for the start-up catalog's connect timeouts (a provider added by
    // a reload with a new one uses an existing pool until a restart).
    let catalog = state.catalog.current();
    let server = HttpServer::new(move || {
        // One connection pool per worker: no cross-thread contention on the request path.
        let client = UpstreamClient::new(
            &catalog.connect_timeouts,
            catalog.pool_idle_timeout,
            catalog.pool_max_idle_per_host,
        );
        // Each worker connects to Redis as it starts, not on its first request's clock.
        if let Some(redis) = state.admission.redis() {
            actix_web::rt::spawn(async move {
                if let Err(e) = redis.connection().await {
                    tracing::warn!(error = %e, "redis not reachable at worker start");
                }
            });
        }
        build_app(state.clone(), web::Data::new(client))
    })
    .workers(workers)
    .backlog(4096)
    .shutdown_timeout(settings.server.shutdown_timeout_s)
    .client_request_timeout(Duration::from_secs(10))
    // A client that closes its side of the connection has gone away: the dispatcher ends the
    // connection and drops the request's handler, which cancels its upstream call and gives
    // its concurrency slot back (the request is recorded as abandoned). With half-closed
    // connections allowed, a plain request would keep both until the upstream answered.
    .h1_allow_half_closed(false)
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .listen(listener)?
    .run();
    Ok((server, port))
}

/// Prices from the newest catalog version; deployments without one are served unbilled (or, with
/// `billing.require_prices`, refuse to start).
async fn pricing(
    settings: &Settings,
    store: &Store,
    catalog: &Catalog,
) -> anyhow::Result<crate::pricing::Pricing> {
    let book = crate::pricing::PriceBook::load(store, catalog)
        .await
        .context("loading the price catalog")?;
    if !book.unpriced.is_empty() {
        if settings.billing.require_prices {
            anyhow::bail!(
                "billing.require_prices: no price in catalog version {:?} for deployments {:?} (run `tollgate prices import`)",
                book.version,
                book.unpriced
            );
        }
        tracing::warn!(version = ?book.version, unpriced = ?book.unpriced, "deployments without a price are served unbilled");
    }
    crate::pricing::Pricing::new(&settings.billing, book)
}

/// Admission state: Redis when configured (slot leases outlive the longest request by a minute).
fn admission(
    settings: &Settings,
    catalog: &Catalog,
) -> anyhow::Result<crate::admission::Admission> {
    let q = &settings.quota;
    let redis = match &q.redis_url {
        None => None,
        Some(url) => {
            let lease = catalog.longest_request + Duration::from_secs(60);
            let redis = crate::admission::redis::RedisQuotas::new(
                url.expose(),
                Duration::from_millis(q.redis_timeout_ms),
                lease,
            )
            .context("quota.redis_url")?;
            tracing::info!("admission state in redis");
            Some(redis)
        }
    };
    Ok(crate::admission::Admission::new(redis, q.on_redis_failure))
}

/// The whole route tree with its middleware; used by the server and by tests.
pub fn build_app(
    state: web::Data<AppState>,
    client: web::Data<UpstreamClient>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let ui = state.catalog.load().ui.enabled;
    App::new()
        .app_data(state)
        .app_data(client)
        .wrap_fn(|req, srv| {
            // Every response, errors included, carries the request id.
            let id = crate::ids::new_request_id();
            let header = HeaderValue::from_str(id.as_str()).ok();
            req.extensions_mut().insert(id);
            let fut = actix_web::dev::Service::call(srv, req);
            async move {
                let mut res = fut.await?;
                if let Some(h) = header {
                    res.headers_mut().insert(
                        actix_web::http::header::HeaderName::from_static("x-request-id"),
                        h,
                    );
                }
                Ok(res)
            }
        })
        .configure(routes::health::configure)
        .configure(routes::metrics::configure)
        .configure(crate::stripe::webhook::configure)
        .service(
            web::scope("/v1")
                .configure(routes::completions::configure)
                .configure(routes::messages::configure)
                .configure(routes::models::configure)
                .configure(routes::me::configure),
        )
        .service(web::scope("/admin/api").configure(crate::admin::configure))
        .configure(|cfg| {
            if ui {
                crate::web::configure(cfg);
            }
        })
        .default_service(web::to(routes::unknown_url))
}
