//! Tracing, metrics and access logs.
//!
//! [`init`] installs the process-wide `tracing` subscriber (call once, from `main`);
//! [`metrics::Metrics`] holds the request metrics the admin listener serves;
//! [`access_log`] renders one `$context`-style line per request.
//!
//! Shared by the proxy and the controller. May depend on: `turnpike-core` (for the access-log
//! format of the model), `tracing` and `prometheus-client`; never on Kubernetes or the proxy.
//! Start reading at [`metrics::Metrics`].

pub mod access_log;
pub mod metrics;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// How log lines are written (always to stderr, so stdout stays free for what a command
/// prints for people, e.g. `turnpike local`'s summary).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; coloured only when stderr is a terminal, so a redirected log has no
    /// escape codes.
    #[default]
    Text,
    /// One JSON object per line, fields flattened into it.
    Json,
}

// === impl LogFormat ===

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("text") {
            Ok(Self::Text)
        } else if s.eq_ignore_ascii_case("json") {
            Ok(Self::Json)
        } else {
            Err(format!("{s:?} is not a log format (text, json)"))
        }
    }
}

/// Installs the global subscriber with `RUST_LOG` filtering (default `info`) and writes in
/// `format` to stderr. Access log events (target `turnpike::access_log`) go through the same
/// subscriber; filter them with `RUST_LOG=turnpike::access_log=off`.
pub fn init(format: LogFormat) -> Result<(), InitError> {
    use std::io::IsTerminal as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init()?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn log_formats_parse_case_insensitively_and_name_the_choices() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        let err = "yaml".parse::<LogFormat>().expect_err("not a format");
        assert!(err.contains("text, json"), "{err}");
    }
}
