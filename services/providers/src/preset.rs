//! Presets for the vendors: where they live, how they authenticate, which wire format they speak,
//! and what they support.

use tollgate_domain::Endpoint;

/// How the provider key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key alone in the named header (Azure's `api-key`).
    Header(&'static str),
}

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI chat completions (forwarded as is).
    OpenAi,
    /// Anthropic Messages (translated both ways, see [`crate::anthropic`]).
    Anthropic,
    /// Google Gemini `generateContent` (translated both ways, see [`crate::gemini`]).
    Gemini,
    /// Cohere v2 chat (translated both ways, see [`crate::cohere`]).
    Cohere,
    /// AWS Bedrock Converse / ConverseStream (translated both ways, SigV4-signed, binary event
    /// streams; see [`crate::bedrock`]).
    Bedrock,
}

/// How the request path is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStyle {
    /// `{base_url}/chat/completions` (the base URL includes `/v1` or its equivalent).
    OpenAi,
    /// Azure OpenAI: `{base_url}/openai/deployments/{upstream model}/chat/completions?api-version=…`.
    AzureDeployments,
    /// Anthropic: `{base_url}/messages` (chat only).
    AnthropicMessages,
    /// Gemini: `{base_url}/models/{model}:generateContent` (`:streamGenerateContent?alt=sse`
    /// for streams).
    GeminiModels,
    /// Cohere v2: `{base_url}/chat`.
    CohereChat,
    /// Bedrock: `{base_url}/model/{model id}/converse` (`/converse-stream` for streams).
    BedrockConverse,
}

/// Known behaviour of one vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    /// `None` when the operator must give the base URL (Azure resources, the mock).
    pub base_url: Option<&'static str>,
    pub auth: AuthStyle,
    pub path: PathStyle,
    pub wire: Wire,
    /// Whether the provider must be sent a key (local servers usually need none).
    pub key_required: bool,
    /// Whether it accepts `stream_options.include_usage` (and then ends streams with a usage
    /// chunk). Where it does not, the request is forwarded without it.
    pub stream_usage: bool,
    pub chat: bool,
    pub completions: bool,
    pub embeddings: bool,
}

impl Preset {
    pub fn supports(&self, endpoint: Endpoint) -> bool {
        match endpoint {
            Endpoint::ChatCompletions => self.chat,
            Endpoint::Completions => self.completions,
            Endpoint::Embeddings => self.embeddings,
        }
    }

    pub fn by_name(name: &str) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.name == name)
    }
}

const fn preset(
    name: &'static str,
    base_url: Option<&'static str>,
    stream_usage: bool,
    [chat, completions, embeddings]: [bool; 3],
) -> Preset {
    Preset {
        name,
        base_url,
        auth: AuthStyle::Bearer,
        path: PathStyle::OpenAi,
        wire: Wire::OpenAi,
        key_required: true,
        stream_usage,
        chat,
        completions,
        embeddings,
    }
}

const ALL: [bool; 3] = [true, true, true];
const CHAT: [bool; 3] = [true, false, false];
const CHAT_COMPLETIONS: [bool; 3] = [true, true, false];
const CHAT_EMBEDDINGS: [bool; 3] = [true, false, true];

/// Every preset Tollgate knows. Vendors that report streamed usage without being asked (or
/// reject unknown parameters) are marked `stream_usage: false`.
pub static PRESETS: &[Preset] = &[
    preset("openai", Some("https://api.openai.com/v1"), true, ALL),
    Preset {
        auth: AuthStyle::Header("api-key"),
        path: PathStyle::AzureDeployments,
        ..preset("azure", None, true, ALL)
    },
    preset("groq", Some("https://api.groq.com/openai/v1"), false, CHAT),
    preset(
        "mistral",
        Some("https://api.mistral.ai/v1"),
        false,
        CHAT_EMBEDDINGS,
    ),
    preset(
        "deepseek",
        Some("https://api.deepseek.com/v1"),
        true,
        CHAT_COMPLETIONS,
    ),
    preset(
        "openrouter",
        Some("https://openrouter.ai/api/v1"),
        true,
        ALL,
    ),
    preset("together", Some("https://api.together.xyz/v1"), true, ALL),
    preset(
        "fireworks",
        Some("https://api.fireworks.ai/inference/v1"),
        true,
        ALL,
    ),
    preset(
        "deepinfra",
        Some("https://api.deepinfra.com/v1/openai"),
        true,
        ALL,
    ),
    preset("xai", Some("https://api.x.ai/v1"), true, ALL),
    preset("perplexity", Some("https://api.perplexity.ai"), false, CHAT),
    preset(
        "cerebras",
        Some("https://api.cerebras.ai/v1"),
        true,
        CHAT_COMPLETIONS,
    ),
    preset("moonshot", Some("https://api.moonshot.ai/v1"), false, CHAT),
    preset(
        "dashscope",
        Some("https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
        true,
        CHAT_EMBEDDINGS,
    ),
    preset("zai", Some("https://api.z.ai/api/paas/v4"), false, CHAT),
    preset("minimax", Some("https://api.minimax.io/v1"), false, CHAT),
    Preset {
        key_required: false,
        ..preset("vllm", Some("http://127.0.0.1:8000/v1"), true, ALL)
    },
    Preset {
        key_required: false,
        ..preset("ollama", Some("http://127.0.0.1:11434/v1"), true, ALL)
    },
    Preset {
        key_required: false,
        ..preset("mock", None, true, ALL)
    },
    ANTHROPIC,
    GEMINI,
    VERTEX,
    COHERE,
    BEDROCK,
    // The mock provider's Bedrock wire (`/model/{id}/converse`, `/converse-stream`).
    Preset {
        name: "mock-bedrock",
        ..BEDROCK
    },
    // The mock provider's Cohere wire (`/v2/chat`).
    Preset {
        name: "mock-cohere",
        base_url: None,
        key_required: false,
        ..COHERE
    },
    // The mock provider's Gemini wire (`/v1beta/models/…`).
    Preset {
        name: "mock-gemini",
        base_url: None,
        key_required: false,
        ..GEMINI
    },
    // The mock provider's Anthropic wire (`/v1/messages`), for tests and demos.
    Preset {
        name: "mock-anthropic",
        base_url: None,
        key_required: false,
        ..ANTHROPIC
    },
];

/// Gemini on Vertex AI: the base URL names the project and location
/// (`https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/google`);
/// authenticated with a service account's OAuth token rather than a key.
const VERTEX: Preset = Preset {
    name: "vertex",
    base_url: None,
    key_required: false,
    auth: AuthStyle::Bearer,
    ..GEMINI
};

/// AWS Bedrock's runtime (`https://bedrock-runtime.{region}.amazonaws.com`, given as the base URL),
/// authenticated by SigV4 with the provider's AWS credentials rather than a key.
const BEDROCK: Preset = Preset {
    path: PathStyle::BedrockConverse,
    wire: Wire::Bedrock,
    key_required: false,
    ..preset("bedrock", None, false, CHAT)
};

/// Cohere's v2 chat API (Bearer).
const COHERE: Preset = Preset {
    path: PathStyle::CohereChat,
    wire: Wire::Cohere,
    ..preset("cohere", Some("https://api.cohere.com/v2"), false, CHAT)
};

/// Google AI Studio's Gemini API (`x-goog-api-key`).
const GEMINI: Preset = Preset {
    auth: AuthStyle::Header("x-goog-api-key"),
    path: PathStyle::GeminiModels,
    wire: Wire::Gemini,
    ..preset(
        "gemini",
        Some("https://generativelanguage.googleapis.com/v1beta"),
        false,
        CHAT,
    )
};

/// Anthropic's Messages API (`x-api-key`, `anthropic-version: 2023-06-01`).
const ANTHROPIC: Preset = Preset {
    auth: AuthStyle::Header("x-api-key"),
    path: PathStyle::AnthropicMessages,
    wire: Wire::Anthropic,
    ..preset(
        "anthropic",
        Some("https://api.anthropic.com/v1"),
        false,
        CHAT,
    )
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_there_are_enough_presets() {
        let mut names: Vec<_> = PRESETS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PRESETS.len());
        assert!(PRESETS.len() >= 17);
    }

    #[test]
    fn base_urls_have_no_trailing_slash_and_remote_ones_use_https() {
        for p in PRESETS {
            if let Some(url) = p.base_url {
                assert!(!url.ends_with('/'), "{}", p.name);
                assert!(url.starts_with("https://") || !p.key_required, "{}", p.name);
            }
            assert!(p.chat, "{} must serve chat", p.name);
        }
    }

    #[test]
    fn azure_uses_its_own_header_and_path() {
        let azure = Preset::by_name("azure");
        assert_eq!(
            azure.map(|p| (p.auth, p.path)),
            Some((AuthStyle::Header("api-key"), PathStyle::AzureDeployments))
        );
        assert!(Preset::by_name("nope").is_none());
        assert!(!Preset::by_name("groq").is_some_and(|p| p.supports(Endpoint::Embeddings)));
    }
}
