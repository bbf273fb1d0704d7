//! Log setup: `tracing` events to stderr, as text or JSON lines (`--log-format-json`).
//!
//! The level of this crate follows klog's `-v`: 0–1 `info`, 2–3 `debug`, 4 and above `trace`.
//! Everything else logs at `warn`, and the HTTP, TLS, gRPC and Azure SDK crates are pinned to
//! `warn` by name at every `-v`, because at debug/trace some of them print request headers, i.e.
//! bearer tokens. `RUST_LOG`, when set, replaces the `-v` levels; the pins still apply to it unless
//! it names one of those crates explicitly (`RUST_LOG=debug` does not open them, `h2=trace` does:
//! an operator's deliberate choice). Records of the `log` crate (used by a few dependencies) are not
//! bridged into `tracing`, so they are never printed.

use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, ParseError};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Crates held at `warn` whatever `-v` says.
pub const QUIET_CRATES: [&str; 10] = [
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "rustls",
    "tonic",
    "tower",
    "azure_core",
    "azure_identity",
    "typespec_client_core",
];

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid RUST_LOG: {0}")]
    Filter(#[from] ParseError),
    #[error("a global logger is already installed: {0}")]
    AlreadySet(#[from] tracing::subscriber::SetGlobalDefaultError),
}

/// The level of this crate for a klog `-v`.
fn own_level(verbosity: u8) -> &'static str {
    match verbosity {
        0..=1 => "info",
        2..=3 => "debug",
        _ => "trace",
    }
}

/// The filter for `rust_log` (the value of `RUST_LOG`, if set and not empty) or `verbosity`.
pub fn filter_for(rust_log: Option<&str>, verbosity: u8) -> Result<EnvFilter, ParseError> {
    let pins = QUIET_CRATES.map(|name| format!("{name}=warn")).join(",");
    let levels = match rust_log {
        Some(rust_log) => rust_log.to_owned(),
        None => format!("warn,{}={}", env!("CARGO_CRATE_NAME"), own_level(verbosity)),
    };
    // Later directives replace earlier ones for the same target, so RUST_LOG can reopen a pinned
    // crate only by naming it.
    EnvFilter::builder().parse(format!("{pins},{levels}"))
}

/// The filter from the `RUST_LOG` environment variable if set, else from `verbosity`.
pub fn log_filter(verbosity: u8) -> Result<EnvFilter, ParseError> {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty());
    filter_for(rust_log.as_deref(), verbosity)
}

/// The provider's subscriber writing to `writer` (tests capture logs with it).
pub fn subscriber_with_writer<W>(
    json: bool,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let format = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        Box::new(registry.with(format.json().with_current_span(true).with_span_list(false)))
    } else {
        Box::new(registry.with(format))
    }
}

/// Installs the process-wide subscriber: stderr, text or JSON, filtered as [`log_filter`].
pub fn init_logging(json: bool, verbosity: u8) -> Result<(), LoggingError> {
    let subscriber = subscriber_with_writer(json, log_filter(verbosity)?, std::io::stderr);
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_levels() {
        assert_eq!(own_level(0), "info");
        assert_eq!(own_level(1), "info");
        assert_eq!(own_level(2), "debug");
        assert_eq!(own_level(3), "debug");
        assert_eq!(own_level(4), "trace");
        assert_eq!(own_level(9), "trace");
    }

    #[test]
    fn filters_parse() {
        for verbosity in 0..6 {
            assert!(filter_for(None, verbosity).is_ok());
        }
        assert!(filter_for(Some("debug"), 0).is_ok());
        assert!(filter_for(Some("akv_csi_provider=notalevel"), 0).is_err());
    }
}
