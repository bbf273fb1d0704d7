//! The Prometheus metrics of the provider, held in one process-wide `prometheus-client` registry.
//!
//! The metric names, labels and semantics are documented on [`Metrics`] and in `docs/metrics.md`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::CacheOutcome;
use super::classes::{Outcome, error_class, exchange_class, grpc_code_name};
use super::exposition::to_prometheus_text;

/// Latency buckets (seconds) of every histogram: upstream's
/// (Azure/secrets-store-csi-driver-provider-azure v1.8.2, `pkg/metrics/prometheus_exporter.go`).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 15.0, 30.0,
];

/// Prefix of every metric of ours (upstream's two histograms keep their bare names).
pub const PREFIX: &str = "akv_csi_provider";

/// How long a certificate-expiry series survives without being refreshed by a mount: longer than
/// any realistic interval between two mounts of one object (a pod's mount, or a rotation poll).
pub const EXPIRY_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Default of `--metrics-max-object-names`.
pub const MAX_OBJECT_NAMES: usize = 500;

/// `object_name` of `keyvault_request` once [`Metrics::set_max_object_names`] names are in use.
pub const OVERFLOW_OBJECT_NAME: &str = "_overflow";

/// `object_name` of `keyvault_request` for a name that is not a Key Vault object name.
pub const INVALID_OBJECT_NAME: &str = "_invalid";

/// Longest label value kept (Key Vault object names are at most 127 characters).
const MAX_LABEL_LEN: usize = 127;

/// Upstream's constant labels: `service.name` (exported as `service_name`), `provider` and
/// `os_type` (Go's `runtime.GOOS`, which Rust's `std::env::consts::OS` matches for `linux` and
/// `windows`), and the `otel_scope_name` the OpenTelemetry Prometheus exporter (v0.65) adds.
const SERVICE_NAME: &str = "csi-secrets-store-provider-azure";
const PROVIDER: &str = "azure";
const SCOPE_NAME: &str = "csi-secrets-store-provider-azure";

/// A label value: kept when it looks like a class or an Azure or Kubernetes name
/// (`[A-Za-z0-9._-]`, at most 127 characters), otherwise `invalid`. This is the guarantee that
/// labels hold no free text.
pub(crate) fn label(value: &str) -> String {
    if well_formed(value) {
        value.to_owned()
    } else {
        "invalid".to_owned()
    }
}

fn well_formed(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LABEL_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A label value that may be empty (an unknown namespace or SecretProviderClass, a version).
fn optional_label(value: &str) -> String {
    if value.is_empty() {
        String::new()
    } else {
        label(value)
    }
}

/// A duration fit for a histogram: finite and not negative.
fn seconds_value(seconds: f64) -> Option<f64> {
    seconds.is_finite().then_some(seconds.max(0.0))
}

/// `grpc_request`'s labels, in the order upstream's Go client sorts them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    grpc_code: &'static str,
    grpc_message: &'static str,
    grpc_method: &'static str,
    os_type: &'static str,
    otel_scope_name: &'static str,
    provider: &'static str,
    service_name: &'static str,
}

/// `keyvault_request`'s labels, in the order upstream's Go client sorts them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyVaultLabels {
    error: &'static str,
    object_name: String,
    object_type: String,
    os_type: &'static str,
    otel_scope_name: &'static str,
    provider: &'static str,
    service_name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    object_type: String,
    status_class: &'static str,
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

/// One served certificate object: the key of an expiry series, without its version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct CertificateObject {
    pub namespace: String,
    pub secret_provider_class: String,
    pub vault: String,
    pub object_type: String,
    pub object_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ExpiryLabels {
    namespace: String,
    secret_provider_class: String,
    vault: String,
    object_type: String,
    object_name: String,
    object_version: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Most certificate objects whose expiry is tracked; at the cap, a new object replaces the least
/// recently refreshed one. Bounds what mounts of many distinct objects can add to memory and to
/// `/metrics` (two series per object).
pub const MAX_EXPIRY_SERIES: usize = 10_000;

/// How the certificate-expiry series are kept and labelled (`--certificate-expiry-retention`,
/// `--certificate-expiry-object-names`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiryOptions {
    /// A series not refreshed for this long is dropped.
    pub retention: Duration,
    /// Whether `object_name` and `object_version` carry the Key Vault object's name and version.
    /// When false both are empty (absent for Prometheus), and each namespace,
    /// SecretProviderClass, vault and object type has one series holding the earliest notAfter
    /// among its objects.
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

/// The two certificate-expiry gauges, and per served object when it was last refreshed.
#[derive(Debug)]
struct ExpiryGauges {
    leaf: Family<ExpiryLabels, Gauge>,
    chain: Family<ExpiryLabels, Gauge>,
    state: Mutex<ExpiryState>,
}

#[derive(Clone, Debug)]
struct Served {
    at: Instant,
    version: String,
    leaf: i64,
    earliest: i64,
}

#[derive(Debug)]
struct ExpiryState {
    options: ExpiryOptions,
    objects: HashMap<CertificateObject, Served>,
}

impl ExpiryState {
    /// The exported label set of an object.
    fn exported(&self, object: &CertificateObject, version: &str) -> ExpiryLabels {
        let named = self.options.object_names;
        ExpiryLabels {
            namespace: object.namespace.clone(),
            secret_provider_class: object.secret_provider_class.clone(),
            vault: object.vault.clone(),
            object_type: object.object_type.clone(),
            object_name: if named {
                object.object_name.clone()
            } else {
                String::new()
            },
            object_version: if named {
                version.to_owned()
            } else {
                String::new()
            },
        }
    }
}

impl ExpiryGauges {
    fn new(options: ExpiryOptions) -> Self {
        Self {
            leaf: Family::default(),
            chain: Family::default(),
            state: Mutex::new(ExpiryState {
                options,
                objects: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExpiryState> {
        crate::sync::lock(&self.state)
    }

    fn set(&self, object: CertificateObject, served: Served) {
        let mut state = self.lock();
        if state.objects.len() >= MAX_EXPIRY_SERIES && !state.objects.contains_key(&object) {
            let oldest = state
                .objects
                .iter()
                .min_by_key(|(_, served)| served.at)
                .map(|(object, served)| (object.clone(), served.version.clone()));
            if let Some((oldest, version)) = oldest {
                state.objects.remove(&oldest);
                self.publish(&state, &oldest, &version);
            }
        }
        // A new version of the object replaces the old one's series.
        let previous = state.objects.insert(object.clone(), served.clone());
        if let Some(previous) = previous.filter(|p| p.version != served.version) {
            self.publish(&state, &object, &previous.version);
        }
        self.publish(&state, &object, &served.version);
    }

    /// Sets (or removes) the exported series pair of `object` at `version` from the objects that
    /// map to it.
    fn publish(&self, state: &ExpiryState, object: &CertificateObject, version: &str) {
        let exported = state.exported(object, version);
        let found = if state.options.object_names {
            state
                .objects
                .get(object)
                .filter(|served| served.version == version)
                .map(|served| (served.leaf, served.earliest))
        } else {
            let mut found: Option<(i64, i64)> = None;
            let same_group = |other: &CertificateObject| {
                other.namespace == object.namespace
                    && other.secret_provider_class == object.secret_provider_class
                    && other.vault == object.vault
                    && other.object_type == object.object_type
            };
            for (_, served) in state.objects.iter().filter(|(o, _)| same_group(o)) {
                found = Some(match found {
                    None => (served.leaf, served.earliest),
                    Some((leaf, earliest)) => {
                        (leaf.min(served.leaf), earliest.min(served.earliest))
                    }
                });
            }
            found
        };
        match found {
            Some((leaf, earliest)) => {
                self.leaf.get_or_create(&exported).set(leaf);
                self.chain.get_or_create(&exported).set(earliest);
            }
            None => {
                self.leaf.remove(&exported);
                self.chain.remove(&exported);
            }
        }
    }

    /// Every exported series, recomputed from the objects (after a prune or a relabelling).
    fn republish(&self, state: &ExpiryState) {
        self.leaf.clear();
        self.chain.clear();
        let mut values: HashMap<ExpiryLabels, (i64, i64)> = HashMap::new();
        for (object, served) in &state.objects {
            let entry = values
                .entry(state.exported(object, &served.version))
                .or_insert((served.leaf, served.earliest));
            entry.0 = entry.0.min(served.leaf);
            entry.1 = entry.1.min(served.earliest);
        }
        for (labels, (leaf, earliest)) in values {
            self.leaf.get_or_create(&labels).set(leaf);
            self.chain.get_or_create(&labels).set(earliest);
        }
    }

    fn prune(&self) {
        let mut state = self.lock();
        let retention = state.options.retention;
        let before = state.objects.len();
        state
            .objects
            .retain(|_, served| served.at.elapsed() < retention);
        if state.objects.len() != before {
            self.republish(&state);
        }
    }

    fn configure(&self, options: ExpiryOptions) {
        let mut state = self.lock();
        state.options = options;
        self.republish(&state);
    }

    fn len(&self) -> usize {
        self.lock().objects.len()
    }
}

/// The distinct `(object_type, object_name)` pairs `keyvault_request` may carry.
#[derive(Debug)]
struct ObjectNames {
    max: AtomicUsize,
    seen: Mutex<HashSet<(String, String)>>,
}

impl ObjectNames {
    /// The label value for `name`: itself while fewer than `max` names are in use (or it is one
    /// of them), [`OVERFLOW_OBJECT_NAME`] after, [`INVALID_OBJECT_NAME`] when it is not a Key
    /// Vault object name (`[0-9A-Za-z-]`, 1 to 127 characters).
    fn admit(&self, object_type: &str, name: &str) -> String {
        let valid = !name.is_empty()
            && name.len() <= MAX_LABEL_LEN
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return INVALID_OBJECT_NAME.to_owned();
        }
        let mut seen = crate::sync::lock(&self.seen);
        let key = (object_type.to_owned(), name.to_owned());
        if seen.contains(&key) {
            return name.to_owned();
        }
        if seen.len() < self.max.load(Ordering::Relaxed) {
            seen.insert(key);
            return name.to_owned();
        }
        OVERFLOW_OBJECT_NAME.to_owned()
    }
}

/// The provider's metrics.
///
/// Upstream's two histograms keep upstream's names, label names and buckets
/// (Azure/secrets-store-csi-driver-provider-azure v1.8.2, `pkg/metrics`), so dashboards and
/// alerts written for it keep working; every other metric is ours, named `akv_csi_provider_*`.
/// Every label is bounded: classes chosen by the code ([`super::classes`]), names that
/// configuration bounds, and tenant-chosen names under a cap on distinct values.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `grpc_request` | histogram (seconds) | `grpc_method` (full method), `grpc_code` (Go's code name), `grpc_message` (class, `""` when OK), constant labels |
/// | `keyvault_request` | histogram (seconds) | `object_type`, `object_name` (capped), `error` (class, `""` on success), constant labels |
/// | `akv_csi_provider_mounts_in_flight` | gauge | |
/// | `akv_csi_provider_keyvault_http_request_duration_seconds` | histogram | `object_type`, `status_class` |
/// | `akv_csi_provider_token_requests_total` | counter | `mode`, `result` |
/// | `akv_csi_provider_keyvault_throttled_total` | counter | `vault` |
/// | `akv_csi_provider_backoff_seconds_total` | counter (float) | |
/// | `akv_csi_provider_cache_requests_total` | counter | `outcome` (`hit`, `miss`, `coalesced`) |
/// | `akv_csi_provider_certificate_expiry_timestamp_seconds` | gauge (Unix seconds) | `namespace`, `secret_provider_class`, `vault`, `object_type`, `object_name`, `object_version` |
/// | `akv_csi_provider_certificate_chain_expiry_timestamp_seconds` | gauge (Unix seconds) | the same |
///
/// Constant labels: `os_type`, `otel_scope_name`, `provider="azure"`,
/// `service_name="csi-secrets-store-provider-azure"`.
///
/// The certificate-expiry gauges hold, per served certificate object, its leaf's notAfter and
/// the earliest notAfter of all the certificates served in it (leaf, intermediates, root). A
/// series not refreshed for [`ExpiryOptions::retention`] (default [`EXPIRY_RETENTION`]) is dropped
/// by [`Metrics::prune_expiry`], which the binary runs on a timer ([`expiry_prune_interval`]) and
/// every encoding runs too; a new version of an object replaces its old version's series at once;
/// at most [`MAX_EXPIRY_SERIES`] objects are tracked.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    grpc_request: Family<GrpcLabels, Histogram>,
    keyvault_request: Family<KeyVaultLabels, Histogram>,
    object_names: ObjectNames,
    mounts_in_flight: Gauge,
    exchanges: Family<ExchangeLabels, Histogram>,
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
            "Distribution of how long it took for the gRPC requests",
            grpc_request.clone(),
        );
        let keyvault_request =
            Family::<KeyVaultLabels, Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "keyvault_request",
            "Distribution of how long it took to get from keyvault",
            keyvault_request.clone(),
        );
        let ours = registry.sub_registry_with_prefix(PREFIX);
        let mounts_in_flight = Gauge::default();
        ours.register(
            "mounts_in_flight",
            "Mounts being served now",
            mounts_in_flight.clone(),
        );
        let exchanges =
            Family::<ExchangeLabels, Histogram>::new_with_constructor(latency_histogram);
        ours.register(
            "keyvault_http_request_duration_seconds",
            "Duration of each HTTP exchange with Key Vault, by object type and status class (challenge for the unauthenticated first round trip)",
            exchanges.clone(),
        );
        let token_requests = Family::default();
        ours.register(
            "token_requests",
            "Token acquisitions by identity mode and result",
            token_requests.clone(),
        );
        let throttled = Family::default();
        ours.register(
            "keyvault_throttled",
            "Key Vault answers that asked to slow down (429, or 503 with Retry-After), by vault",
            throttled.clone(),
        );
        let backoff_seconds = Counter::<f64, AtomicU64>::default();
        ours.register(
            "backoff_seconds",
            "Seconds spent waiting before retries",
            backoff_seconds.clone(),
        );
        let cache_requests = Family::default();
        ours.register(
            "cache_requests",
            "Content-cache lookups by outcome (hit, miss, coalesced)",
            cache_requests.clone(),
        );
        let certificate_expiry = ExpiryGauges::new(options);
        ours.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter (Unix seconds) of the leaf certificate served for an object",
            certificate_expiry.leaf.clone(),
        );
        ours.register(
            "certificate_chain_expiry_timestamp_seconds",
            "Earliest notAfter (Unix seconds) of all the certificates served for an object",
            certificate_expiry.chain.clone(),
        );
        Self {
            registry,
            grpc_request,
            keyvault_request,
            object_names: ObjectNames {
                max: AtomicUsize::new(MAX_OBJECT_NAMES),
                seen: Mutex::new(HashSet::new()),
            },
            mounts_in_flight,
            exchanges,
            token_requests,
            throttled,
            backoff_seconds,
            cache_requests,
            certificate_expiry,
        }
    }

    /// Most distinct object names `keyvault_request` carries (`--metrics-max-object-names`); the
    /// calls for further objects are counted under `object_name="_overflow"`.
    pub fn set_max_object_names(&self, max: usize) {
        self.object_names.max.store(max, Ordering::Relaxed);
    }

    /// A mount started; the gauge of in-flight mounts goes down when the guard drops.
    pub fn mount_started(&self) -> InFlightGuard {
        self.mounts_in_flight.inc();
        InFlightGuard {
            gauge: self.mounts_in_flight.clone(),
        }
    }

    /// One gRPC call of ours ended. `method` is the full method name
    /// (`/v1alpha1.CSIDriverProvider/Mount`), one of the service's fixed set.
    pub fn grpc_request(&self, method: &'static str, code: tonic::Code, seconds: f64) {
        if let Some(seconds) = seconds_value(seconds) {
            let labels = GrpcLabels {
                grpc_code: grpc_code_name(code),
                grpc_message: error_class(Outcome::Grpc(code)),
                grpc_method: method,
                os_type: std::env::consts::OS,
                otel_scope_name: SCOPE_NAME,
                provider: PROVIDER,
                service_name: SERVICE_NAME,
            };
            self.grpc_request.get_or_create(&labels).observe(seconds);
        }
    }

    /// One Key Vault call for an object (a GET, or a version listing), retries included, as
    /// upstream records it. `outcome` is [`Outcome::KeyVault`] or [`Outcome::Abandoned`].
    pub fn keyvault_request(
        &self,
        object_type: &str,
        object_name: &str,
        outcome: Outcome,
        seconds: f64,
    ) {
        if let Some(seconds) = seconds_value(seconds) {
            let object_type = label(object_type);
            let object_name = self.object_names.admit(&object_type, object_name);
            let labels = KeyVaultLabels {
                error: error_class(outcome),
                object_name,
                object_type,
                os_type: std::env::consts::OS,
                otel_scope_name: SCOPE_NAME,
                provider: PROVIDER,
                service_name: SERVICE_NAME,
            };
            self.keyvault_request
                .get_or_create(&labels)
                .observe(seconds);
        }
    }

    /// One HTTP exchange with Key Vault: its status (`None`: no answer) and whether the request
    /// carried a token (see [`exchange_class`]).
    pub fn keyvault_exchange(
        &self,
        object_type: &str,
        status: Option<u16>,
        sent_token: bool,
        seconds: f64,
    ) {
        if let Some(seconds) = seconds_value(seconds) {
            let labels = ExchangeLabels {
                object_type: label(object_type),
                status_class: exchange_class(status, sent_token),
            };
            self.exchanges.get_or_create(&labels).observe(seconds);
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

    /// A certificate object was served in a mount: `version` is the version served, `leaf` the
    /// leaf's notAfter and `earliest` the earliest notAfter of the certificates served (Unix
    /// seconds).
    pub fn certificate_expiry(
        &self,
        object: &CertificateObject,
        version: &str,
        leaf: i64,
        earliest: i64,
    ) {
        let object = CertificateObject {
            namespace: optional_label(&object.namespace),
            secret_provider_class: optional_label(&object.secret_provider_class),
            vault: label(&object.vault),
            object_type: label(&object.object_type),
            object_name: label(&object.object_name),
        };
        let served = Served {
            at: Instant::now(),
            version: optional_label(version),
            leaf,
            earliest,
        };
        self.certificate_expiry.set(object, served);
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

    /// All metrics in OpenMetrics text 1.0.0 ([`super::OPENMETRICS_CONTENT_TYPE`]), after
    /// dropping stale certificate-expiry series.
    pub fn encode_openmetrics(&self) -> String {
        self.certificate_expiry.prune();
        let mut text = String::new();
        // Cannot fail: writing to a String never fails, and our label sets encode infallibly.
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("encoding metrics into a String");
        text
    }

    /// All metrics in the Prometheus text format 0.0.4
    /// ([`super::PROMETHEUS_TEXT_CONTENT_TYPE`]), what `/metrics` serves by default.
    pub fn encode(&self) -> String {
        to_prometheus_text(&self.encode_openmetrics())
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
    use crate::keyvault::KvErrorKind;

    const CONSTANT: &str = "os_type=\"linux\",otel_scope_name=\"csi-secrets-store-provider-azure\",provider=\"azure\",service_name=\"csi-secrets-store-provider-azure\"";

    fn object(ns: &str, name: &str) -> CertificateObject {
        CertificateObject {
            namespace: ns.to_owned(),
            secret_provider_class: "spc".to_owned(),
            vault: "v".to_owned(),
            object_type: "cert".to_owned(),
            object_name: name.to_owned(),
        }
    }

    fn expiry_line(name: &str, ns: &str, object: &str, version: &str, value: i64) -> String {
        format!(
            "akv_csi_provider_{name}{{namespace=\"{ns}\",secret_provider_class=\"spc\",vault=\"v\",object_type=\"cert\",object_name=\"{object}\",object_version=\"{version}\"}} {value}\n"
        )
    }

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
        assert!(m.encode().contains("akv_csi_provider_mounts_in_flight 2\n"));
        drop(a);
        drop(b);
        assert!(m.encode().contains("akv_csi_provider_mounts_in_flight 0\n"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn grpc_request_is_upstreams() {
        let m = Metrics::default();
        let mount = "/v1alpha1.CSIDriverProvider/Mount";
        m.grpc_request(mount, tonic::Code::Ok, 0.25);
        m.grpc_request(mount, tonic::Code::Ok, 0.05);
        m.grpc_request(mount, tonic::Code::NotFound, 1.2);
        m.grpc_request(mount, tonic::Code::NotFound, f64::NAN);
        let text = m.encode();
        let ok = format!("grpc_code=\"OK\",grpc_message=\"\",grpc_method=\"{mount}\",{CONSTANT}");
        let nf = format!(
            "grpc_code=\"NotFound\",grpc_message=\"not_found\",grpc_method=\"{mount}\",{CONSTANT}"
        );
        for line in [
            "# HELP grpc_request Distribution of how long it took for the gRPC requests.\n"
                .to_owned(),
            "# TYPE grpc_request histogram\n".to_owned(),
            format!("grpc_request_count{{{ok}}} 2\n"),
            format!("grpc_request_bucket{{le=\"0.1\",{ok}}} 1\n"),
            format!("grpc_request_bucket{{le=\"1.5\",{nf}}} 1\n"),
            format!("grpc_request_bucket{{le=\"+Inf\",{nf}}} 1\n"),
            format!("grpc_request_count{{{nf}}} 1\n"),
        ] {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn keyvault_request_is_upstreams_with_capped_object_names() {
        let m = Metrics::default();
        m.set_max_object_names(2);
        m.keyvault_request("secret", "a", Outcome::KeyVault(None), 0.3);
        m.keyvault_request(
            "secret",
            "b",
            Outcome::KeyVault(Some(KvErrorKind::NotFound)),
            0.3,
        );
        m.keyvault_request("secret", "c", Outcome::KeyVault(None), 0.3);
        m.keyvault_request("secret", "a", Outcome::Abandoned, 0.3);
        m.keyvault_request("secret", "bad name", Outcome::KeyVault(None), 0.3);
        let text = m.encode();
        for line in [
            format!(
                "keyvault_request_count{{error=\"\",object_name=\"a\",object_type=\"secret\",{CONSTANT}}} 1\n"
            ),
            format!(
                "keyvault_request_count{{error=\"not_found\",object_name=\"b\",object_type=\"secret\",{CONSTANT}}} 1\n"
            ),
            format!(
                "keyvault_request_count{{error=\"\",object_name=\"_overflow\",object_type=\"secret\",{CONSTANT}}} 1\n"
            ),
            format!(
                "keyvault_request_count{{error=\"canceled\",object_name=\"a\",object_type=\"secret\",{CONSTANT}}} 1\n"
            ),
            format!(
                "keyvault_request_count{{error=\"\",object_name=\"_invalid\",object_type=\"secret\",{CONSTANT}}} 1\n"
            ),
        ] {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn our_metrics_carry_the_prefix() {
        let m = Metrics::default();
        m.token_request("workload_identity", "ok");
        m.throttled("vault1");
        m.throttled("vault1");
        m.backoff(1.5);
        m.backoff(-3.0);
        m.cache(CacheOutcome::Coalesced);
        m.keyvault_exchange("secret", Some(401), false, 0.3);
        m.keyvault_exchange("secret", Some(429), true, 0.3);
        let text = m.encode();
        for line in [
            "# TYPE akv_csi_provider_token_requests_total counter\n",
            "akv_csi_provider_token_requests_total{mode=\"workload_identity\",result=\"ok\"} 1\n",
            "akv_csi_provider_keyvault_throttled_total{vault=\"vault1\"} 2\n",
            "akv_csi_provider_backoff_seconds_total 1.5\n",
            "akv_csi_provider_cache_requests_total{outcome=\"coalesced\"} 1\n",
            "akv_csi_provider_keyvault_http_request_duration_seconds_count{object_type=\"secret\",status_class=\"challenge\"} 1\n",
            "akv_csi_provider_keyvault_http_request_duration_seconds_count{object_type=\"secret\",status_class=\"429\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                line.starts_with("akv_csi_provider_"),
                "unprefixed series {line}"
            );
        }
        let om = m.encode_openmetrics();
        assert!(om.contains("# TYPE akv_csi_provider_token_requests counter\n"));
        assert!(om.ends_with("# EOF\n"));
    }

    #[test]
    fn expiry_has_leaf_and_chain_and_follows_versions() {
        let m = Metrics::default();
        m.certificate_expiry(&object("ns1", "tls"), "v1", 300, 200);
        let text = m.encode();
        assert!(
            text.contains(&expiry_line(
                "certificate_expiry_timestamp_seconds",
                "ns1",
                "tls",
                "v1",
                300
            )),
            "{text}"
        );
        assert!(text.contains(&expiry_line(
            "certificate_chain_expiry_timestamp_seconds",
            "ns1",
            "tls",
            "v1",
            200
        )));
        m.certificate_expiry(&object("ns1", "tls"), "v2", 900, 900);
        let text = m.encode();
        assert!(!text.contains("object_version=\"v1\""), "{text}");
        assert!(text.contains(&expiry_line(
            "certificate_expiry_timestamp_seconds",
            "ns1",
            "tls",
            "v2",
            900
        )));
        assert_eq!(m.expiry_objects(), 1);
    }

    #[test]
    fn stale_expiry_series_are_dropped() {
        let m = Metrics::with_expiry_retention(Duration::from_millis(50));
        m.certificate_expiry(&object("ns", "old"), "1", 100, 100);
        std::thread::sleep(Duration::from_millis(80));
        m.certificate_expiry(&object("ns", "new"), "1", 200, 200);
        let text = m.encode();
        assert!(!text.contains("object_name=\"old\""), "{text}");
        assert!(text.contains(&expiry_line(
            "certificate_expiry_timestamp_seconds",
            "ns",
            "new",
            "1",
            200
        )));
    }

    #[test]
    fn expiry_series_are_pruned_without_a_scrape() {
        let m = Metrics::with_expiry_retention(Duration::from_millis(30));
        m.certificate_expiry(&object("ns", "a"), "1", 100, 100);
        assert_eq!(m.expiry_objects(), 1);
        std::thread::sleep(Duration::from_millis(50));
        m.prune_expiry();
        assert_eq!(m.expiry_objects(), 0);
        assert!(!m.encode().contains("object_name=\"a\""));
        assert_eq!(
            expiry_prune_interval(EXPIRY_RETENTION),
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
        m.certificate_expiry(&object("ns", "late"), "1", 300, 300);
        m.certificate_expiry(&object("ns", "early"), "2", 100, 90);
        m.certificate_expiry(&object("other", "x"), "3", 200, 200);
        m.configure_expiry(ExpiryOptions {
            object_names: false,
            ..ExpiryOptions::default()
        });
        let text = m.encode();
        assert!(
            !text.contains("late") && !text.contains("early") && !text.contains("\"x\""),
            "{text}"
        );
        assert!(
            text.contains(&expiry_line(
                "certificate_expiry_timestamp_seconds",
                "ns",
                "",
                "",
                100
            )),
            "{text}"
        );
        assert!(text.contains(&expiry_line(
            "certificate_chain_expiry_timestamp_seconds",
            "ns",
            "",
            "",
            90
        )));
        assert!(text.contains(&expiry_line(
            "certificate_expiry_timestamp_seconds",
            "other",
            "",
            "",
            200
        )));
        m.certificate_expiry(&object("ns", "earlier"), "4", 50, 50);
        assert!(m.encode().contains(&expiry_line(
            "certificate_expiry_timestamp_seconds",
            "ns",
            "",
            "",
            50
        )));
    }

    #[test]
    fn expiry_series_are_capped() {
        let m = Metrics::default();
        for n in 0..MAX_EXPIRY_SERIES + 5 {
            m.certificate_expiry(&object("ns", &format!("c{n}")), "1", n as i64, n as i64);
        }
        assert_eq!(m.expiry_objects(), MAX_EXPIRY_SERIES);
        let text = m.encode();
        assert!(text.contains(&format!("object_name=\"c{}\"", MAX_EXPIRY_SERIES + 4)));
        assert!(!text.contains("object_name=\"c0\""));
    }
}
