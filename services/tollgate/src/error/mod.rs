//! The edge: every failure becomes an OpenAI-shaped error body with its status, from one table.

pub mod anthropic;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tollgate_domain::money::Nanos;
use tollgate_domain::InvalidRequest;
use tollgate_providers::UpstreamError;

/// Everything the API can answer with instead of a result.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(#[from] InvalidRequest),
    #[error("missing API key")]
    MissingKey,
    #[error("invalid API key")]
    InvalidKey,
    #[error("expired API key")]
    ExpiredKey,
    #[error("rate limited: {}", .0.what)]
    RateLimited(crate::admission::Denied),
    #[error("quota store unavailable")]
    QuotaUnavailable,
    #[error("budget exceeded: {what}")]
    BudgetExceeded {
        what: &'static str,
        limit: tollgate_domain::money::Nanos,
        available: tollgate_domain::money::Nanos,
        amount: tollgate_domain::money::Nanos,
    },
    /// The request's maximum possible price is too large to represent, so it cannot be held.
    #[error("the maximum cost cannot be held: {0}")]
    HoldTooLarge(String),
    #[error("budget state unavailable: {0}")]
    BudgetUnavailable(String),
    #[error("the usage record could not be committed")]
    MeteringFailed,
    #[error("tenant suspended")]
    TenantSuspended,
    #[error("model {0:?} not found")]
    ModelNotFound(String),
    #[error("model {model:?} does not serve {endpoint}")]
    EndpointNotSupported {
        model: String,
        endpoint: &'static str,
    },
    #[error("no deployment of {model} may serve this request: {reasons}")]
    NoEligibleDeployment { model: String, reasons: String },
    #[error("every deployment is at its concurrency limit")]
    DeploymentsSaturated,
    #[error("unknown URL {method} {path}")]
    UnknownUrl { method: String, path: String },
    #[error("method {method} not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request body not received in time")]
    BodyTimeout,
    #[error("request body could not be read: {0}")]
    BodyRead(String),
    #[error("upstream failed after {attempts} attempt(s): {error}")]
    Upstream { error: UpstreamError, attempts: u32 },
    #[error("the store is not reachable")]
    NotReady,
    #[error("the admin API is disabled (no JWT secret configured)")]
    AdminDisabled,
    #[error("the admin API needs an operator token")]
    AdminTokenRequired,
    #[error("invalid operator token")]
    InvalidAdminToken,
    #[error("this operator's role may not do that")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid request: {0}")]
    AdminBadRequest(String),
    #[error("store error")]
    Store(#[from] tollgate_store::StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::budget::HoldRefusal> for ApiError {
    fn from(refusal: crate::budget::HoldRefusal) -> Self {
        use crate::budget::HoldRefusal;
        match refusal {
            HoldRefusal::Exceeded {
                what,
                limit,
                available,
                amount,
            } => ApiError::BudgetExceeded {
                what,
                limit,
                available,
                amount,
            },
            HoldRefusal::Unavailable(e) => ApiError::BudgetUnavailable(e),
        }
    }
}

impl From<crate::tenancy::TenancyError> for ApiError {
    fn from(e: crate::tenancy::TenancyError) -> Self {
        use crate::tenancy::TenancyError as T;
        match e {
            T::NotFound(what) => Self::NotFound(what),
            T::Conflict(m) => Self::Conflict(m),
            T::Invalid(m) => Self::AdminBadRequest(m),
            T::Randomness => Self::Internal("no OS randomness".into()),
            T::Store(e) => Self::Store(e),
        }
    }
}

/// One row of the error table: HTTP status, OpenAI `type`, stable `code`.
struct Row {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
}

const fn row(status: StatusCode, kind: &'static str, code: &'static str) -> Row {
    Row { status, kind, code }
}

impl ApiError {
    fn row(&self) -> Row {
        use StatusCode as S;
        match self {
            Self::InvalidRequest(e) => row(S::BAD_REQUEST, "invalid_request_error", e.code),
            Self::MissingKey => row(S::UNAUTHORIZED, "invalid_request_error", "missing_api_key"),
            Self::InvalidKey => row(S::UNAUTHORIZED, "invalid_request_error", "invalid_api_key"),
            Self::ExpiredKey => row(S::UNAUTHORIZED, "invalid_request_error", "expired_api_key"),
            Self::QuotaUnavailable
            | Self::BudgetExceeded { .. }
            | Self::HoldTooLarge(_)
            | Self::BudgetUnavailable(_)
            | Self::MeteringFailed
            | Self::RateLimited(_) => self.limit_row(),
            Self::TenantSuspended => row(S::FORBIDDEN, "invalid_request_error", "tenant_suspended"),
            Self::ModelNotFound(_) => row(S::NOT_FOUND, "invalid_request_error", "model_not_found"),
            Self::EndpointNotSupported { .. } => row(
                S::BAD_REQUEST,
                "invalid_request_error",
                "model_not_supported_for_endpoint",
            ),
            Self::NoEligibleDeployment { .. } => row(
                S::BAD_REQUEST,
                "invalid_request_error",
                "no_eligible_deployment",
            ),
            Self::DeploymentsSaturated => row(
                S::SERVICE_UNAVAILABLE,
                "server_error",
                "deployments_saturated",
            ),
            Self::UnknownUrl { .. }
            | Self::MethodNotAllowed { .. }
            | Self::BodyTooLarge { .. }
            | Self::BodyTimeout
            | Self::BodyRead(_) => self.http_row(),
            Self::Upstream { error, .. } => upstream_row(error),
            Self::NotReady
            | Self::AdminDisabled
            | Self::AdminTokenRequired
            | Self::InvalidAdminToken
            | Self::Forbidden
            | Self::NotFound(_)
            | Self::Conflict(_)
            | Self::AdminBadRequest(_) => self.admin_row(),
            Self::Store(_) => row(S::INTERNAL_SERVER_ERROR, "server_error", "internal_error"),
            Self::Internal(_) => row(S::INTERNAL_SERVER_ERROR, "server_error", "internal_error"),
        }
    }

    /// The message shown to the client: specific for client errors, safe for server errors.
    pub(crate) fn public_message(&self) -> String {
        match self {
            Self::InvalidRequest(e) => e.message.clone(),
            Self::MissingKey => "You didn't provide an API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`.".into(),
            Self::InvalidKey => "Incorrect API key provided.".into(),
            Self::ExpiredKey => "This API key has expired.".into(),
            Self::RateLimited(d) if d.retry_after_ms == u64::MAX => {
                format!("Rate limit: this request alone exceeds the {}.", d.what)
            }
            Self::QuotaUnavailable => "Limits cannot be checked right now; retry shortly.".into(),
            Self::BudgetExceeded { what, limit, available, amount } => format!(
                "Insufficient budget: the {what} (${limit}) has ${} left, and this request may cost up to ${amount}. Lower max_tokens, add credit or raise the limit.",
                Nanos(available.0.max(0))
            ),
            Self::HoldTooLarge(_) => "Insufficient budget: this request's maximum possible cost (its prompt, and max_tokens for each of its completions) is too large to hold against any budget. Lower max_tokens or n.".into(),
            Self::BudgetUnavailable(_) => "Budgets cannot be checked right now; retry shortly.".into(),
            Self::MeteringFailed => "The response was produced but its usage could not be recorded; it was not delivered. Retry shortly.".into(),
            Self::RateLimited(d) => format!("Rate limit reached for {}; retry after {} ms.", d.what, d.retry_after_ms),
            Self::TenantSuspended => "This account is suspended.".into(),
            Self::ModelNotFound(m) => format!("The model `{m}` does not exist or you do not have access to it."),
            Self::EndpointNotSupported { model, endpoint } => {
                format!("The model `{model}` is not available on the {endpoint} endpoint.")
            }
            Self::NoEligibleDeployment { model, reasons } => format!(
                "No deployment of `{model}` may serve this request under the tenant's policy and \
                 the request's provider preferences: {reasons}."
            ),
            Self::DeploymentsSaturated => {
                "Every deployment of this model is at its concurrency limit; retry shortly.".into()
            }
            Self::UnknownUrl { method, path } => format!("Unknown request URL: {method} {path}."),
            Self::MethodNotAllowed { method, path } => format!("Method {method} is not allowed on {path}."),
            Self::BodyTooLarge { limit } => format!("The request body is larger than the limit of {limit} bytes."),
            Self::BodyTimeout => "The request body was not received in time.".into(),
            Self::BodyRead(_) => "The request body could not be read.".into(),
            Self::Upstream { error, attempts } => upstream_message(error, *attempts),
            Self::NotReady => "The gateway's store is not reachable.".into(),
            Self::AdminDisabled => "The admin API is disabled: set the JWT secret (auth.jwt_secret_env).".into(),
            Self::AdminTokenRequired => "The admin API needs an operator token: `Authorization: Bearer <JWT>` (`tollgate token`).".into(),
            Self::InvalidAdminToken => "The operator token is invalid or expired.".into(),
            Self::Forbidden => "This operator's role may not do that.".into(),
            Self::NotFound(what) => format!("No such {what}."),
            Self::Conflict(m) => format!("Conflict: {m}."),
            Self::AdminBadRequest(m) => format!("Invalid request: {m}."),
            Self::Store(_) => "The server had an error while processing your request.".into(),
            Self::Internal(_) => "The server had an error while processing your request.".into(),
        }
    }

    /// Refusals by a limit or a budget, and what metering could not do.
    fn limit_row(&self) -> Row {
        use StatusCode as S;
        match self {
            Self::QuotaUnavailable => {
                row(S::SERVICE_UNAVAILABLE, "server_error", "quota_unavailable")
            }
            Self::BudgetExceeded { .. } => {
                row(S::PAYMENT_REQUIRED, "insufficient_quota", "budget_exceeded")
            }
            Self::HoldTooLarge(_) => row(
                S::PAYMENT_REQUIRED,
                "insufficient_quota",
                "max_cost_too_large",
            ),
            Self::BudgetUnavailable(_) => {
                row(S::SERVICE_UNAVAILABLE, "server_error", "budget_unavailable")
            }
            Self::MeteringFailed => row(S::SERVICE_UNAVAILABLE, "server_error", "metering_failed"),
            Self::RateLimited(d) if d.concurrency => row(
                S::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "concurrency_limit_exceeded",
            ),
            Self::RateLimited(_) => row(
                S::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            _ => row(S::INTERNAL_SERVER_ERROR, "server_error", "internal_error"),
        }
    }

    /// What the HTTP layer refuses: unknown URLs and methods, bodies too large, late or unreadable.
    fn http_row(&self) -> Row {
        use StatusCode as S;
        match self {
            Self::UnknownUrl { .. } => row(S::NOT_FOUND, "invalid_request_error", "unknown_url"),
            Self::MethodNotAllowed { .. } => row(
                S::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
            ),
            Self::BodyTooLarge { .. } => row(
                S::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
            ),
            Self::BodyTimeout => row(
                S::REQUEST_TIMEOUT,
                "invalid_request_error",
                "request_body_timeout",
            ),
            Self::BodyRead(_) => row(
                S::BAD_REQUEST,
                "invalid_request_error",
                "request_body_unreadable",
            ),
            _ => row(S::INTERNAL_SERVER_ERROR, "server_error", "internal_error"),
        }
    }

    /// The admin API's own errors.
    fn admin_row(&self) -> Row {
        use StatusCode as S;
        match self {
            Self::NotReady => row(S::SERVICE_UNAVAILABLE, "server_error", "store_unavailable"),
            Self::AdminDisabled => {
                row(S::SERVICE_UNAVAILABLE, "server_error", "admin_api_disabled")
            }
            Self::AdminTokenRequired => row(
                S::UNAUTHORIZED,
                "invalid_request_error",
                "admin_token_required",
            ),
            Self::InvalidAdminToken => row(
                S::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_admin_token",
            ),
            Self::Forbidden => row(S::FORBIDDEN, "invalid_request_error", "insufficient_role"),
            Self::NotFound(_) => row(S::NOT_FOUND, "invalid_request_error", "not_found"),
            Self::Conflict(_) => row(S::CONFLICT, "invalid_request_error", "conflict"),
            Self::AdminBadRequest(_) => {
                row(S::BAD_REQUEST, "invalid_request_error", "invalid_request")
            }
            _ => row(S::INTERNAL_SERVER_ERROR, "server_error", "internal_error"),
        }
    }

    /// The stable `code` of the error body.
    pub(crate) fn code(&self) -> &'static str {
        self.row().code
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::InvalidRequest(e) => e.param.as_deref(),
            Self::ModelNotFound(_) | Self::EndpointNotSupported { .. } => Some("model"),
            Self::NoEligibleDeployment { .. } => Some("provider"),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

/// An OpenAI-shaped error body.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: &str) -> String {
    serde_json::to_string(&Body {
        error: Detail { message, kind, param, code },
    })
    .unwrap_or_else(|_| r#"{"error":{"message":"error","type":"server_error","param":null,"code":"internal_error"}}"#.into())
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.row().status
    }

    fn error_response(&self) -> HttpResponse {
        let row = self.row();
        if row.status.is_server_error() {
            tracing::warn!(error = %self, code = row.code, "request failed");
        }
        let mut res = HttpResponse::build(row.status);
        res.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if let Self::Upstream {
            error:
                UpstreamError::Status {
                    retry_after: Some(s),
                    ..
                },
            ..
        } = self
        {
            res.insert_header((RETRY_AFTER, s.to_string()));
        }
        if let Self::Upstream { attempts, .. } = self {
            res.insert_header(("x-tollgate-attempts", HeaderValue::from(*attempts)));
        }
        if let Self::DeploymentsSaturated = self {
            res.insert_header((RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if let Self::RateLimited(d) = self {
            if d.retry_after_ms != u64::MAX {
                res.insert_header((
                    RETRY_AFTER,
                    d.retry_after_ms.div_ceil(1000).max(1).to_string(),
                ));
            }
            crate::admission::headers::rate_headers(&mut res, &d.headers);
        }
        if matches!(
            self,
            Self::MissingKey
                | Self::InvalidKey
                | Self::AdminTokenRequired
                | Self::InvalidAdminToken
        ) {
            res.insert_header(("www-authenticate", "Bearer"));
        }
        if matches!(
            self,
            Self::BodyTimeout | Self::BodyRead(_) | Self::BodyTooLarge { .. }
        ) {
            // The rest of the body is unread: the connection cannot carry another request.
            res.force_close();
        }
        res.body(error_body(
            &self.public_message(),
            row.kind,
            self.param(),
            row.code,
        ))
    }
}

/// How an upstream failure is answered: timeouts 504, the provider's overload 503, its refusal of
/// the request 400, anything else 502.
fn upstream_row(error: &UpstreamError) -> Row {
    use StatusCode as S;
    let status = match error {
        UpstreamError::ConnectTimeout(_)
        | UpstreamError::FirstByteTimeout(_)
        | UpstreamError::IdleTimeout(_)
        | UpstreamError::TotalTimeout(_) => S::GATEWAY_TIMEOUT,
        UpstreamError::Status {
            status: 429 | 503, ..
        } => S::SERVICE_UNAVAILABLE,
        UpstreamError::Status {
            status: 400 | 413 | 422,
            ..
        } => S::BAD_REQUEST,
        _ => S::BAD_GATEWAY,
    };
    let kind = if status == S::BAD_REQUEST {
        "invalid_request_error"
    } else {
        "upstream_error"
    };
    row(status, kind, error.code())
}

/// The message of an upstream failure: what the provider said (never about our credentials).
fn upstream_message(error: &UpstreamError, attempts: u32) -> String {
    let reason = match error {
        // Never repeat what a provider said about our credentials.
        UpstreamError::Status {
            status: 401 | 403, ..
        } => "the provider refused the gateway's credentials".to_owned(),
        UpstreamError::Status {
            status, message, ..
        } => match message {
            Some(m) => format!("the provider answered HTTP {status}: {m}"),
            None => format!("the provider answered HTTP {status}"),
        },
        UpstreamError::Connect(_) => "could not connect to the provider".to_owned(),
        UpstreamError::Broken(_) => "the connection to the provider broke".to_owned(),
        other => other.to_string(),
    };
    if matches!(
        error,
        UpstreamError::Status {
            status: 400 | 413 | 422,
            ..
        }
    ) {
        // The client's own mistake, as the provider explained it.
        let mut r = reason;
        if let Some(first) = r.get(0..1) {
            r.replace_range(0..1, &first.to_uppercase());
        }
        return format!("{r}.");
    }
    let tried = if attempts == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{attempts} attempts")
    };
    format!("Upstream request failed ({tried}): {reason}.")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn render(e: ApiError) -> (u16, serde_json::Value, Option<String>) {
        let res = e.error_response();
        let retry = res
            .headers()
            .get(RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let status = res.status().as_u16();
        let body = actix_web::body::to_bytes(res.into_body());
        let bytes = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), retry)
    }

    #[test]
    fn the_error_table() {
        let status = |s: u16, m: Option<&str>| UpstreamError::Status {
            status: s,
            retry_after: Some(7),
            message: m.map(Into::into),
            code: None,
        };
        let cases: Vec<(ApiError, u16, &str, &str)> = vec![
            (
                ApiError::MissingKey,
                401,
                "invalid_request_error",
                "missing_api_key",
            ),
            (
                ApiError::InvalidKey,
                401,
                "invalid_request_error",
                "invalid_api_key",
            ),
            (
                ApiError::ModelNotFound("m".into()),
                404,
                "invalid_request_error",
                "model_not_found",
            ),
            (
                ApiError::BodyTooLarge { limit: 10 },
                413,
                "invalid_request_error",
                "request_too_large",
            ),
            (
                ApiError::BodyTimeout,
                408,
                "invalid_request_error",
                "request_body_timeout",
            ),
            (
                ApiError::Upstream {
                    error: status(429, None),
                    attempts: 2,
                },
                503,
                "upstream_error",
                "upstream_rate_limited",
            ),
            (
                ApiError::Upstream {
                    error: status(500, Some("boom")),
                    attempts: 1,
                },
                502,
                "upstream_error",
                "upstream_server_error",
            ),
            (
                ApiError::Upstream {
                    error: status(503, None),
                    attempts: 1,
                },
                503,
                "upstream_error",
                "upstream_server_error",
            ),
            (
                ApiError::Upstream {
                    error: status(400, Some("bad temperature")),
                    attempts: 1,
                },
                400,
                "invalid_request_error",
                "upstream_rejected_request",
            ),
            (
                ApiError::Upstream {
                    error: status(401, Some("key sk-123 invalid")),
                    attempts: 1,
                },
                502,
                "upstream_error",
                "upstream_auth_failed",
            ),
            (
                ApiError::Upstream {
                    error: UpstreamError::FirstByteTimeout(Duration::from_secs(1)),
                    attempts: 1,
                },
                504,
                "upstream_error",
                "upstream_first_byte_timeout",
            ),
            (
                ApiError::Upstream {
                    error: UpstreamError::Connect("refused 10.0.0.1".into()),
                    attempts: 1,
                },
                502,
                "upstream_error",
                "upstream_connect_failed",
            ),
            (
                ApiError::Internal("secret cause".into()),
                500,
                "server_error",
                "internal_error",
            ),
        ];
        for (err, status, kind, code) in cases {
            let text = err.to_string();
            let (s, body, _) = render(err);
            assert_eq!(
                (
                    s,
                    body["error"]["type"].as_str(),
                    body["error"]["code"].as_str()
                ),
                (status, Some(kind), Some(code)),
                "{text}"
            );
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                !message.contains("sk-123")
                    && !message.contains("10.0.0.1")
                    && !message.contains("secret cause"),
                "{message}"
            );
            assert!(body["error"].get("param").is_some());
        }
        let (_, body, retry) = render(ApiError::Upstream {
            error: status(429, None),
            attempts: 2,
        });
        assert_eq!(retry.as_deref(), Some("7"));
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 attempts"));
        let (_, body, _) = render(ApiError::Upstream {
            error: status(400, Some("bad temperature")),
            attempts: 1,
        });
        assert_eq!(
            body["error"]["message"],
            "The provider answered HTTP 400: bad temperature."
        );
    }
}
