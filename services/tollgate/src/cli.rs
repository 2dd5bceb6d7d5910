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

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Serve,
    Migrate,
    CheckConfig,
    Help,
    Version,
}

#[derive(Debug)]
struct Args {
    command: Command,
    config: Option<PathBuf>,
}

fn parse(args: Vec<OsString>) -> Result<Args, String> {
    let mut command = None;
    let mut config = None;
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
            "-h" | "--help" | "help" => command = Some(Command::Help),
            "-V" | "--version" | "version" => command = Some(Command::Version),
            "serve" | "migrate" | "check-config" if command.is_none() => {
                command = Some(match arg.as_str() {
                    "serve" => Command::Serve,
                    "migrate" => Command::Migrate,
                    _ => Command::CheckConfig,
                });
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Args {
        command: command.unwrap_or(Command::Serve),
        config,
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
    }
}
