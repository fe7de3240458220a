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

/// Installs the global subscriber: `RUST_LOG` filters (default `info`), and
/// `TURNPIKE_LOG_FORMAT=json` switches from human-readable lines to JSON objects. Access log
/// events (target `turnpike::access_log`) go through the same subscriber; filter them with
/// `RUST_LOG=turnpike::access_log=off`.
pub fn init() -> Result<(), InitError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("TURNPIKE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init()?;
    } else {
        registry.with(fmt::layer()).try_init()?;
    }
    Ok(())
}
