//! The HTTP application: route tree, shared state and the server bound to its own listener.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web::{self, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError};

use crate::error::ApiError;
use crate::routes;
use crate::settings::Settings;
use crate::state::State;

/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Mounts every route (`/v1/...`, `/mock/...`) on `cfg`, sharing `state`.
pub fn configure(cfg: &mut web::ServiceConfig, state: Data<State>) {
    cfg.app_data(state)
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .service(
            web::scope("/v1")
                .configure(routes::chat::configure)
                .configure(routes::completions::configure)
                .configure(routes::embeddings::configure)
                .configure(routes::models::configure)
                .configure(routes::messages::configure)
                .configure(routes::gemini::configure_vertex),
        )
        .service(web::scope("/v1beta").configure(routes::gemini::configure))
        .service(web::scope("/v2").configure(routes::cohere::configure))
        .configure(routes::bedrock::configure)
        .service(web::scope("/mock").configure(routes::mock::configure))
        .default_service(web::to(unknown_url));
}

async fn unknown_url(req: HttpRequest) -> HttpResponse {
    let error = ApiError::UnknownUrl {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    };
    error.error_response()
}

/// A bound, not yet running server.
pub struct Application {
    address: SocketAddr,
    server: Server,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the server.
    pub fn build(settings: &Settings) -> io::Result<Self> {
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))?;
        let address = listener.local_addr()?;
        let state = Data::new(State::new());
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new().configure(move |cfg| configure(cfg, state))
        })
        .workers(settings.workers)
        .backlog(4096)
        .keep_alive(Duration::from_secs(75))
        // A client that closes its side is gone: drop its handler and body (so `in_flight`
        // drops) instead of waiting for a write to fail.
        .h1_allow_half_closed(false)
        // Hanging and stalled requests would otherwise hold up a SIGTERM for 30 s.
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        Ok(Self { address, server })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL, e.g. `http://127.0.0.1:43117`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Serves until the server stops (SIGINT/SIGTERM or a stop through its handle).
    pub async fn run_until_stopped(self) -> io::Result<()> {
        self.server.await
    }
}
