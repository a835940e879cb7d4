//! Telemetry: the process's logging. One JSON object per line on stderr (flattened events, no
//! span context), filtered by an `EnvFilter` directive such as `info` or
//! `airisk_server=debug,info`. Secrets never reach a log line: nothing logs them.

use anyhow::{Context, anyhow};

/// Installs the JSON logger with the filter directive `filter`, once per process.
///
/// # Errors
/// An invalid filter directive, or a logger already installed.
pub fn init(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid log filter {filter:?}"))?;
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| anyhow!("could not install the logger: {e}"))
}
