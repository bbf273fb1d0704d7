//! `/metrics` as a scraper reads it, after real mounts through the socket against the fake:
//! parsed strictly as Prometheus text 0.0.4, upstream's two histograms with upstream's names,
//! labels and buckets, the 401 challenge not counted as an error, certificate expiry with its
//! namespace and SecretProviderClass, and OpenMetrics only when the scraper asks for it.
//!
//! One test function for the scrape: the metrics are process-wide.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use akv_csi_provider::provider::ProviderOptions;
use akv_csi_provider::telemetry::{
    self, LATENCY_BUCKETS, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE,
};
use serde_json::json;
use support::fake::FakeAzure;
use support::prom_text::{self, Sample};
use support::provider::RunningProvider;

const TENANT: &str = "metrics-tenant";
const VAULT: &str = "metricsvault";
const CLIENT_ID: &str = "5b000000-0000-4000-8000-000000000031";
const SP_SECRET: &str = "sp-secret-metrics-7Yq";
const MOUNT: &str = "/v1alpha1.CSIDriverProvider/Mount";
const VERSION: &str = "/v1alpha1.CSIDriverProvider/Version";

fn objects(items: &[(&str, &str)]) -> String {
    let mut yaml = String::from("array:\n");
    for (name, kind) in items {
        yaml.push_str(&format!(
            "  - |\n    objectName: {name}\n    objectType: {kind}\n"
        ));
    }
    yaml
}

/// A self-signed certificate with a known notAfter (Unix seconds).
fn certificate(year: i32) -> (Vec<u8>, i64) {
    let mut params =
        rcgen::CertificateParams::new(vec!["metrics.example.test".to_string()]).expect("params");
    params.not_after = rcgen::date_time_ymd(year, 3, 4);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    let not_after = time::Date::from_calendar_date(year, time::Month::March, 4)
        .expect("date")
        .midnight()
        .assume_utc()
        .unix_timestamp();
    (cert.der().to_vec(), not_after)
}

async fn fetch_metrics(address: SocketAddr, accept: Option<&str>) -> (String, String) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut request = client.get(format!("http://{address}/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (content_type, response.text().await.expect("body"))
}

fn one<'a>(samples: &[&'a Sample], what: &str) -> &'a Sample {
    assert_eq!(samples.len(), 1, "{what}: {samples:#?}");
    samples[0]
}

#[tokio::test]
async fn scrape_after_a_good_and_a_failing_mount() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT_ID, SP_SECRET);
    fake.grant(VAULT, CLIENT_ID);
    fake.add_secret(
        VAULT,
        "db-password",
        "v1",
        "hunter2-metrics",
        None,
        None,
        100,
        true,
    );
    let (der, not_after) = certificate(2032);
    fake.add_certificate(VAULT, "web-tls", "c7", &der, 100, true);

    let provider = RunningProvider::start(fake.transport(), ProviderOptions::default()).await;
    let mut driver = provider.driver().await;
    driver.version().await.expect("version");
    let attributes = |yaml: String| {
        json!({
            "keyvaultName": VAULT, "tenantId": TENANT, "objects": yaml,
            "secretProviderClass": "web-spc",
            "csi.storage.k8s.io/pod.name": "web-0", "csi.storage.k8s.io/pod.namespace": "shop",
        })
    };
    let secrets = json!({"clientid": CLIENT_ID, "clientsecret": SP_SECRET});
    driver
        .mount(
            &attributes(objects(&[("db-password", "secret"), ("web-tls", "cert")])),
            Some(&secrets),
            "420",
        )
        .await
        .expect("good mount");
    let failed = driver
        .mount(
            &attributes(objects(&[("no-such-secret", "secret")])),
            Some(&secrets),
            "420",
        )
        .await
        .expect_err("a missing object fails the mount");
    assert_eq!(failed.code(), tonic::Code::NotFound, "{failed:?}");

    let server = telemetry::bind_metrics("127.0.0.1:0".parse().unwrap(), telemetry::metrics())
        .await
        .expect("bind metrics");
    let address = server.local_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stop_rx.await;
    }));

    // Default (no Accept header) and a plain-text scraper: Prometheus text 0.0.4.
    for accept in [None, Some("text/plain;version=0.0.4;q=1,*/*;q=0.1")] {
        let (content_type, body) = fetch_metrics(address, accept).await;
        assert_eq!(content_type, PROMETHEUS_TEXT_CONTENT_TYPE, "{accept:?}");
        prom_text::parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    }
    let (_, body) = fetch_metrics(address, None).await;
    let scrape = prom_text::parse(&body).expect("strict 0.0.4");
    assert!(!body.contains("hunter2"), "no secret value in /metrics");

    // Upstream's histograms: names, types, buckets, constant labels.
    assert_eq!(scrape.types["grpc_request"], "histogram");
    assert_eq!(scrape.types["keyvault_request"], "histogram");
    let os = std::env::consts::OS;
    for sample in scrape
        .samples
        .iter()
        .filter(|s| s.name.starts_with("grpc_request") || s.name.starts_with("keyvault_request"))
    {
        assert_eq!(sample.label("provider"), Some("azure"), "{sample:?}");
        assert_eq!(sample.label("os_type"), Some(os), "{sample:?}");
        assert_eq!(
            sample.label("service_name"),
            Some("csi-secrets-store-provider-azure"),
            "{sample:?}"
        );
    }
    let grpc_keys: BTreeSet<&str> = scrape
        .named("grpc_request_count")
        .flat_map(|s| s.labels.keys().map(String::as_str))
        .collect();
    assert_eq!(
        grpc_keys,
        BTreeSet::from([
            "grpc_code",
            "grpc_message",
            "grpc_method",
            "os_type",
            "otel_scope_name",
            "provider",
            "service_name"
        ])
    );
    let kv_keys: BTreeSet<&str> = scrape
        .named("keyvault_request_count")
        .flat_map(|s| s.labels.keys().map(String::as_str))
        .collect();
    assert_eq!(
        kv_keys,
        BTreeSet::from([
            "error",
            "object_name",
            "object_type",
            "os_type",
            "otel_scope_name",
            "provider",
            "service_name"
        ])
    );
    let grpc = |method: &str, code: &str| -> Vec<&Sample> {
        scrape
            .named("grpc_request_count")
            .filter(|s| {
                s.label("grpc_method") == Some(method) && s.label("grpc_code") == Some(code)
            })
            .collect()
    };
    let ok = one(&grpc(MOUNT, "OK"), "OK mounts");
    assert_eq!(ok.value, 1.0);
    assert_eq!(ok.label("grpc_message"), Some(""));
    let not_found = one(&grpc(MOUNT, "NotFound"), "failed mounts");
    assert_eq!(not_found.value, 1.0);
    assert_eq!(not_found.label("grpc_message"), Some("not_found"));
    assert_eq!(one(&grpc(VERSION, "OK"), "Version").value, 1.0);
    let buckets: Vec<String> = scrape
        .named("grpc_request_bucket")
        .filter(|s| s.label("grpc_method") == Some(MOUNT) && s.label("grpc_code") == Some("OK"))
        .map(|s| s.label("le").unwrap_or_default().to_owned())
        .collect();
    let mut expected: Vec<String> = LATENCY_BUCKETS
        .iter()
        .map(|b| {
            let text = b.to_string();
            if text.contains('.') {
                text
            } else {
                format!("{text}.0")
            }
        })
        .collect();
    expected.push("+Inf".into());
    assert_eq!(buckets, expected);

    let kv = |name: &str| -> Vec<&Sample> {
        scrape
            .named("keyvault_request_count")
            .filter(|s| s.label("object_name") == Some(name))
            .collect()
    };
    // The good objects: one GET each, no error.
    for (name, kind) in [("db-password", "secret"), ("web-tls", "cert")] {
        let sample = one(&kv(name), name);
        assert_eq!(sample.label("object_type"), Some(kind));
        assert_eq!(sample.label("error"), Some(""), "{sample:?}");
        assert_eq!(sample.value, 1.0);
    }
    let missing = one(&kv("no-such-secret"), "missing");
    assert_eq!(missing.label("error"), Some("not_found"));
    for sample in scrape.named("keyvault_request_count") {
        assert!(
            sample.label("error") != Some("unauthenticated"),
            "the challenge is not an error: {sample:?}"
        );
    }
    let exchanges: Vec<(&str, f64)> = scrape
        .named("akv_csi_provider_keyvault_http_request_duration_seconds_count")
        .map(|s| (s.label("status_class").unwrap_or_default(), s.value))
        .collect();
    // The vault URL comes from the cloud configuration: the first requests go out authorised,
    // so no exchange is a challenge round trip.
    assert!(
        !exchanges
            .iter()
            .any(|(class, n)| *class == "challenge" && *n >= 1.0),
        "{exchanges:?}"
    );
    // The only 4xx is the missing object's 404.
    let four = exchanges
        .iter()
        .filter(|(class, _)| *class == "4xx")
        .map(|(_, n)| n)
        .sum::<f64>();
    assert_eq!(four, 1.0, "{exchanges:?}");

    // Certificate expiry: the leaf and the chain, with namespace, SPC, object and version.
    for name in [
        "akv_csi_provider_certificate_expiry_timestamp_seconds",
        "akv_csi_provider_certificate_chain_expiry_timestamp_seconds",
    ] {
        let series: Vec<&Sample> = scrape
            .named(name)
            .filter(|s| s.label("object_name") == Some("web-tls"))
            .collect();
        let sample = one(&series, name);
        assert_eq!(sample.value, not_after as f64);
        assert_eq!(sample.label("namespace"), Some("shop"));
        assert_eq!(sample.label("secret_provider_class"), Some("web-spc"));
        assert_eq!(sample.label("vault"), Some(VAULT));
        assert_eq!(sample.label("object_type"), Some("cert"));
        assert_eq!(sample.label("object_version"), Some("c7"));
        assert_eq!(scrape.types[name], "gauge");
    }
    // Ours carry the prefix; upstream's keep their names.
    for sample in &scrape.samples {
        assert!(
            sample.name.starts_with("akv_csi_provider_")
                || sample.name.starts_with("grpc_request_")
                || sample.name.starts_with("keyvault_request_"),
            "{}",
            sample.name
        );
    }

    // OpenMetrics only on request, as Prometheus asks for it.
    let (content_type, body) = fetch_metrics(
        address,
        Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    )
    .await;
    assert_eq!(content_type, OPENMETRICS_CONTENT_TYPE);
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("# TYPE akv_csi_provider_token_requests counter\n"));
    assert!(prom_text::parse(&body).is_err(), "OpenMetrics is not 0.0.4");
    let _ = stop_tx.send(());
}

#[test]
fn the_parser_is_strict() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n\
                # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
    let parsed = prom_text::parse(good).expect("good");
    assert_eq!(parsed.samples.len(), 5);
    for bad in [
        "# TYPE a gauge\na 1\n# EOF\n",
        "# TYPE a counter\n# TYPE a counter\na 1\n",
        "a 1\n# TYPE a gauge\n",
        "# TYPE a info\na 1\n",
        "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",
        "# TYPE a gauge\na{x=\"\\t\"} 1\n",
        "# TYPE a gauge\na 1 2 3\n",
        "# TYPE a gauge\na inf\n",
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na 2\n",
        "a 1\n",
        "# TYPE a_total counter\na 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\n",
        "a 1",
    ] {
        assert!(prom_text::parse(bad).is_err(), "accepted {bad:?}");
    }
}
