//! A configured provider: where to send, which headers, which timeouts. Built once at start-up so
//! the request path only clones prepared values.

use std::fmt;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::Uri;
use tollgate_domain::Endpoint;

use crate::error::TargetError;
use crate::preset::{AuthStyle, PathStyle, Preset};

/// The four upstream time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connection set-up.
    pub connect: Duration,
    /// From sending the request until the response headers arrive.
    pub first_byte: Duration,
    /// The longest gap between two pieces of a response body (stream chunks included).
    pub idle: Duration,
    /// The whole attempt, first byte to last.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// One provider as the operator configured it.
/// The `anthropic-version` sent unless the provider's `headers` set another.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How requests to a Bedrock provider are signed.
#[derive(Debug, Clone)]
pub struct AwsSigning {
    pub region: String,
    pub credentials: crate::bedrock::sigv4::Credentials,
}

/// A Vertex provider's service account and its cached access token.
#[derive(Debug)]
pub struct GoogleAuth {
    pub account: crate::google_auth::ServiceAccount,
    pub token: tokio::sync::Mutex<Option<crate::google_auth::CachedToken>>,
}

pub struct ProviderTarget {
    /// SigV4 signing (Bedrock), when configured.
    aws: Option<AwsSigning>,
    /// Service-account OAuth (Vertex), when configured.
    google: Option<GoogleAuth>,
    name: String,
    preset: &'static Preset,
    base_url: String,
    api_version: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeouts: Timeouts,
}

impl fmt::Debug for ProviderTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers carry the provider key: never printed.
        f.debug_struct("ProviderTarget")
            .field("name", &self.name)
            .field("preset", &self.preset.name)
            .field("base_url", &self.base_url)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl ProviderTarget {
    /// `base_url` must be absolute http(s); a trailing slash is dropped. `api_key` is sent in the
    /// preset's auth style; `extra_headers` are sent on every request.
    pub fn new(
        name: &str,
        preset: &'static Preset,
        base_url: &str,
        api_key: Option<&str>,
        api_version: Option<&str>,
        extra_headers: &[(String, String)],
        timeouts: Timeouts,
    ) -> Result<Self, TargetError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let parsed: Uri = base_url
            .parse()
            .map_err(|_| TargetError::BadBaseUrl(base_url.clone()))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.authority().is_none() {
            return Err(TargetError::BadBaseUrl(base_url));
        }
        let mut headers = Vec::with_capacity(extra_headers.len() + 1);
        if let Some(key) = api_key {
            let (name, value) = match preset.auth {
                AuthStyle::Bearer => (AUTHORIZATION, format!("Bearer {key}")),
                AuthStyle::Header(h) => (HeaderName::from_static(h), key.to_owned()),
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| TargetError::BadKey)?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        if preset.wire == crate::preset::Wire::Anthropic
            && !extra_headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("anthropic-version"))
        {
            headers.push((
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            ));
        }
        for (k, v) in extra_headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| TargetError::BadHeader(k.clone()))?;
            let value = HeaderValue::from_str(v).map_err(|_| TargetError::BadHeader(k.clone()))?;
            headers.push((name, value));
        }
        Ok(Self {
            aws: None,
            google: None,
            name: name.to_owned(),
            preset,
            base_url,
            api_version: api_version.map(str::to_owned),
            headers,
            timeouts,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signs every request with these AWS credentials (SigV4, service `bedrock`).
    pub fn with_aws(mut self, aws: AwsSigning) -> Self {
        self.aws = Some(aws);
        self
    }

    pub fn aws(&self) -> Option<&AwsSigning> {
        self.aws.as_ref()
    }

    /// Authenticates every request with this service account's OAuth token (Vertex).
    pub fn with_google(mut self, account: crate::google_auth::ServiceAccount) -> Self {
        self.google = Some(GoogleAuth {
            account,
            token: tokio::sync::Mutex::new(None),
        });
        self
    }

    pub fn google(&self) -> Option<&GoogleAuth> {
        self.google.as_ref()
    }

    pub fn preset(&self) -> &'static Preset {
        self.preset
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The URL for `endpoint` on `upstream_model` (compute once per deployment and keep it).
    pub fn uri(&self, endpoint: Endpoint, upstream_model: &str) -> Result<Uri, TargetError> {
        let url = match self.preset.path {
            PathStyle::OpenAi => format!("{}{}", self.base_url, endpoint.path()),
            PathStyle::AnthropicMessages => format!("{}/messages", self.base_url),
            PathStyle::CohereChat => format!("{}/chat", self.base_url),
            PathStyle::BedrockConverse => format!(
                "{}{}",
                self.base_url,
                crate::bedrock::converse_path(upstream_model, false)
            ),
            PathStyle::GeminiModels => {
                // Mock directives (`@k=v,…`) are allowed: every character is valid in a path.
                if !upstream_model.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'_' | b'.' | b'@' | b'=' | b',')
                }) {
                    return Err(TargetError::BadModel(upstream_model.to_owned()));
                }
                format!("{}/models/{upstream_model}:generateContent", self.base_url)
            }
            PathStyle::AzureDeployments => {
                if !upstream_model
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                {
                    return Err(TargetError::BadModel(upstream_model.to_owned()));
                }
                let version = self.api_version.as_deref().unwrap_or("2024-10-21");
                format!(
                    "{}/openai/deployments/{upstream_model}{}?api-version={version}",
                    self.base_url,
                    endpoint.path()
                )
            }
        };
        url.parse().map_err(|_| TargetError::BadBaseUrl(url))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn target(preset: &str, base: &str) -> Result<ProviderTarget, TargetError> {
        ProviderTarget::new(
            "p",
            Preset::by_name(preset).unwrap(),
            base,
            Some("sk-secret"),
            None,
            &[("x-extra".into(), "1".into())],
            Timeouts::default(),
        )
    }

    #[test]
    fn openai_style_urls_and_bearer_auth() {
        let t = target("openai", "https://api.openai.com/v1/").unwrap();
        assert_eq!(
            t.uri(Endpoint::ChatCompletions, "gpt-4o")
                .unwrap()
                .to_string(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(t.headers()[0].0, AUTHORIZATION);
        assert_eq!(t.headers()[0].1.to_str().unwrap(), "Bearer sk-secret");
        assert!(t.headers()[0].1.is_sensitive());
        assert_eq!(t.headers()[1].0.as_str(), "x-extra");
        assert!(!format!("{t:?}").contains("sk-secret"));
    }

    #[test]
    fn azure_urls_carry_the_deployment_and_api_version() {
        let t = target("azure", "https://res.openai.azure.com").unwrap();
        assert_eq!(
            t.uri(Endpoint::Embeddings, "emb-1").unwrap().to_string(),
            "https://res.openai.azure.com/openai/deployments/emb-1/embeddings?api-version=2024-10-21"
        );
        assert_eq!(t.headers()[0].0.as_str(), "api-key");
        assert!(matches!(
            t.uri(Endpoint::Embeddings, "a/b"),
            Err(TargetError::BadModel(_))
        ));
    }

    #[test]
    fn bad_configuration_is_refused() {
        assert!(matches!(
            target("openai", "ftp://x"),
            Err(TargetError::BadBaseUrl(_))
        ));
        assert!(matches!(
            target("openai", "not a url"),
            Err(TargetError::BadBaseUrl(_))
        ));
        let bad_key = ProviderTarget::new(
            "p",
            Preset::by_name("openai").unwrap(),
            "https://x",
            Some("a\nb"),
            None,
            &[],
            Timeouts::default(),
        );
        assert!(matches!(bad_key, Err(TargetError::BadKey)));
    }
}
