//! The command line, parsed by `clap` (derive): `tollgate [serve|migrate|check-config|…]`
//! with `--help` on every command and `tollgate completions SHELL` for shell completion scripts.
//!
//! Exit codes: 0 success, 1 runtime failure (database unreachable, port taken…), 2 usage or
//! configuration error.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use self::args::{
    CreditCommand, InvoiceCommand, KeyCommand, OperatorCommand, PricesCommand, TenantCommand,
    TokenArgs,
};
use self::output::Failure;
use crate::catalog::Catalog;
use crate::settings::env::Environment;
use crate::settings::Settings;
use crate::startup::Application;
use crate::telemetry;

mod accounts;
mod admin;
pub mod args;
mod demo;
mod output;
mod prices;

const AFTER_HELP: &str = "\
ENVIRONMENT:
    TOLLGATE_CONFIG         The configuration file, when --config is not given
    TOLLGATE_OPERATOR_KEY   The key that authorizes /v1 (name set by auth.operator_key_env)
    TOLLGATE_DATABASE_URL   sqlite:PATH (default sqlite:tollgate.db) or postgres://…
    TOLLGATE_HOST, TOLLGATE_PORT, TOLLGATE_WORKERS, TOLLGATE_LOG, TOLLGATE_LOG_FORMAT
    See docs/configuration.md for every setting.

Operator commands (token, tenant, key, credit, balance, invoice, prices, usage, rebuild-rollups, operator) work against the
configured
database and print JSON.

EXIT CODES:
    0 success · 1 runtime failure · 2 usage or configuration error
    3 reconcile found differences";

const TEMPLATE: &str = "\
{about-with-newline}
USAGE:
    {usage}

{all-args}{after-help}";

/// tollgate — a multi-tenant LLM gateway with unified billing
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, help_template = TEMPLATE, after_help = AFTER_HELP)]
pub struct Cli {
    /// Configuration file (TOML). Default: $TOLLGATE_CONFIG, else built-in defaults
    #[arg(short, long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default)
    Serve,
    /// Apply database migrations and exit
    Migrate,
    /// Validate the configuration and exit
    CheckConfig,
    /// Print the version
    Version,
    /// Sign an operator JWT for the admin API (needs the JWT secret)
    Token(TokenArgs),
    /// Create, list, suspend and limit tenants
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Create, list, disable, revoke, rotate and limit API keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Grant and list credit
    #[command(subcommand)]
    Credit(CreditCommand),
    /// A tenant's credit, receivable, granted and spent
    Balance { tenant_id: String },
    /// Finalize, list, show, pay, void invoices
    #[command(subcommand)]
    Invoice(InvoiceCommand),
    /// The versioned price catalog
    #[command(subcommand)]
    Prices(PricesCommand),
    /// Prove a period's usage records, ledger postings and invoices agree; revenue, cost and
    /// margin per tenant, model and provider (exit 3 when something differs)
    Reconcile(args::ReconcileArgs),
    /// Operator accounts of the admin web UI (`/admin`)
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// The whole product in one process: the gateway, the mock provider, prices, a tenant and a
    /// key, sample traffic and the web UI, on a fresh SQLite store (ignores --config)
    Demo(args::DemoArgs),
    /// Requests, tokens, cost and price, grouped (JSON; the admin API's usage view)
    Usage(args::UsageArgs),
    /// Recompute the usage rollups from the request log: once every replica runs a release that
    /// added a rollup, for what older replicas wrote meanwhile (docs/deploy.md#upgrades)
    RebuildRollups,
}

/// Parses the arguments; prints help, the version or a usage error itself.
fn parse(args: Vec<OsString>) -> Result<Cli, ExitCode> {
    let argv = std::iter::once(OsString::from("tollgate")).chain(args);
    Cli::try_parse_from(argv).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            eprintln!("\n{}", Cli::command().render_help());
        }
        ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
    })
}

/// Runs the CLI; returns the process exit code.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let cli = match parse(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let command = cli.command.unwrap_or(Command::Serve);
    match &command {
        Command::Version => {
            println!("tollgate {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Demo(args) => {
            return match demo::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => e.exit(),
            };
        }
        Command::Prices(PricesCommand::Snapshot { from, out }) => {
            return match prices::snapshot(from, out.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => e.exit(),
            };
        }
        Command::Completions { shell } => {
            // Generated into memory: clap_complete panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "tollgate", &mut script);
            let _ = std::io::stdout().write_all(&script);
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let env = Environment::from_process();
    let config_path = cli.config.clone().or_else(|| env.config_path());
    let serving = matches!(command, Command::Serve);
    let (settings, catalog, _traces) = match configure(config_path.as_deref(), &env, serving) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match command {
        Command::CheckConfig => {
            let deployments: usize = catalog.models.values().map(|m| m.deployments.len()).sum();
            println!(
                "configuration OK: {} model(s), {deployments} deployment(s)",
                catalog.models.len()
            );
            ExitCode::SUCCESS
        }
        Command::Token(args) => match admin::issue_token(&args, &catalog) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => e.exit(),
        },
        Command::Serve | Command::Migrate => {
            let reloader =
                crate::reload::Reloader::new(config_path, env, settings.clone(), &catalog);
            serve_or_migrate(&command, &settings, catalog, reloader)
        }
        operator => operator_command(&operator, &settings, &catalog, &env),
    }
}

/// Loads the settings (file, then environment) and validates them into the catalog; installs the
/// log, and for `serve` the trace export (flushed when the returned guard drops).
fn configure(
    config_path: Option<&std::path::Path>,
    env: &Environment,
    serving: bool,
) -> Result<(Settings, Catalog, telemetry::Traces), ExitCode> {
    let loaded =
        Settings::load(config_path).and_then(|mut s| env.apply_overrides(&mut s).map(|()| s));
    let settings = loaded.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })?;
    let no_traces = crate::settings::TracesSettings::default();
    let traces = if serving {
        &settings.traces
    } else {
        &no_traces
    };
    let traces = telemetry::init(settings.log.format, &settings.log.level, traces, env);
    let catalog = settings.validate(env).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    })?;
    Ok((settings, catalog, traces))
}

fn serve_or_migrate(
    command: &Command,
    settings: &Settings,
    catalog: Catalog,
    reloader: crate::reload::Reloader,
) -> ExitCode {
    let migrate = matches!(command, Command::Migrate);
    let result = actix_web::rt::System::new().block_on(async move {
        if migrate {
            let url = settings.database.url.expose();
            let store = tollgate_store::Store::connect(url, 1).await?;
            let applied = store.migrate().await?;
            println!(
                "applied {} migration(s): {}",
                applied.len(),
                applied.join(", ")
            );
            return Ok(());
        }
        let app = Application::build(settings, catalog).await?;
        app.reload_on_sighup(reloader);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "tollgate listening on {}", app.address());
        let _ = out.flush();
        drop(out);
        tracing::info!(address = %app.address(), "tollgate listening");
        app.run_until_stopped().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "tollgate stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `tenant …`, `key …`, `credit …`, `balance`, `invoice …`, `prices …`: against the configured
/// store.
fn operator_command(
    command: &Command,
    settings: &Settings,
    catalog: &Catalog,
    env: &Environment,
) -> ExitCode {
    let actor = format!("cli:{}", env.get("USER").unwrap_or("operator"));
    let url = settings.database.url.expose();
    let outcome = actix_web::rt::System::new().block_on(async {
        let store = tollgate_store::Store::connect(url, 2)
            .await
            .map_err(|e| Failure::Runtime(format!("{e:#}")))?;
        store.migrate().await?;
        let done = match command {
            Command::Tenant(c) => admin::tenant(&store, &actor, c).await,
            Command::Key(c) => admin::key(&store, &actor, c).await,
            Command::Credit(c) => admin::credit(&store, &actor, c).await,
            Command::Balance { tenant_id } => admin::balance(&store, tenant_id).await,
            Command::Invoice(c) => admin::invoice(&store, settings, catalog, &actor, c).await,
            Command::Prices(c) => prices::run(&store, &actor, c).await,
            Command::Reconcile(a) => admin::reconcile(&store, catalog, a).await,
            Command::Usage(a) => admin::usage(&store, a).await,
            Command::RebuildRollups => admin::rebuild_rollups(&store).await,
            Command::Operator(c) => accounts::operator(&store, env, c).await,
            _ => Err(Failure::Usage("not an operator command".into())),
        };
        store.close().await;
        done
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.exit(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, ExitCode> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_commands_and_config() {
        assert!(p(&[]).unwrap().command.is_none());
        let a = p(&["migrate", "--config", "x.toml"]).unwrap();
        assert!(matches!(a.command, Some(Command::Migrate)));
        assert_eq!(a.config, Some(PathBuf::from("x.toml")));
        assert_eq!(
            p(&["--config=y.toml", "check-config"]).unwrap().config,
            Some(PathBuf::from("y.toml"))
        );
        assert!(p(&["--config"]).is_err());
        assert!(p(&["frobnicate"]).is_err());
        assert!(p(&["serve", "migrate"]).is_err());
        let a = p(&["key", "create", "ten_1", "ci", "--env", "test"]).unwrap();
        let Some(Command::Key(KeyCommand::Create {
            tenant_id,
            name,
            env,
            ..
        })) = a.command
        else {
            panic!("not key create");
        };
        assert_eq!((tenant_id.as_str(), name.as_str()), ("ten_1", "ci"));
        assert_eq!(env.as_deref(), Some("test"));
        assert!(p(&["token", "--role"]).is_err());
        assert!(p(&["token", "--bogus", "x"]).is_err());
    }

    #[test]
    fn limit_flags_set_or_clear() {
        let a = p(&[
            "tenant",
            "set-limits",
            "t",
            "--tpm",
            "1000",
            "--rpm",
            "none",
        ])
        .unwrap();
        let Some(Command::Tenant(TenantCommand::SetLimits { limits, .. })) = a.command else {
            panic!("not set-limits");
        };
        let before = tollgate_domain::tenant::Limits {
            requests_per_minute: Some(5),
            ..Default::default()
        };
        let after = limits.apply(before);
        assert_eq!(after.tokens_per_minute, Some(1000));
        assert_eq!(after.requests_per_minute, None);
        assert!(p(&["tenant", "set-limits", "t", "--tpm", "lots"]).is_err());
        assert!(p(&["tenant", "set-limits", "t", "--daily-spend", "-1"]).is_err());
    }
}
