//! Identifiers parsed or minted at the edge.

use std::fmt;

/// A request identifier minted by the gateway (never taken from the client, because metering is
/// idempotent by it and a client-chosen id could collide with another request's).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Formats 128 random bits (from the OS, supplied by the caller) as `req_` + 32 hex digits.
    pub fn from_random(bits: u128) -> Self {
        Self(format!("req_{bits:032x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

/// A public model name as clients send it: 1 to 256 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName(String);

/// Why a model name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelNameError {
    #[error("model name is empty")]
    Empty,
    #[error("model name is longer than {max} characters")]
    TooLong { max: usize },
    #[error("model name contains a control character")]
    ControlCharacter,
}

impl ModelName {
    pub const MAX_LEN: usize = 256;

    pub fn parse(s: &str) -> Result<Self, ModelNameError> {
        if s.is_empty() {
            return Err(ModelNameError::Empty);
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(ModelNameError::TooLong { max: Self::MAX_LEN });
        }
        if s.chars().any(char::is_control) {
            return Err(ModelNameError::ControlCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_fixed_width() {
        assert_eq!(
            RequestId::from_random(0).as_str(),
            format!("req_{}", "0".repeat(32))
        );
        assert_eq!(RequestId::from_random(u128::MAX).as_str().len(), 36);
    }

    #[test]
    fn model_names_are_bounded() {
        assert_eq!(ModelName::parse(""), Err(ModelNameError::Empty));
        assert!(ModelName::parse(&"a".repeat(256)).is_ok());
        assert_eq!(
            ModelName::parse(&"a".repeat(257)),
            Err(ModelNameError::TooLong { max: 256 })
        );
        assert_eq!(
            ModelName::parse("a\nb"),
            Err(ModelNameError::ControlCharacter)
        );
        assert_eq!(
            ModelName::parse("openai/gpt-4o").map(|m| m.to_string()),
            Ok("openai/gpt-4o".into())
        );
    }
}
