//! Command line and environment: the only module that reads either.

use std::ffi::OsString;

/// Usage text, printed by `--help` and (on stderr) for bad arguments.
pub const USAGE: &str = "\
Usage: mock-provider [--host HOST] [--port PORT] [--workers N]

A deterministic fake LLM provider speaking the OpenAI HTTP API.

Options (each also read from the environment; the command line wins):
  --host HOST    address to bind              [env MOCK_HOST, default 127.0.0.1]
  --port PORT    port to bind, 0 = ephemeral  [env MOCK_PORT, default 0]
  --workers N    worker threads (1-256)       [env MOCK_WORKERS, default 1]
  -h, --help     print this help

After binding it prints one line to stdout:
  mock-provider listening on http://HOST:PORT
Logs go to stderr; RUST_LOG controls them (quiet by default).
";

/// The options taking a value.
const FLAGS: [&str; 3] = ["--host", "--port", "--workers"];

/// Where and how to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Address to bind (`--host`, `MOCK_HOST`).
    pub host: String,
    /// Port to bind, 0 for an ephemeral one (`--port`, `MOCK_PORT`).
    pub port: u16,
    /// Number of actix workers (`--workers`, `MOCK_WORKERS`).
    pub workers: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 0,
            workers: 1,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve(Settings),
    Help,
}

/// Reads the process environment and arguments.
pub fn from_process() -> Result<Command, String> {
    parse(std::env::args_os().skip(1), |name| std::env::var_os(name))
}

/// Parses `args` (without the program name) over the variables given by `env`.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Command, String> {
    let mut settings = Settings::default();
    for (flag, variable) in [
        ("--host", "MOCK_HOST"),
        ("--port", "MOCK_PORT"),
        ("--workers", "MOCK_WORKERS"),
    ] {
        if let Some(value) = env(variable) {
            let value = utf8(value, variable)?;
            set(&mut settings, flag, &value).map_err(|err| format!("{variable}: {err}"))?;
        }
    }

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = utf8(arg, "argument")?;
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        if !FLAGS.contains(&flag.as_str()) {
            return Err(format!("unexpected argument '{flag}'"));
        }
        let value = match inline {
            Some(value) => value,
            None => utf8(
                args.next().ok_or_else(|| format!("{flag} needs a value"))?,
                "argument",
            )?,
        };
        set(&mut settings, &flag, &value)?;
    }
    Ok(Command::Serve(settings))
}

fn utf8(value: OsString, what: &str) -> Result<String, String> {
    value
        .into_string()
        .map_err(|value| format!("{what} is not valid UTF-8: {value:?}"))
}

fn set(settings: &mut Settings, flag: &str, value: &str) -> Result<(), String> {
    match flag {
        "--host" if !value.is_empty() => settings.host = value.to_owned(),
        "--port" => {
            settings.port = value
                .parse()
                .map_err(|_| format!("invalid port '{value}'"))?;
        }
        "--workers" => {
            settings.workers = value
                .parse()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| format!("invalid worker count '{value}' (1-256)"))?;
        }
        "--host" => return Err("the host must not be empty".to_owned()),
        _ => return Err(format!("unknown option '{flag}'")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, String> {
        let env: Vec<(String, OsString)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        parse(args.iter().map(OsString::from), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn command_line_overrides_environment() {
        let parsed = run(
            &["--port", "8080", "--workers=4"],
            &[("MOCK_PORT", "9"), ("MOCK_HOST", "0.0.0.0")],
        );
        let expected = Settings {
            host: "0.0.0.0".to_owned(),
            port: 8080,
            workers: 4,
        };
        assert_eq!(parsed, Ok(Command::Serve(expected)));
        assert_eq!(run(&[], &[]), Ok(Command::Serve(Settings::default())));
        assert_eq!(run(&["-h"], &[]), Ok(Command::Help));
    }

    #[test]
    fn rejects_bad_arguments() {
        for args in [
            &["--port"][..],
            &["--port", "http"],
            &["--workers", "0"],
            &["--verbose"],
            &["stray"],
        ] {
            assert!(run(args, &[]).is_err(), "{args:?}");
        }
        assert!(run(&[], &[("MOCK_PORT", "x")]).is_err());
    }
}
