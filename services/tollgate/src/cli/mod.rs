//! The command line: `tollgate [serve|migrate|check-config] [--config PATH]`.
//!
//! Exit codes: 0 success, 1 runtime failure (database unreachable, port taken…), 2 usage or
//! configuration error.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::settings::env::Environment;
use crate::settings::Settings;
use crate::startup::Application;
use crate::telemetry;

pub const USAGE: &str = "\
tollgate — a multi-tenant LLM gateway with unified billing

USAGE:
    tollgate [COMMAND] [--config PATH]

COMMANDS:
    serve           Run the gateway (the default)
    migrate         Apply database migrations and exit
    check-config    Validate the configuration and exit
    help            Print this help
    version         Print the version

OPERATOR COMMANDS (against the configured database; output is JSON):
    token --subject NAME --role admin|viewer [--ttl-minutes 60]
                                 Sign an operator JWT for the admin API (needs the JWT secret)
    tenant create NAME [--billing prepaid|postpaid] [--credit-limit USD] [--plan NAME]
                       [--markup PERCENT] [limit flags as for set-limits]
    tenant list
    tenant suspend|activate TENANT_ID
    tenant set-limits TENANT_ID [--rpm N] [--tpm N] [--concurrency N]
                       [--daily-spend USD] [--monthly-spend USD] [--total-spend USD]
                                 (each a value, or none to clear; spend periods are UTC)
    key create TENANT_ID NAME [--env live] [--expires-in-days N] [--routing JSON]
                                 Prints the new key once; only its hash is stored
    key list TENANT_ID
    key disable|enable|revoke|rotate TENANT_ID KEY_ID
    key set-limits TENANT_ID KEY_ID [same flags as tenant set-limits]
    credit grant TENANT_ID USD [--promo [--expires-in-days N]] [--note TEXT]
                                 Top up (or give promotional) credit; posted to the ledger
    credit list TENANT_ID
    balance TENANT_ID            Credit, receivable, granted, spent
    prices import [--from PATH|none] [--overrides PATH] [--note TEXT]
                                 Make a new price catalog version from the public price list
                                 (default ../shared/data/model_prices_and_context_window.json)
                                 and/or an overrides file (docs/billing.md)
    prices versions
    prices show PROVIDER MODEL [--price-version N]

OPTIONS:
    -c, --config PATH   Configuration file (TOML). Default: $TOLLGATE_CONFIG, else built-in defaults.

ENVIRONMENT:
    TOLLGATE_OPERATOR_KEY   The key that authorizes /v1 (name set by auth.operator_key_env)
    TOLLGATE_DATABASE_URL   sqlite:PATH (default sqlite:tollgate.db) or postgres://…
    TOLLGATE_HOST, TOLLGATE_PORT, TOLLGATE_WORKERS, TOLLGATE_LOG, TOLLGATE_LOG_FORMAT
    See docs/configuration.md for every setting.

EXIT CODES:
    0 success · 1 runtime failure · 2 usage or configuration error
";

mod admin;
mod prices;

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Serve,
    Migrate,
    CheckConfig,
    Help,
    Version,
    /// `token`, `tenant …`, `key …`: operator commands against the configured store.
    Admin(Vec<String>),
}

#[derive(Debug)]
struct Args {
    command: Command,
    config: Option<PathBuf>,
    /// `--name value` options of the operator commands.
    flags: Vec<(String, String)>,
}

const VALUE_FLAGS: &[&str] = &[
    "--daily-spend",
    "--monthly-spend",
    "--total-spend",
    "--credit-limit",
    "--plan",
    "--markup",
    "--rpm",
    "--tpm",
    "--concurrency",
    "--subject",
    "--role",
    "--ttl-minutes",
    "--billing",
    "--env",
    "--expires-in-days",
    "--from",
    "--overrides",
    "--note",
    "--price-version",
    "--routing",
];

fn parse(args: Vec<OsString>) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut config = None;
    let mut flags = Vec::new();
    let mut help = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument {a:?} is not UTF-8"))?;
        match arg.as_str() {
            "-c" | "--config" => {
                let path = it.next().ok_or("--config needs a path")?;
                config = Some(PathBuf::from(path));
            }
            s if s.starts_with("--config=") => {
                config = Some(PathBuf::from(&s["--config=".len()..]))
            }
            "-h" | "--help" => help = true,
            "-V" | "--version" => positional.push("version".to_owned()),
            "--promo" => flags.push(("promo".to_owned(), String::new())),
            f if VALUE_FLAGS.contains(&f) => {
                let value = it.next().ok_or_else(|| format!("{f} needs a value"))?;
                let value = value
                    .into_string()
                    .map_err(|v| format!("{f} {v:?} is not UTF-8"))?;
                flags.push((f.trim_start_matches("--").to_owned(), value));
            }
            f if f.starts_with('-') => return Err(format!("unknown option {f:?}")),
            _ => positional.push(arg),
        }
    }
    let command = if help {
        Command::Help
    } else {
        match positional.first().map(String::as_str) {
            None | Some("serve") if positional.len() <= 1 => Command::Serve,
            Some("migrate") if positional.len() == 1 => Command::Migrate,
            Some("check-config") if positional.len() == 1 => Command::CheckConfig,
            Some("help") => Command::Help,
            Some("version") if positional.len() == 1 => Command::Version,
            Some("token" | "tenant" | "key" | "prices" | "credit" | "balance") => {
                Command::Admin(positional)
            }
            _ => return Err(format!("unexpected arguments {:?}", positional.join(" "))),
        }
    };
    Ok(Args {
        command,
        config,
        flags,
    })
}

/// Runs the CLI; returns the process exit code.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match args.command {
        Command::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("tollgate {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }

    let env = Environment::from_process();
    let config_path = args.config.or_else(|| env.config_path());
    let loaded = Settings::load(config_path.as_deref())
        .and_then(|mut s| env.apply_overrides(&mut s).map(|()| s));
    let settings = match loaded {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log.format, &settings.log.level);
    let catalog = match settings.validate(&env) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    if let Command::Admin(words) = &args.command {
        return admin::run(words, &args.flags, &settings, &catalog, &env);
    }
    if args.command == Command::CheckConfig {
        println!(
            "configuration OK: {} model(s), {} deployment(s)",
            catalog.models.len(),
            catalog
                .models
                .values()
                .map(|m| m.deployments.len())
                .sum::<usize>()
        );
        return ExitCode::SUCCESS;
    }

    let result = actix_web::rt::System::new().block_on(async move {
        if args.command == Command::Migrate {
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
        let app = Application::build(&settings, catalog).await?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn parses_commands_and_config() {
        assert_eq!(p(&[]).unwrap().command, Command::Serve);
        let a = p(&["migrate", "--config", "x.toml"]).unwrap();
        assert_eq!(
            (a.command, a.config),
            (Command::Migrate, Some(PathBuf::from("x.toml")))
        );
        assert_eq!(
            p(&["--config=y.toml", "check-config"]).unwrap().config,
            Some(PathBuf::from("y.toml"))
        );
        assert!(p(&["--config"]).is_err());
        assert!(p(&["frobnicate"]).is_err());
        assert!(p(&["serve", "migrate"]).is_err());
        let a = p(&["key", "create", "ten_1", "ci", "--env", "test"]).unwrap();
        assert_eq!(
            a.command,
            Command::Admin(vec![
                "key".into(),
                "create".into(),
                "ten_1".into(),
                "ci".into()
            ])
        );
        assert_eq!(a.flags, vec![("env".to_owned(), "test".to_owned())]);
        assert!(p(&["token", "--role"]).is_err());
        assert!(p(&["token", "--bogus", "x"]).is_err());
    }
}
