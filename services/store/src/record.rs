//! The request-log record.

/// How a proxied request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The client received the complete response.
    Ok,
    /// The gateway answered with an error (no provider response reached the client).
    Error,
    /// The stream started and then broke on the provider's side (ended with an error event).
    UpstreamBroken,
    /// The client went away before the end.
    ClientAbandoned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::UpstreamBroken => "upstream_broken",
            Self::ClientAbandoned => "client_abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => Self::Ok,
            "error" => Self::Error,
            "upstream_broken" => Self::UpstreamBroken,
            "client_abandoned" => Self::ClientAbandoned,
            _ => return None,
        })
    }
}

/// Token counts as stored (absent when the provider reported none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub prompt: i64,
    pub completion: i64,
    pub total: i64,
    pub cached: i64,
    pub reasoning: i64,
}

impl From<tollgate_domain::Usage> for TokenCounts {
    fn from(u: tollgate_domain::Usage) -> Self {
        let c = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            prompt: c(u.prompt_tokens),
            completion: c(u.completion_tokens),
            total: c(u.total_tokens),
            cached: c(u.cached_tokens),
            reasoning: c(u.reasoning_tokens),
        }
    }
}

/// One proxied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub id: String,
    pub created_at_ms: i64,
    pub endpoint: String,
    pub public_model: String,
    /// The tenant and key that made the request (`None` for the operator key).
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub provider: Option<String>,
    pub deployment: Option<String>,
    pub stream: bool,
    pub outcome: Outcome,
    pub status: u16,
    pub attempts: u32,
    pub tokens: Option<TokenCounts>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub error_code: Option<String>,
}
