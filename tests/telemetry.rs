//! Telemetry over real sockets: `/metrics` over HTTP parsed strictly, the health endpoint against a
//! real tonic health service on a Unix socket (and its failure modes), bind errors, and the log
//! filter seen through a capturing writer.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akv_csi_provider::server::Endpoint;
use akv_csi_provider::telemetry::{
    self, CertificateObject, HealthConfig, HttpServer, OPENMETRICS_CONTENT_TYPE, Outcome,
    PROMETHEUS_TEXT_CONTENT_TYPE, bind_health, bind_metrics, check_grpc_health, logging, metrics,
};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::oneshot;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

// ---------------------------------------------------------------- helpers

/// Serves `server` in the background until the returned sender is dropped.
fn spawn(server: HttpServer) -> (SocketAddr, oneshot::Sender<()>) {
    let address = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    (address, stop)
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
    get_accepting(address, path, "*/*").await
}

async fn get_accepting(address: SocketAddr, path: &str, accept: &str) -> (u16, String, String) {
    let response = http()
        .get(format!("http://{address}{path}"))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// A real tonic server with the standard health service on a Unix socket in `dir`.
async fn health_server(dir: &tempfile::TempDir) -> (PathBuf, HealthReporter) {
    let path = dir.path().join("provider.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (reporter, service) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    (path, reporter)
}

async fn healthz(endpoint: Endpoint, timeout: Duration) -> (u16, String) {
    let config = HealthConfig {
        path: "/healthz".into(),
        endpoint,
        timeout,
    };
    let (address, _stop) = spawn(bind_health(loopback(), config).await.unwrap());
    let (status, _, body) = get(address, "/healthz").await;
    (status, body)
}

// ------------------------------------------------- a strict OpenMetrics text parser

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `k="v",k2="v2"` (escapes `\\`, `\"`, `\n`).
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .ok_or(format!("label without =\": {rest}"))?;
        if !is_metric_name(key) || key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => return Err(format!("bad escape \\{other}")),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("duplicate label {key}"));
        }
        rest = &after[end + 1..];
        if let Some(next) = rest.strip_prefix(',') {
            rest = next;
        } else if !rest.is_empty() {
            return Err(format!("junk after label value: {rest}"));
        }
    }
    Ok(labels)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let (series, value) = line.rsplit_once(' ').ok_or("sample without value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().map_err(|_| format!("bad value {other:?}"))?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (
            name,
            parse_labels(labels.strip_suffix('}').ok_or("unclosed {")?)?,
        ),
        None => (series, BTreeMap::new()),
    };
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses a whole exposition strictly: every line is a descriptor or a sample of a declared family,
/// and `# EOF` ends it.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let body = text.strip_suffix("# EOF\n").ok_or("missing final # EOF")?;
    let mut families: HashSet<String> = HashSet::new();
    let mut samples = Vec::new();
    for line in body.lines() {
        if let Some(descriptor) = line.strip_prefix("# ") {
            let mut parts = descriptor.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            match kind {
                "HELP" | "UNIT" => {}
                "TYPE" => {
                    let family_type = parts.next().unwrap_or("");
                    if !["counter", "gauge", "histogram", "info", "unknown"].contains(&family_type)
                    {
                        return Err(format!("bad type in {line:?}"));
                    }
                    families.insert(name.to_owned());
                }
                _ => return Err(format!("bad descriptor {line:?}")),
            }
            if !is_metric_name(name) {
                return Err(format!("bad family name in {line:?}"));
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|e| format!("{e} in line {line:?}"))?;
        let declared = [
            "", "_total", "_bucket", "_count", "_sum", "_created", "_info",
        ]
        .iter()
        .any(|suffix| {
            sample
                .name
                .strip_suffix(suffix)
                .is_some_and(|family| families.contains(family))
        });
        if !declared {
            return Err(format!("sample of an undeclared family: {line:?}"));
        }
        samples.push(sample);
    }
    Ok(samples)
}

// ---------------------------------------------------------------- /metrics

#[tokio::test]
async fn metrics_endpoint_serves_strict_openmetrics_on_request_with_bounded_labels() {
    let m = metrics();
    let object = |object_type: &str| CertificateObject {
        namespace: "shop".into(),
        secret_provider_class: "web-spc".into(),
        vault: "contoso-kv".into(),
        object_type: object_type.into(),
        object_name: "web-tls".into(),
    };
    m.certificate_expiry(&object("cert"), "v1", 1_900_000_000, 1_850_000_000);
    m.certificate_expiry(&object("secret"), "v2", 1_800_000_000, 1_800_000_000);
    // Free text passed by mistake must not become a label.
    m.throttled("failed: Authorization: Bearer eyJhbGciOi");
    m.certificate_expiry(
        &CertificateObject {
            namespace: "a b".into(),
            ..object("cert")
        },
        "Bearer x",
        1,
        1,
    );
    m.grpc_request(
        "/v1alpha1.CSIDriverProvider/Mount",
        tonic::Code::PermissionDenied,
        0.42,
    );
    m.keyvault_request("secret", "web-tls", Outcome::KeyVault(None), 0.12);
    m.keyvault_exchange("secret", Some(200), true, 0.12);
    m.token_request("workload_identity", "ok");
    m.backoff(0.5);
    m.cache(telemetry::CacheOutcome::Hit);
    let _in_flight = m.mount_started();

    let (address, _stop) = spawn(bind_metrics(loopback(), m).await.unwrap());
    let (status, content_type, body) = get_accepting(
        address,
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, OPENMETRICS_CONTENT_TYPE);
    let samples = parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));

    let expiry: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "akv_csi_provider_certificate_expiry_timestamp_seconds")
        .collect();
    let web_cert = expiry
        .iter()
        .find(|s| {
            s.labels.get("object_type").map(String::as_str) == Some("cert")
                && s.labels["namespace"] == "shop"
        })
        .expect("expiry gauge of the cert");
    assert_eq!(web_cert.value, 1_900_000_000.0);
    assert_eq!(web_cert.labels["vault"], "contoso-kv");
    assert_eq!(web_cert.labels["object_name"], "web-tls");
    assert_eq!(web_cert.labels["secret_provider_class"], "web-spc");
    assert_eq!(web_cert.labels["object_version"], "v1");
    assert_eq!(expiry.len(), 3, "one series per object");

    for sample in &samples {
        for (key, value) in &sample.labels {
            let bounded = value.len() <= 127
                && value.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'/')
                });
            assert!(
                bounded,
                "free text in label {key}={value:?} of {}",
                sample.name
            );
        }
    }
    assert!(!body.contains("Bearer"));
    for name in [
        "grpc_request_count",
        "grpc_request_bucket",
        "keyvault_request_sum",
        "akv_csi_provider_mounts_in_flight",
        "akv_csi_provider_keyvault_http_request_duration_seconds_count",
        "akv_csi_provider_token_requests_total",
        "akv_csi_provider_keyvault_throttled_total",
        "akv_csi_provider_backoff_seconds_total",
        "akv_csi_provider_cache_requests_total",
        "akv_csi_provider_certificate_chain_expiry_timestamp_seconds",
    ] {
        assert!(
            samples.iter().any(|s| s.name == name),
            "no {name} in\n{body}"
        );
    }
    let mounts = samples
        .iter()
        .find(|s| {
            s.name == "grpc_request_count"
                && s.labels.get("grpc_code").map(String::as_str) == Some("PermissionDenied")
        })
        .expect("mount count by code");
    assert_eq!(
        mounts.labels["grpc_method"],
        "/v1alpha1.CSIDriverProvider/Mount"
    );
    assert_eq!(mounts.labels["grpc_message"], "forbidden");
    assert!(mounts.value >= 1.0);

    // Without asking for OpenMetrics: Prometheus text 0.0.4.
    let (_, content_type, body) = get(address, "/metrics").await;
    assert_eq!(content_type, PROMETHEUS_TEXT_CONTENT_TYPE);
    assert!(!body.contains("# EOF"));
}

#[tokio::test]
async fn metrics_server_answers_nothing_but_get_metrics() {
    let (address, _stop) = spawn(bind_metrics(loopback(), metrics()).await.unwrap());
    for path in [
        "/anything-else",
        "/",
        "/debug/pprof/",
        "/metrics/extra",
        "/healthz",
    ] {
        assert_eq!(get(address, path).await.0, 404, "{path}");
    }
    let post = http()
        .post(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 404);
}

#[tokio::test]
async fn binding_a_port_in_use_is_an_error() {
    let taken = TcpListener::bind(loopback()).await.unwrap();
    let address = taken.local_addr().unwrap();

    let error = bind_metrics(address, metrics()).await.unwrap_err();
    assert!(error.to_string().contains(&address.to_string()), "{error}");
    assert!(error.to_string().contains("metrics"), "{error}");

    let config = HealthConfig {
        path: "/healthz".into(),
        endpoint: Endpoint::Unix("/nonexistent".into()),
        timeout: Duration::from_secs(1),
    };
    let error = bind_health(address, config).await.unwrap_err();
    assert!(error.to_string().contains("health"), "{error}");
}

// ---------------------------------------------------------------- health

#[tokio::test]
async fn healthz_is_ok_when_the_provider_serves() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, _reporter) = health_server(&dir).await;
    assert_eq!(
        healthz(Endpoint::Unix(socket), Duration::from_secs(5)).await,
        (200, "ok".to_owned())
    );
}

#[tokio::test]
async fn healthz_answers_only_its_path_which_may_lack_a_slash() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, _reporter) = health_server(&dir).await;
    let config = HealthConfig {
        path: "livez".into(),
        endpoint: Endpoint::Unix(socket),
        timeout: Duration::from_secs(5),
    };
    let (address, _stop) = spawn(bind_health(loopback(), config).await.unwrap());
    assert_eq!(get(address, "/livez").await.0, 200);
    assert_eq!(get(address, "/healthz").await.0, 404);
    assert_eq!(get(address, "/metrics").await.0, 404);
}

#[tokio::test]
async fn healthz_is_503_when_the_socket_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    let (status, body) = healthz(
        Endpoint::Unix(dir.path().join("absent.sock")),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status, 503);
    assert!(
        body.contains("cannot connect") && body.contains("absent.sock"),
        "{body}"
    );
    assert_eq!(
        body.matches("No such file").count(),
        1,
        "cause said once: {body}"
    );
}

#[tokio::test]
async fn healthz_is_503_when_not_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, reporter) = health_server(&dir).await;
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let (status, body) = healthz(Endpoint::Unix(socket), Duration::from_secs(5)).await;
    assert_eq!(status, 503);
    assert!(body.contains("NOT_SERVING"), "{body}");
}

#[tokio::test]
async fn healthz_is_503_when_the_server_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mute.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Accepts connections and holds them open without a byte in reply.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let (status, body) = healthz(Endpoint::Unix(path), Duration::from_millis(300)).await;
    assert_eq!(status, 503);
    assert!(body.contains("timed out"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn health_check_over_tcp() {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let address = listener.local_addr().unwrap();
    let (_reporter, service) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    assert_eq!(
        check_grpc_health(&Endpoint::Tcp(address.to_string()), Duration::from_secs(5)).await,
        Ok(())
    );
}

// ---------------------------------------------------------------- logging

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Capture {
    type Writer = Capture;
    fn make_writer(&'w self) -> Capture {
        self.clone()
    }
}

/// Emits one event per interesting (target, level) and returns what was logged.
fn capture(json: bool, filter: tracing_subscriber::EnvFilter) -> String {
    let capture = Capture::default();
    let subscriber = logging::subscriber_with_writer(json, filter, capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        tracing::trace!(target: "akv_csi_provider::keyvault", "own trace line");
        tracing::debug!(target: "akv_csi_provider::auth", "own debug line");
        tracing::info!(target: "akv_csi_provider::server", "own info line");
        tracing::debug!(target: "h2::codec::framed_write", "leak: authorization: Bearer h2-token");
        tracing::trace!(target: "hyper::proto::h1", "leak: hyper trace");
        tracing::debug!(target: "hyper_util::client::legacy", "leak: hyper_util debug");
        tracing::debug!(target: "reqwest::connect", "leak: reqwest debug");
        tracing::debug!(target: "rustls::client", "leak: rustls debug");
        tracing::debug!(target: "tonic::transport", "leak: tonic debug");
        tracing::debug!(target: "tower::buffer", "leak: tower debug");
        tracing::debug!(target: "azure_core::http::policies", "leak: azure_core debug");
        tracing::trace!(target: "azure_identity::credentials", "leak: azure_identity trace");
        tracing::debug!(target: "typespec_client_core::http", "leak: typespec debug");
        tracing::debug!(target: "some_other_crate", "leak: other debug");
        tracing::warn!(target: "hyper::client", "third-party warning");
    });
    String::from_utf8(capture.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn highest_verbosity_logs_our_trace_but_no_third_party_debug() {
    for json in [false, true] {
        let logged = capture(json, logging::filter_for(None, 9).unwrap());
        assert!(
            logged.contains("own trace line") && logged.contains("own debug line"),
            "{logged}"
        );
        assert!(logged.contains("third-party warning"), "{logged}");
        assert!(!logged.contains("leak"), "{logged}");
        if json {
            for line in logged.lines() {
                let value = serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{e}: {line}"));
                // The Go provider's JSON logger (k8s.io/component-base logs/json): epoch
                // milliseconds `ts`, `caller`, `msg`; `v` on info lines only; no level key.
                let object = value.as_object().expect("one object per line");
                assert!(object["ts"].is_number(), "{line}");
                assert!(
                    object["caller"].as_str().is_some_and(|c| c.contains(':')),
                    "{line}"
                );
                assert!(object["msg"].is_string(), "{line}");
                assert!(!object.contains_key("level"), "{line}");
                let warning = object["msg"] == "third-party warning";
                assert_eq!(object.contains_key("v"), !warning, "{line}");
            }
        }
    }
}

#[test]
fn low_verbosity_logs_info_only() {
    let logged = capture(false, logging::filter_for(None, 1).unwrap());
    assert!(logged.contains("own info line"), "{logged}");
    assert!(
        !logged.contains("own debug line") && !logged.contains("leak"),
        "{logged}"
    );
    let logged = capture(false, logging::filter_for(None, 2).unwrap());
    assert!(
        logged.contains("own debug line") && !logged.contains("own trace line"),
        "{logged}"
    );
}

#[test]
fn rust_log_cannot_open_quiet_crates_without_naming_them() {
    let logged = capture(false, logging::filter_for(Some("trace"), 0).unwrap());
    assert!(
        logged.contains("own trace line") && logged.contains("leak: other debug"),
        "{logged}"
    );
    assert!(
        !logged.contains("Bearer") && !logged.contains("leak: azure_core"),
        "{logged}"
    );
    let logged = capture(
        false,
        logging::filter_for(Some("info,h2=debug"), 0).unwrap(),
    );
    assert!(
        logged.contains("leak: authorization: Bearer h2-token"),
        "named explicitly: {logged}"
    );
}
