#![allow(clippy::unwrap_used)]

use super::env::Environment;
use super::*;

const GOOD: &str = r#"
[server]
port = 0
workers = 2

[database]
url = "sqlite:x.db"

[upstream_defaults]
connect_timeout_ms = 1000

[providers.openai]
preset = "openai"
api_key_env = "OPENAI_API_KEY"
first_byte_timeout_ms = 5000

[providers.az]
preset = "azure"
base_url = "https://res.openai.azure.com"
api_key_env = "AZURE_KEY"
api_version = "2024-06-01"

[providers.local]
preset = "ollama"
connect_timeout_ms = 200

[deployments.oa]
provider = "openai"
model = "gpt-4o-2024-08-06"
region = "us"
version = "2024-08-06"
price = "openai/gpt-4o"

[deployments.az]
provider = "az"
model = "gpt4o-prod"
region = "eu"

[deployments.emb]
provider = "local"
model = "nomic-embed-text"

[models."gpt-4o"]
deployments = ["az", "oa"]

[models."org/embed"]
deployments = ["emb"]
"#;

fn env() -> Environment {
    Environment::from_pairs([
        ("TOLLGATE_OPERATOR_KEY", "operator-secret"),
        ("OPENAI_API_KEY", "sk-openai"),
        ("AZURE_KEY", "az-key"),
    ])
}

fn errors(toml: &str, env: &Environment) -> Vec<String> {
    match Settings::from_toml(toml) {
        Err(e) => vec![e.to_string()],
        Ok(s) => match s.validate(env) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        },
    }
}

#[test]
fn a_good_file_builds_the_catalog() {
    let s = Settings::from_toml(GOOD).unwrap();
    let c = s.validate(&env()).unwrap();
    let m = &c.models["gpt-4o"];
    let names: Vec<_> = m.deployments.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["az", "oa"]);
    assert_eq!(
        m.deployments[0].uri(tollgate_domain::Endpoint::ChatCompletions).unwrap().to_string(),
        "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01"
    );
    assert_eq!(
        m.deployments[1].provider.timeouts().first_byte,
        std::time::Duration::from_secs(5)
    );
    assert!(c.models["org/embed"].serves(tollgate_domain::Endpoint::Embeddings));
    assert_eq!(c.connect_timeouts.len(), 2);
    let list: serde_json::Value = serde_json::from_slice(&c.models_json).unwrap();
    assert_eq!(list["data"][0]["id"], "gpt-4o");
    assert_eq!(list["data"][1]["id"], "org/embed");
}

#[test]
fn the_shipped_demo_config_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/demo/tollgate.toml"
    ))
    .unwrap();
    let c = Settings::from_toml(&text)
        .unwrap()
        .validate(&env())
        .unwrap();
    assert!(c.models.contains_key("gpt-demo"));
}

#[test]
fn environment_overrides_the_file() {
    let mut s = Settings::from_toml(GOOD).unwrap();
    let e = Environment::from_pairs([
        ("TOLLGATE_PORT", "9999"),
        ("TOLLGATE_DATABASE_URL", "postgres://u:pw@h/db"),
        ("TOLLGATE_LOG_FORMAT", "json"),
        ("RUST_LOG", "debug"),
    ]);
    e.apply_overrides(&mut s).unwrap();
    assert_eq!(s.server.port, 9999);
    assert_eq!(s.database.url.expose(), "postgres://u:pw@h/db");
    assert!(!format!("{s:?}").contains("pw@"));
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.log.level, "debug");
    let bad = Environment::from_pairs([("TOLLGATE_PORT", "eighty")]);
    assert_eq!(bad.apply_overrides(&mut s).unwrap_err().path, "server.port");
}

#[test]
fn every_error_names_its_field() {
    let cases: &[(&str, &str)] = &[
        ("[server]\nprot = 1", "`server.prot`"),
        (
            "[traces]\notlp_endpoint = \"https://collector:4318\"",
            "`traces.otlp_endpoint`: expected an http:// URL",
        ),
        ("[traces]\nsample_ratio = 1.5", "`traces.sample_ratio`"),
        ("[traces]\nexport_delay_ms = 0", "`traces.export_delay_ms`"),
        (
            "[traces]\nheaders_env = { x-api-key = \"NOT_SET_ANYWHERE\" }",
            "`traces.headers_env.x-api-key`: environment variable NOT_SET_ANYWHERE is not set",
        ),
        ("[ui]\nidle_timeout_s = 0", "`ui.idle_timeout_s`"),
        (
            "[ui]\nidle_timeout_s = 600\nabsolute_timeout_s = 60",
            "`ui.absolute_timeout_s`: must be at least",
        ),
        ("[ui]\nmax_login_failures = 0", "`ui.max_login_failures`"),
        ("[ui]\npublic_url = \"example.com\"", "`ui.public_url`"),
        ("[server]\nport = \"x\"", "`server.port`"),
        (
            "[providers.p]\npreset = \"openai\"\nbase_urll = \"x\"",
            "`providers.p.base_urll`",
        ),
        (
            "[providers.p]\npreset = \"nope\"",
            "`providers.p.preset`: unknown preset",
        ),
        (
            "[providers.p]\npreset = \"openai\"",
            "`providers.p.api_key_env`: required",
        ),
        (
            "[providers.p]\npreset = \"openai\"\napi_key_env = \"MISSING_KEY\"",
            "environment variable MISSING_KEY is not set",
        ),
        (
            "[providers.p]\npreset = \"azure\"\napi_key_env = \"AZURE_KEY\"",
            "`providers.p.base_url`: required",
        ),
        (
            "[providers.p]\npreset = \"mock\"\nbase_url = \"ftp://x\"",
            "`providers.p.base_url`",
        ),
        (
            "[providers.p]\npreset = \"mock\"\nbase_url = \"http://x\"\nidle_timeout_ms = 0",
            "`providers.p.idle_timeout_ms`: must be positive",
        ),
        (
            "[deployments.d]\nprovider = \"ghost\"\nmodel = \"m\"",
            "`deployments.d.provider`: no provider named \"ghost\"",
        ),
        ("[models.m]\ndeployments = []", "`models.m.deployments`"),
        (
            "[models.m]\ndeployments = [\"ghost\"]",
            "`models.m.deployments[0]`: no deployment named",
        ),
        ("[database]\nurl = \"mysql://x\"", "`database.url`"),
        (
            "[upstream_defaults]\nmax_attempts = 0",
            "`upstream_defaults.max_attempts`",
        ),
        ("[log]\nformat = \"xml\"", "`log.format`"),
    ];
    for (toml, expected) in cases {
        let errs = errors(toml, &env());
        assert!(
            errs.iter().any(|e| e.contains(expected)),
            "{toml:?} → {errs:?}"
        );
    }
    let short_jwt = Environment::from_pairs([
        ("TOLLGATE_OPERATOR_KEY", "operator-secret"),
        ("TOLLGATE_JWT_SECRET", "short"),
    ]);
    let errs = errors("", &short_jwt);
    assert!(
        errs.iter().any(|e| e.contains(
            "`auth.jwt_secret_env`: the JWT secret in TOLLGATE_JWT_SECRET is shorter than 32 bytes"
        )),
        "{errs:?}"
    );
    // The operator key is optional (tenant keys authorize /v1), but a short one is refused.
    assert_eq!(errors("", &Environment::default()), Vec::<String>::new());
    let short = errors(
        "",
        &Environment::from_pairs([("TOLLGATE_OPERATOR_KEY", "short")]),
    );
    assert!(short.iter().any(|e| e.contains("`auth.operator_key_env`: the operator key in TOLLGATE_OPERATOR_KEY is shorter than 8 characters")), "{short:?}");
    let short_metrics = errors(
        "",
        &Environment::from_pairs([("TOLLGATE_METRICS_TOKEN", "short-token")]),
    );
    assert!(short_metrics.iter().any(|e| e.contains("`metrics.token_env`: the metrics token in TOLLGATE_METRICS_TOKEN is shorter than 16 characters")), "{short_metrics:?}");
    let ttl = errors(
        "[auth]
key_cache_ttl_ms = 5000",
        &env(),
    );
    assert!(
        ttl.iter().any(|e| e.contains("`auth.key_cache_ttl_ms`")),
        "{ttl:?}"
    );
}
