//! Logging setup: human-readable lines on stderr, quiet unless `RUST_LOG` asks for more.

use tracing_subscriber::EnvFilter;

/// Filter used when `RUST_LOG` is unset: only this crate's warnings.
const DEFAULT_FILTER: &str = "mock_provider=warn";

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // An error only means a subscriber is already installed, which is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
