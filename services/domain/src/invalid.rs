//! The error every parser of a request body returns: a request the gateway refuses.

/// A request the gateway refuses; maps to HTTP 400 with an OpenAI-shaped body at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRequest {
    pub message: String,
    /// The offending parameter, as OpenAI reports it (`messages[2].role`).
    pub param: Option<String>,
    /// A stable machine-readable code.
    pub code: &'static str,
}

impl InvalidRequest {
    pub(crate) fn new(code: &'static str, param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: param.map(str::to_owned),
            code,
        }
    }

    pub(crate) fn missing(param: &str) -> Self {
        Self::new(
            "missing_required_parameter",
            Some(param),
            format!("Missing required parameter: '{param}'."),
        )
    }

    pub(crate) fn wrong_type(param: &str, expected: &str) -> Self {
        Self::new(
            "invalid_type",
            Some(param),
            format!("Invalid type for '{param}': expected {expected}."),
        )
    }
}
