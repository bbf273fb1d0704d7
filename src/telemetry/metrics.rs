//! The Prometheus metrics of the provider, held in one process-wide `prometheus-client` registry.
//!
//! The metric names, labels and semantics are documented on [`Metrics`].

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::CacheOutcome;

/// Latency buckets (seconds), the Go provider's.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 15.0, 30.0,
];

/// How long a certificate-expiry series survives without being refreshed by a mount.
pub const EXPIRY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Content type of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest label value kept (Key Vault object names are at most 127 characters).
const MAX_LABEL_LEN: usize = 127;

/// A label value: kept when it looks like a class or an Azure name (`[A-Za-z0-9._-]`, at most 127
/// characters), otherwise `invalid`. This is the guarantee that labels hold no free text.
pub fn label(value: &str) -> String {
    let well_formed = !value.is_empty()
        && value.len() <= MAX_LABEL_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if well_formed {
        value.to_owned()
    } else {
        "invalid".to_owned()
    }
}

/// A duration fit for a histogram: finite and not negative.
fn seconds_value(seconds: f64) -> Option<f64> {
    seconds.is_finite().then_some(seconds.max(0.0))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    grpc_method: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyVaultLabels {
    object_type: String,
    status_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    mode: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VaultLabels {
    vault: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExpiryLabels {
    vault: String,
    object_type: String,
    object_name: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Most certificate-expiry series kept; at the cap, a new object replaces the least recently
/// refreshed one. Bounds what mounts of many distinct objects can add to memory and to `/metrics`.
pub const MAX_EXPIRY_SERIES: usize = 10_000;

/// How the certificate-expiry series are kept and labelled (`--certificate-expiry-retention`,
/// `--certificate-expiry-object-names`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiryOptions {
    /// A series not refreshed for this long is dropped.
    pub retention: Duration,
    /// Whether `object_name` carries the Key Vault object name. When false it is empty (the label
    /// is then absent for Prometheus), and each vault and object type has one series holding the
    /// earliest notAfter among its objects.
    pub object_names: bool,
}

impl Default for ExpiryOptions {
    fn default() -> Self {
        Self {
            retention: EXPIRY_RETENTION,
            object_names: true,
        }
    }
}

/// The certificate-expiry gauges, and per served object when it was last refreshed.
#[derive(Debug)]
struct ExpiryGauges {
    family: Family<ExpiryLabels, Gauge>,
    state: Mutex<ExpiryState>,
}

#[derive(Debug)]
struct ExpiryState {
    options: ExpiryOptions,
    /// Per object (full labels): when last set, and its notAfter.
    objects: HashMap<ExpiryLabels, (Instant, i64)>,
}

impl ExpiryState {
    /// The exported label set of an object's labels.
    fn exported(&self, labels: &ExpiryLabels) -> ExpiryLabels {
        if self.options.object_names {
            labels.clone()
        } else {
            ExpiryLabels {
                object_name: String::new(),
                ..labels.clone()
            }
        }
    }
}

impl ExpiryGauges {
    fn new(options: ExpiryOptions) -> Self {
        Self {
            family: Family::default(),
            state: Mutex::new(ExpiryState {
                options,
                objects: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExpiryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, labels: ExpiryLabels, not_after: i64) {
        let mut state = self.lock();
        if state.objects.len() >= MAX_EXPIRY_SERIES && !state.objects.contains_key(&labels) {
            let oldest = state
                .objects
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(labels, _)| labels.clone());
            if let Some(oldest) = oldest {
                state.objects.remove(&oldest);
                let exported = state.exported(&oldest);
                self.publish(&state, &exported);
            }
        }
        let exported = state.exported(&labels);
        state.objects.insert(labels, (Instant::now(), not_after));
        self.publish(&state, &exported);
    }

    /// Sets (or removes) one exported series from the objects that map to it.
    fn publish(&self, state: &ExpiryState, exported: &ExpiryLabels) {
        let earliest = if state.options.object_names {
            state.objects.get(exported).map(|(_, not_after)| *not_after)
        } else {
            state
                .objects
                .iter()
                .filter(|(labels, _)| {
                    labels.vault == exported.vault && labels.object_type == exported.object_type
                })
                .map(|(_, (_, not_after))| *not_after)
                .min()
        };
        match earliest {
            Some(not_after) => {
                self.family.get_or_create(exported).set(not_after);
            }
            None => {
                self.family.remove(exported);
            }
        }
    }

    fn prune(&self) {
        let mut state = self.lock();
        let retention = state.options.retention;
        let mut stale = Vec::new();
        state.objects.retain(|labels, (at, _)| {
            let fresh = at.elapsed() < retention;
            if !fresh {
                stale.push(labels.clone());
            }
            fresh
        });
        let mut exported: Vec<ExpiryLabels> = stale.iter().map(|l| state.exported(l)).collect();
        exported.sort_by(|a, b| {
            (&a.vault, &a.object_type, &a.object_name).cmp(&(
                &b.vault,
                &b.object_type,
                &b.object_name,
            ))
        });
        exported.dedup();
        for labels in &exported {
            self.publish(&state, labels);
        }
    }

    fn configure(&self, options: ExpiryOptions) {
        let mut state = self.lock();
        state.options = options;
        self.family.clear();
        let exported: Vec<ExpiryLabels> = state.objects.keys().map(|l| state.exported(l)).collect();
        for labels in &exported {
            self.publish(&state, labels);
        }
    }

    fn len(&self) -> usize {
        self.lock().objects.len()
    }
}

/// The provider's metrics.
///
/// Names carry no prefix, so that the two names the Go provider exported (`grpc_request`,
/// `keyvault_request`) stay exactly as dashboards know them. Unlike upstream, every label is
/// bounded: classes chosen by the code (`result`, `status_class`, `mode`, `outcome`) and names that
/// configuration bounds (vault and object names). Label values are checked on the way in
/// (`label`): anything that does not look like such a name is recorded as `invalid`, so free text
/// (error messages, tokens) can never become a label.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `grpc_request` | histogram (seconds) | `grpc_method` (`Mount`), `result` — its `_count` is the mount counter |
/// | `mounts_in_flight` | gauge | |
/// | `keyvault_request` | histogram (seconds) | `object_type`, `status_class` |
/// | `token_requests_total` | counter | `mode`, `result` |
/// | `keyvault_throttled_total` | counter | `vault` |
/// | `backoff_seconds_total` | counter (float) | |
/// | `cache_requests_total` | counter | `outcome` (`hit`, `miss`, `coalesced`) |
/// | `certificate_expiry_timestamp_seconds` | gauge (Unix seconds) | `vault`, `object_type`, `object_name` |
///
/// `certificate_expiry_timestamp_seconds` holds, per label set, the value of the latest
/// [`Metrics::certificate_expiry`] call: the provider calls it once per served certificate object
/// with the EARLIEST notAfter among the certificates in it (leaf, intermediates, root), so the alert
/// `certificate_expiry_timestamp_seconds - time() < 14 * 86400` fires as soon as any part of the
/// served chain is about to expire. A label set not refreshed for [`ExpiryOptions::retention`]
/// (default [`EXPIRY_RETENTION`]; no mount served that object since) is dropped by
/// [`Metrics::prune_expiry`], which the binary runs on a timer ([`expiry_prune_interval`]) and
/// every encoding runs too, so deleted or renamed objects do not linger; at most
/// [`MAX_EXPIRY_SERIES`] objects are tracked.
///
/// What `/metrics` tells its readers about tenants: the names of the vaults mounted from (in
/// `keyvault_throttled_total` and `certificate_expiry_timestamp_seconds`) and, unless
/// [`ExpiryOptions::object_names`] is off, the names of the certificate objects served and when
/// they expire. No pod, namespace, identity, secret value or error text is ever a label.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    grpc_request: Family<GrpcLabels, Histogram>,
    mounts_in_flight: Gauge,
    keyvault_request: Family<KeyVaultLabels, Histogram>,
    token_requests: Family<TokenLabels, Counter>,
    throttled: Family<VaultLabels, Counter>,
    backoff_seconds: Counter<f64, AtomicU64>,
    cache_requests: Family<CacheLabels, Counter>,
    certificate_expiry: ExpiryGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::with_expiry_options(ExpiryOptions::default())
    }
}

impl Metrics {
    /// Metrics whose certificate-expiry series are dropped after `retention` without refresh.
    pub fn with_expiry_retention(retention: Duration) -> Self {
        Self::with_expiry_options(ExpiryOptions {
            retention,
            ..ExpiryOptions::default()
        })
    }

    /// Metrics with the given certificate-expiry options.
    pub fn with_expiry_options(options: ExpiryOptions) -> Self {
        let mut registry = Registry::default();
        let grpc_request = Family::<GrpcLabels, Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "grpc_request",
            "Duration of gRPC Mount calls in seconds, by result class",
            grpc_request.clone(),
        );
        let mounts_in_flight = Gauge::default();
        registry.register(
            "mounts_in_flight",
            "Mounts being served now",
            mounts_in_flight.clone(),
        );
        let keyvault_request =
            Family::<KeyVaultLabels, Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "keyvault_request",
            "Duration of Key Vault HTTP calls in seconds, by object type and status class",
            keyvault_request.clone(),
        );
        let token_requests = Family::default();
        registry.register(
            "token_requests",
            "Token acquisitions by identity mode and result",
            token_requests.clone(),
        );
        let throttled = Family::default();
        registry.register(
            "keyvault_throttled",
            "Key Vault answers that asked to slow down (429, or 503 with Retry-After), by vault",
            throttled.clone(),
        );
        let backoff_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "backoff_seconds",
            "Seconds spent waiting before retries",
            backoff_seconds.clone(),
        );
        let cache_requests = Family::default();
        registry.register(
            "cache_requests",
            "Content-cache lookups by outcome (hit, miss, coalesced)",
            cache_requests.clone(),
        );
        let certificate_expiry = ExpiryGauges::new(options);
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "Earliest notAfter (Unix seconds) of the certificates served for an object",
            certificate_expiry.family.clone(),
        );
        Self {
            registry,
            grpc_request,
            mounts_in_flight,
            keyvault_request,
            token_requests,
            throttled,
            backoff_seconds,
            cache_requests,
            certificate_expiry,
        }
    }

    /// A mount started; the gauge of in-flight mounts goes down when the guard drops.
    pub fn mount_started(&self) -> InFlightGuard {
        self.mounts_in_flight.inc();
        InFlightGuard {
            gauge: self.mounts_in_flight.clone(),
        }
    }

    /// A mount ended. `result` is a bounded class: `ok`, `invalid_argument`, `not_found`,
    /// `permission_denied`, `unauthenticated`, `deadline_exceeded`, `unavailable`, `internal`, ...
    pub fn mount_finished(&self, result: &str, seconds: f64) {
        if let Some(seconds) = seconds_value(seconds) {
            let labels = GrpcLabels {
                grpc_method: "Mount".to_owned(),
                result: label(result),
            };
            self.grpc_request.get_or_create(&labels).observe(seconds);
        }
    }

    /// One Key Vault HTTP call. `status_class`: `2xx`, `4xx`, `429`, `5xx`, `error` (no response).
    pub fn keyvault_request(&self, object_type: &str, status_class: &str, seconds: f64) {
        if let Some(seconds) = seconds_value(seconds) {
            let labels = KeyVaultLabels {
                object_type: label(object_type),
                status_class: label(status_class),
            };
            self.keyvault_request
                .get_or_create(&labels)
                .observe(seconds);
        }
    }

    /// One token acquisition. `mode`: [`crate::request::IdentityRequest::mode_name`];
    /// `result`: `ok` or `error`.
    pub fn token_request(&self, mode: &str, result: &str) {
        self.token_requests
            .get_or_create(&TokenLabels {
                mode: label(mode),
                result: label(result),
            })
            .inc();
    }

    /// Key Vault answered 429 (or 503 with Retry-After) for this vault name.
    pub fn throttled(&self, vault: &str) {
        self.throttled
            .get_or_create(&VaultLabels {
                vault: label(vault),
            })
            .inc();
    }

    /// Seconds spent waiting in back-off before retrying.
    pub fn backoff(&self, seconds: f64) {
        if let Some(seconds) = seconds_value(seconds) {
            self.backoff_seconds.inc_by(seconds);
        }
    }

    pub fn cache(&self, outcome: CacheOutcome) {
        self.cache_requests
            .get_or_create(&CacheLabels {
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// notAfter (Unix seconds) of a certificate served in a mount. Call it once per served object
    /// with the earliest notAfter of the certificates in it (see [`Metrics`]).
    pub fn certificate_expiry(
        &self,
        vault: &str,
        object_type: &str,
        object_name: &str,
        not_after: i64,
    ) {
        let labels = ExpiryLabels {
            vault: label(vault),
            object_type: label(object_type),
            object_name: label(object_name),
        };
        self.certificate_expiry.set(labels, not_after);
    }

    /// Changes how certificate-expiry series are kept and labelled; the series already held are
    /// relabelled at once.
    pub fn configure_expiry(&self, options: ExpiryOptions) {
        self.certificate_expiry.configure(options);
    }

    /// Drops the certificate-expiry series not refreshed within the retention.
    pub fn prune_expiry(&self) {
        self.certificate_expiry.prune();
    }

    /// How many certificate objects the expiry series currently track.
    pub fn expiry_objects(&self) -> usize {
        self.certificate_expiry.len()
    }

    /// All metrics in the OpenMetrics text format ([`OPENMETRICS_CONTENT_TYPE`]), after dropping
    /// stale certificate-expiry series.
    pub fn encode(&self) -> String {
        self.certificate_expiry.prune();
        let mut text = String::new();
        // Cannot fail: writing to a String never fails, and our label sets encode infallibly.
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("encoding metrics into a String");
        text
    }
}

/// How often the binary prunes certificate-expiry series for `retention`: a tenth of it, between
/// one second and five minutes, so a series outlives its retention by at most that.
pub fn expiry_prune_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// Decrements the in-flight mount gauge on drop.
#[derive(Debug)]
pub struct InFlightGuard {
    gauge: Gauge,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_hold_no_free_text() {
        assert_eq!(label("my-vault"), "my-vault");
        assert_eq!(label("2xx"), "2xx");
        assert_eq!(label("bad request: token abc"), "invalid");
        assert_eq!(label("a\"b"), "invalid");
        assert_eq!(label(""), "invalid");
        assert_eq!(label(&"x".repeat(128)), "invalid");
    }

    #[test]
    fn in_flight_gauge_follows_guards() {
        let m = Metrics::default();
        let a = m.mount_started();
        let b = m.mount_started();
        assert!(m.encode().contains("mounts_in_flight 2\n"));
        drop(a);
        drop(b);
        assert!(m.encode().contains("mounts_in_flight 0\n"));
    }

    #[test]
    fn mount_count_comes_from_the_histogram() {
        let m = Metrics::default();
        m.mount_finished("ok", 0.25);
        m.mount_finished("ok", 0.05);
        m.mount_finished("not_found", f64::NAN);
        let text = m.encode();
        assert!(
            text.contains("grpc_request_count{grpc_method=\"Mount\",result=\"ok\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "grpc_request_bucket{le=\"0.1\",grpc_method=\"Mount\",result=\"ok\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("not_found"),
            "non-finite durations are not recorded"
        );
    }

    #[test]
    fn counters_and_float_backoff() {
        let m = Metrics::default();
        m.token_request("workload_identity", "ok");
        m.throttled("vault1");
        m.throttled("vault1");
        m.backoff(1.5);
        m.backoff(-3.0);
        m.cache(CacheOutcome::Coalesced);
        m.keyvault_request("secret", "429", 0.3);
        let text = m.encode();
        for line in [
            "token_requests_total{mode=\"workload_identity\",result=\"ok\"} 1\n",
            "keyvault_throttled_total{vault=\"vault1\"} 2\n",
            "backoff_seconds_total 1.5\n",
            "cache_requests_total{outcome=\"coalesced\"} 1\n",
            "keyvault_request_count{object_type=\"secret\",status_class=\"429\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn stale_expiry_series_are_dropped() {
        let m = Metrics::with_expiry_retention(Duration::from_millis(50));
        m.certificate_expiry("v", "cert", "old", 100);
        std::thread::sleep(Duration::from_millis(80));
        m.certificate_expiry("v", "cert", "new", 200);
        let text = m.encode();
        assert!(!text.contains("object_name=\"old\""), "{text}");
        assert!(text.contains("certificate_expiry_timestamp_seconds{vault=\"v\",object_type=\"cert\",object_name=\"new\"} 200\n"), "{text}");
    }

    #[test]
    fn expiry_series_are_pruned_without_a_scrape() {
        let m = Metrics::with_expiry_retention(Duration::from_millis(30));
        m.certificate_expiry("v", "cert", "a", 100);
        assert_eq!(m.expiry_objects(), 1);
        std::thread::sleep(Duration::from_millis(50));
        m.prune_expiry();
        assert_eq!(m.expiry_objects(), 0);
        assert!(!m.encode().contains("object_name=\"a\""));
        assert_eq!(
            expiry_prune_interval(Duration::from_secs(24 * 3600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            expiry_prune_interval(Duration::from_millis(30)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn object_names_can_be_left_out_of_expiry_labels() {
        let m = Metrics::default();
        m.certificate_expiry("v", "cert", "late", 300);
        m.certificate_expiry("v", "cert", "early", 100);
        m.certificate_expiry("w", "secret", "other", 200);
        m.configure_expiry(ExpiryOptions {
            object_names: false,
            ..ExpiryOptions::default()
        });
        let text = m.encode();
        assert!(
            !text.contains("late") && !text.contains("early") && !text.contains("other"),
            "{text}"
        );
        assert!(text.contains("certificate_expiry_timestamp_seconds{vault=\"v\",object_type=\"cert\",object_name=\"\"} 100\n"), "{text}");
        assert!(text.contains("certificate_expiry_timestamp_seconds{vault=\"w\",object_type=\"secret\",object_name=\"\"} 200\n"), "{text}");
        m.certificate_expiry("v", "cert", "earlier", 50);
        assert!(
            m.encode()
                .contains("object_type=\"cert\",object_name=\"\"} 50\n")
        );
    }

    #[test]
    fn expiry_series_are_capped() {
        let m = Metrics::default();
        for n in 0..MAX_EXPIRY_SERIES + 5 {
            m.certificate_expiry("v", "cert", &format!("c{n}"), n as i64);
        }
        assert_eq!(m.expiry_objects(), MAX_EXPIRY_SERIES);
        let text = m.encode();
        assert!(text.contains(&format!("object_name=\"c{}\"", MAX_EXPIRY_SERIES + 4)));
    }
}
