//! The one place that reads the process environment. Everything else receives an
//! [`Environment`], so tests can pass their own.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{ConfigError, LogFormat, Secret, Settings};

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Environment(HashMap<String, String>);

impl Environment {
    pub fn from_process() -> Self {
        Self(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        )
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// A variable's value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `TOLLGATE_CONFIG`: the configuration file when `--config` is not given.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.get("TOLLGATE_CONFIG").map(PathBuf::from)
    }

    /// Applies `TOLLGATE_HOST`, `TOLLGATE_PORT`, `TOLLGATE_WORKERS`, `TOLLGATE_DATABASE_URL`,
    /// `TOLLGATE_REDIS_URL`, `TOLLGATE_OTLP_ENDPOINT`, `TOLLGATE_LOG_FORMAT` and `TOLLGATE_LOG`
    /// (falling back to `RUST_LOG`) over the file.
    pub fn apply_overrides(&self, s: &mut Settings) -> Result<(), ConfigError> {
        if let Some(v) = self.get("TOLLGATE_HOST") {
            s.server.host = v.to_owned();
        }
        if let Some(v) = self.get("TOLLGATE_PORT") {
            s.server.port = v.parse().map_err(|_| {
                ConfigError::new(
                    "server.port",
                    format!("TOLLGATE_PORT={v:?} is not a port number"),
                )
            })?;
        }
        if let Some(v) = self.get("TOLLGATE_WORKERS") {
            s.server.workers = v.parse().map_err(|_| {
                ConfigError::new(
                    "server.workers",
                    format!("TOLLGATE_WORKERS={v:?} is not a number"),
                )
            })?;
        }
        if let Some(v) = self.get("TOLLGATE_DATABASE_URL") {
            s.database.url = Secret(v.to_owned());
        }
        if let Some(v) = self.get("TOLLGATE_REDIS_URL") {
            s.quota.redis_url = Some(Secret(v.to_owned()));
        }
        if let Some(v) = self.get("TOLLGATE_OTLP_ENDPOINT") {
            s.traces.otlp_endpoint = Some(v.to_owned());
        }
        if let Some(v) = self.get("TOLLGATE_LOG_FORMAT") {
            s.log.format = match v {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(
                        "log.format",
                        format!("TOLLGATE_LOG_FORMAT={v:?}: expected \"text\" or \"json\""),
                    ))
                }
            };
        }
        if let Some(v) = self.get("TOLLGATE_LOG").or_else(|| self.get("RUST_LOG")) {
            s.log.level = v.to_owned();
        }
        Ok(())
    }
}
