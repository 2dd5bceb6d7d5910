//! `tollgate demo`: the whole product in one process, with nothing else to install or start.
//!
//! In one process it runs:
//! - the mock provider, on a second port;
//! - the gateway, on `--port`, with the demo configuration (`infra/demo/tollgate.toml`,
//!   pointed at that mock) and a fresh SQLite store in a new directory;
//! - the built-in price snapshot plus the mock's prices (`infra/demo/prices.toml`);
//! - a demo tenant with a monthly spend limit and one key;
//! - an `admin` operator for the web UI.
//!
//! It then sends a sample of traffic, so that the usage pages, the ledger and the invoice have
//! something to show, prints the URLs, the key and the password, and serves until Ctrl-C. The
//! key and the password are new each run and printed once. The directory is left behind, so the
//! operator commands can read it afterwards.

use std::io::Write;

use tollgate_domain::money::Nanos;
use tollgate_domain::pricing::catalog::{apply_overrides, read_snapshot, Overrides};
use tollgate_domain::tenant::{BillingMode, Limits};
use tollgate_store::{Prices, Store};

use super::args::DemoArgs;
use super::output::Failure;
use super::prices::BUILTIN_PRICES;
use crate::settings::env::Environment;
use crate::settings::{Secret, Settings};
use crate::startup::Application;
use crate::tenancy::{self, NewKey, NewTenant};

const CONFIG: &str = include_str!("../../../../infra/demo/tollgate.toml");
const PRICES: &str = include_str!("../../../../infra/demo/prices.toml");
/// Where the demo configuration expects the mock provider (`infra/demo.sh` starts it there).
const CONFIG_MOCK_URL: &str = "http://127.0.0.1:9100";
const ACTOR: &str = "cli:demo";
const OPERATOR_KEY_ENV: &str = "TOLLGATE_OPERATOR_KEY";

/// What the demo made, printed once.
struct Made {
    tenant_id: String,
    key: String,
    password: String,
}

/// Runs the demo until Ctrl-C.
pub fn run(args: &DemoArgs) -> Result<(), Failure> {
    actix_web::rt::System::new().block_on(demo(args))
}

async fn demo(args: &DemoArgs) -> Result<(), Failure> {
    let dir = match &args.data {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("tollgate-demo-{}", tollgate_store::now_ms())),
    };
    if dir.join("tollgate.db").exists() {
        // Its key and password were shown once, to the run that made them.
        return Err(Failure::Usage(format!(
            "{} already holds a demo's database: give another --data directory, or none for a \
             new one",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Runtime(format!("creating {}: {e}", dir.display())))?;
    let database = format!("sqlite:{}", dir.join("tollgate.db").display());

    let mock = mock_provider::Application::build(&mock_provider::Settings::default())
        .map_err(|e| Failure::Runtime(format!("starting the mock provider: {e}")))?;
    let mock_url = mock.url();
    actix_web::rt::spawn(mock.run_until_stopped());

    let operator_key = format!("tg-demo-{}", secret(16)?);
    let (settings, catalog) = settings(args, &mock_url, &database, &operator_key)?;
    let no_traces = crate::settings::TracesSettings::default();
    let env = crate::settings::env::Environment::default();
    crate::telemetry::init(settings.log.format, &settings.log.level, &no_traces, &env);
    let store = Store::connect(&database, 2)
        .await
        .map_err(|e| Failure::Runtime(format!("{e:#}")))?;
    store.migrate().await?;
    let made = seed(&store).await;
    store.close().await;
    let made = made?;

    let app = Application::build(&settings, catalog)
        .await
        .map_err(|e| Failure::Runtime(format!("{e:#}")))?;
    let url = app.address();
    let server = actix_web::rt::spawn(app.run_until_stopped());
    let sent = traffic(&url, &made.key).await;
    banner(&url, &mock_url, &database, &operator_key, &made, sent);
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::Runtime(format!("{e:#}"))),
        Err(e) => Err(Failure::Runtime(e.to_string())),
    }
}

/// The demo configuration, pointed at the in-process mock, on `--port`, with the demo's store.
fn settings(
    args: &DemoArgs,
    mock_url: &str,
    database: &str,
    operator_key: &str,
) -> Result<(Settings, crate::catalog::Catalog), Failure> {
    let text = config_text(mock_url);
    let mut settings =
        Settings::from_toml(&text).map_err(|e| Failure::Runtime(format!("demo config: {e}")))?;
    settings.server.host = args.host.clone();
    settings.server.port = args.port;
    settings.database.url = Secret(database.to_owned());
    settings.auth.operator_key_env = OPERATOR_KEY_ENV.into();
    settings.log.level = "warn".into();
    let env = Environment::from_pairs([(OPERATOR_KEY_ENV, operator_key)]);
    let catalog = settings
        .validate(&env)
        .map_err(|e| Failure::Runtime(format!("demo config: {e}")))?;
    Ok((settings, catalog))
}

/// The demo configuration with the mock's address.
fn config_text(mock_url: &str) -> String {
    CONFIG.replace(CONFIG_MOCK_URL, mock_url)
}

/// `n` random bytes as hex.
fn secret(n: usize) -> Result<String, Failure> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)
        .map_err(|e| Failure::Runtime(format!("the OS random source: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Prices, the demo tenant and its key, and the web UI's operator.
async fn seed(store: &Store) -> Result<Made, Failure> {
    let (mut entries, _) = read_snapshot(BUILTIN_PRICES)
        .map_err(|e| Failure::Runtime(format!("the built-in snapshot: {e}")))?;
    let overrides: Overrides =
        toml::from_str(PRICES).map_err(|e| Failure::Runtime(format!("demo prices: {e}")))?;
    apply_overrides(&mut entries, overrides.price);
    store
        .create_price_version("snapshot:builtin overrides:demo", "demo prices", &entries)
        .await?;
    let tenant = tenancy::create_tenant(
        store,
        ACTOR,
        NewTenant {
            name: "Demo Co".into(),
            billing_mode: BillingMode::Postpaid,
            credit_limit_units: None,
            policy: Default::default(),
            limits: Limits {
                monthly_spend_usd: Some(Nanos(5_000_000_000)),
                ..Limits::default()
            },
            plan: None,
            markup_percent: Some(rust_decimal::Decimal::from(20)),
            billing_anchor_day: 1,
            billing_time_zone: "UTC".into(),
            billing_details: Default::default(),
        },
    )
    .await?;
    let (_, key) = tenancy::create_key(
        store,
        ACTOR,
        &tenant.id,
        NewKey {
            name: "demo key".into(),
            ..NewKey::default()
        },
    )
    .await?;
    let password = secret(12)?;
    crate::accounts::create_operator(store, "admin", "admin", password.clone()).await?;
    Ok(Made {
        tenant_id: tenant.id,
        key,
        password,
    })
}

/// A sample of traffic with the demo key: plain and streamed chat, a fallback past a failing
/// deployment, an embedding. Returns how many requests were answered 200.
async fn traffic(url: &str, key: &str) -> usize {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{url}/healthz")).send().await.is_ok() {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let chat = |model: &str, stream: bool, words: &str| {
        serde_json::json!({"model": model, "stream": stream, "max_tokens": 64,
            "messages": [{"role": "user", "content": words}]})
    };
    let mut bodies = Vec::new();
    for (i, words) in [
        "Hello, Tollgate!",
        "What does a gateway do?",
        "Bill me exactly.",
    ]
    .iter()
    .enumerate()
    {
        bodies.push(("/v1/chat/completions", chat("gpt-demo", false, words)));
        bodies.push(("/v1/chat/completions", chat("gpt-demo", i % 2 == 0, words)));
    }
    bodies.push((
        "/v1/chat/completions",
        chat("gpt-demo-fallback", false, "Fail over, please."),
    ));
    bodies.push((
        "/v1/embeddings",
        serde_json::json!({"model": "embed-demo", "input": ["tokens", "are money"]}),
    ));
    let mut ok = 0;
    for (path, body) in bodies {
        let sent = client
            .post(format!("{url}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await;
        if let Ok(res) = sent {
            ok += usize::from(res.status().is_success());
            // Read the whole body (a stream ends, and its usage is metered).
            let _ = res.bytes().await;
        }
    }
    ok
}

fn banner(url: &str, mock: &str, database: &str, operator_key: &str, made: &Made, sent: usize) {
    let text = format!(
        "tollgate demo listening on {url}\n\
         \n\
         gateway:   {url}/v1   (OpenAI-compatible; models gpt-demo, gpt-demo-fallback, embed-demo)\n\
         key:       {key}   (tenant Demo Co, {tenant}; $5.00 a month; shown once)\n\
         admin UI:  {url}/admin   (admin / {password})\n\
         operator:  {operator_key}   (the operator key, for this machine: /v1 without a tenant, /metrics)\n\
         mock:      {mock}   (the in-process fake provider)\n\
         database:  {database}\n\
         sample:    {sent} requests answered, metered and priced\n\
         \n\
         Try it:\n  \
           curl {url}/v1/chat/completions -H 'authorization: Bearer {key}' \\\n    \
           -H 'content-type: application/json' \\\n    \
           -d '{{\"model\": \"gpt-demo\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'\n  \
           TOLLGATE_DATABASE_URL={database} tollgate usage --tenant-id {tenant} --group-by model\n\
         \n\
         Ctrl-C stops it; the database stays.\n",
        key = made.key,
        tenant = made.tenant_id,
        password = made.password,
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_demo_configuration_points_at_the_mock_and_is_valid() {
        let args = DemoArgs {
            host: "127.0.0.1".into(),
            port: 0,
            data: Some(PathBuf::from("/tmp")),
        };
        let mock = "http://127.0.0.1:1234";
        let (settings, catalog) = settings(&args, mock, "sqlite::memory:", "tg-demo-0123456789")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(CONFIG.contains(CONFIG_MOCK_URL));
        let text = config_text(mock);
        assert!(!text.contains("9100") && text.contains("http://127.0.0.1:1234/v1"));
        assert_eq!(settings.server.port, 0);
        assert!(catalog.models.contains_key("gpt-demo"));
        let overrides: Overrides = toml::from_str(PRICES).unwrap_or_default();
        assert!(overrides.price.iter().any(|p| p.model == "mock-gpt"));
    }
}
