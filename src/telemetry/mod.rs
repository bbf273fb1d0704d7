//! Logs, metrics and health.
//!
//! Metrics are process-wide ([`metrics()`]): every module records through the methods of
//! [`Metrics`], whose label values are bounded (no error strings, no pod names, no secret values;
//! failures become label classes in [`classes`]). [`exposition`] picks the text format.
//! [`http`] serves them on `/metrics` next to the health endpoint, whose check is [`health`];
//! [`logging`] sets up `tracing`.

pub mod classes;
pub mod exposition;
pub mod health;
pub mod http;
pub mod logging;
mod metrics;

use std::sync::OnceLock;

pub use classes::{Outcome, error_class};
pub use exposition::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE};
pub use health::check_grpc_health;
pub use http::{
    BindError, HealthConfig, HttpLimits, HttpServer, all_interfaces, bind_health, bind_metrics,
};
pub use logging::{LoggingError, init_logging, log_filter, subscriber_with_writer};
pub use metrics::{
    CertificateObject, EXPIRY_RETENTION, ExpiryOptions, INVALID_OBJECT_NAME, InFlightGuard,
    LATENCY_BUCKETS, MAX_EXPIRY_SERIES, MAX_OBJECT_NAMES, Metrics, OVERFLOW_OBJECT_NAME, PREFIX,
    expiry_prune_interval,
};

/// Outcome of a content-cache lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// Joined an identical fetch already in flight.
    Coalesced,
}

impl CacheOutcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Coalesced => "coalesced",
        }
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}
