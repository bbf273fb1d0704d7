//! Logs, metrics and health.
//!
//! Metrics are process-wide ([`metrics()`]): every module records through the methods below, whose
//! label values are bounded (no error strings, no pod names, no secret values).
//!
//! TODO(telemetry helper): implement the bodies, `/metrics`, `/healthz` and logging setup.

use std::sync::OnceLock;

/// Outcome of a content-cache lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// Joined an identical fetch already in flight.
    Coalesced,
}

/// The provider's metrics.
#[derive(Debug, Default)]
pub struct Metrics {}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    /// A mount started; the gauge of in-flight mounts goes down when the guard drops.
    pub fn mount_started(&self) -> InFlightGuard {
        InFlightGuard {}
    }

    /// A mount ended. `result` is a bounded class: `ok`, `invalid_argument`, `not_found`,
    /// `permission_denied`, `unauthenticated`, `deadline_exceeded`, `unavailable`, `internal`, ...
    pub fn mount_finished(&self, _result: &str, _seconds: f64) {}

    /// One Key Vault HTTP call. `status_class`: `2xx`, `4xx`, `429`, `5xx`, `error` (no response).
    pub fn keyvault_request(&self, _object_type: &str, _status_class: &str, _seconds: f64) {}

    /// One token acquisition. `mode`: [`crate::request::IdentityRequest::mode_name`];
    /// `result`: `ok` or `error`.
    pub fn token_request(&self, _mode: &str, _result: &str) {}

    /// Key Vault answered 429 (or 503 with Retry-After) for this vault name.
    pub fn throttled(&self, _vault: &str) {}

    /// Seconds spent waiting in back-off before retrying.
    pub fn backoff(&self, _seconds: f64) {}

    pub fn cache(&self, _outcome: CacheOutcome) {}

    /// notAfter (Unix seconds) of a certificate served in a mount.
    pub fn certificate_expiry(
        &self,
        _vault: &str,
        _object_type: &str,
        _object_name: &str,
        _not_after: i64,
    ) {
    }
}

/// Decrements the in-flight mount gauge on drop.
#[derive(Debug)]
pub struct InFlightGuard {}
