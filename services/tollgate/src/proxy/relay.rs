//! The relay phase: the response to the client, whole (settled first: the record and its ledger
//! postings are committed before the client sees it) or streamed ([`super::stream`], which
//! settles when the stream ends); and the response when no attempt succeeded.

use actix_web::http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use tollgate_domain::RequestEnvelope;
use tollgate_providers::anthropic::inbound;
use tollgate_store::Outcome;

use super::context::{AttemptLog, ClientWire, RequestCtx};
use super::stream;
use super::upstream::{Failure, Served};
use crate::admission::headers::rate_headers;
use crate::catalog::Deployment;
use crate::error::ApiError;
use crate::routing::Candidate;

const ATTEMPT_LOG: HeaderName = HeaderName::from_static("x-tollgate-attempt-log");

impl RequestCtx {
    /// The relay phase for a served request.
    pub(super) async fn relay(
        mut self: Box<Self>,
        candidate: &Candidate<'_>,
        served: Served,
        envelope: &RequestEnvelope<'_>,
        log: &AttemptLog,
    ) -> Result<HttpResponse, ApiError> {
        let mut res = HttpResponse::Ok();
        served_by(&mut res, candidate.deployment, self.attempts());
        res.insert_header(("x-tollgate-model", candidate.model.name.as_str()));
        if log.enabled {
            if let Ok(v) = HeaderValue::from_str(&log.text) {
                res.insert_header((ATTEMPT_LOG, v));
            }
        }
        if let Some(t) = &self.rate {
            rate_headers(&mut res, t);
        }
        match served {
            Served::Complete { body, usage } => {
                self.first_content();
                match usage {
                    Some(u) => self.set_usage(u),
                    None => self.produced(&body),
                }
                self.respond_whole(res, body, envelope.wants_cost()).await
            }
            Served::Stream { upstream, prelude } => {
                res.insert_header((
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream; charset=utf-8"),
                ));
                res.insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")));
                let wants_usage = envelope.client_wants_usage();
                let relay =
                    stream::Relay::new(upstream, prelude, wants_usage, envelope.wants_cost(), self);
                Ok(res.streaming(relay.into_stream()))
            }
        }
    }

    /// Settles a complete response and answers it once its record is committed.
    async fn respond_whole(
        mut self: Box<Self>,
        mut res: HttpResponseBuilder,
        body: Bytes,
        wants_cost: bool,
    ) -> Result<HttpResponse, ApiError> {
        let committed = self.settle(Outcome::Ok, 200, None);
        let cost = self.quote();
        // Durable before the client sees the response: record and postings committed.
        if let Some(rx) = committed {
            if !crate::request_log::committed(rx).await {
                return Err(ApiError::MeteringFailed);
            }
        }
        if let Some(cost) = cost {
            if let Ok(v) = HeaderValue::from_str(&cost.to_string()) {
                res.insert_header((HeaderName::from_static("x-tollgate-cost"), v));
            }
        }
        let body = match (&self.wire, cost) {
            (ClientWire::Anthropic { model }, _) => anthropic_body(&body, model)?,
            (ClientWire::OpenAi, Some(cost)) if wants_cost => with_cost(body, cost),
            (ClientWire::OpenAi, _) => body,
        };
        res.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        Ok(res.body(body))
    }

    /// No attempt succeeded: settles the request as an error and answers it (with its attempt
    /// log when asked for).
    pub(super) fn failed(
        mut self: Box<Self>,
        failure: Failure,
        log: &AttemptLog,
    ) -> Result<HttpResponse, ApiError> {
        let err = match failure {
            Failure::Upstream(error) => ApiError::Upstream {
                error,
                attempts: self.attempts(),
            },
            Failure::Saturated => ApiError::DeploymentsSaturated,
        };
        let code = match &err {
            ApiError::Upstream { error, .. } => error.code(),
            _ => "deployments_saturated",
        };
        let status = actix_web::ResponseError::status_code(&err).as_u16();
        let _ = self.settle(Outcome::Error, status, Some(code));
        if !log.enabled {
            return Err(err);
        }
        let mut res = match self.wire {
            ClientWire::OpenAi => actix_web::ResponseError::error_response(&err),
            ClientWire::Anthropic { .. } => err.anthropic_response(),
        };
        if let Ok(v) = HeaderValue::from_str(&log.text) {
            res.headers_mut().insert(ATTEMPT_LOG, v);
        }
        Ok(res)
    }
}

/// An OpenAI chat completion as an Anthropic Messages response (the record is already
/// committed: a body that cannot be translated is a 500).
fn anthropic_body(body: &[u8], model: &str) -> Result<Bytes, ApiError> {
    let translated = serde_json::from_slice::<serde_json::Value>(body)
        .map_err(|e| e.to_string())
        .and_then(|v| inbound::from_openai_response(&v, model).map_err(|e| e.to_string()))
        .map_err(ApiError::Internal)?;
    Ok(Bytes::from(translated.to_string()))
}

/// A response body with `"cost": <dollars>` first in its `usage` object.
fn with_cost(body: Bytes, cost: tollgate_domain::money::Nanos) -> Bytes {
    const USAGE: &[u8] = b"\"usage\":{";
    match memchr::memmem::rfind(&body, USAGE) {
        Some(at) => {
            let at = at + USAGE.len();
            let mut out = Vec::with_capacity(body.len() + 32);
            out.extend_from_slice(&body[..at]);
            out.extend_from_slice(format!("\"cost\":{cost},").as_bytes());
            out.extend_from_slice(&body[at..]);
            Bytes::from(out)
        }
        None => body,
    }
}

/// Response headers saying what served the request.
fn served_by(res: &mut HttpResponseBuilder, d: &Deployment, attempts: u32) {
    res.insert_header(("x-tollgate-provider", d.headers.provider.clone()));
    res.insert_header(("x-tollgate-deployment", d.headers.deployment.clone()));
    if let Some(v) = &d.headers.region {
        res.insert_header(("x-tollgate-region", v.clone()));
    }
    if let Some(v) = &d.headers.version {
        res.insert_header(("x-tollgate-model-version", v.clone()));
    }
    res.insert_header(("x-tollgate-attempts", HeaderValue::from(attempts)));
}
