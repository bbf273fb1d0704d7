//! What the provider says about a run: logs at the highest verbosity never contain a secret
//! value, private key, token, client secret or assertion; `/metrics` carries the expiry of every
//! served certificate.
//!
//! One test function: the log capture is a process-wide subscriber.

mod support;

use std::sync::{Arc, Mutex};

use akv_csi_provider::provider::ProviderOptions;
use akv_csi_provider::telemetry;
use serde_json::json;
use support::fake::{FakeAzure, service_account_token, service_account_tokens_attribute};
use support::provider::RunningProvider;

const TENANT: &str = "logs-tenant";
const VAULT: &str = "logvault";
const CLIENT_ID: &str = "10000000-0000-4000-8000-00000000000c";
const ISSUER: &str = "https://oidc.logs.test";
const SP_SECRET: &str = "sp-secret-Zq81xVv0";
const SECRET_VALUE: &str = "plain-secret-value-4dd9e2";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Capture {
    type Writer = Capture;
    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn objects(items: &[(&str, &str)]) -> String {
    let mut yaml = String::from("array:\n");
    for (name, kind) in items {
        yaml.push_str(&format!(
            "  - |\n    objectName: {name}\n    objectType: {kind}\n"
        ));
    }
    yaml
}

/// A certificate with a known notAfter, and its key.
fn certificate(not_after_year: i32) -> (Vec<u8>, String, String, i64) {
    let mut params =
        rcgen::CertificateParams::new(vec!["internal.example.test".to_string()]).expect("params");
    params.not_after = rcgen::date_time_ymd(not_after_year, 1, 2);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    let not_after = time::Date::from_calendar_date(not_after_year, time::Month::January, 2)
        .expect("date")
        .midnight()
        .assume_utc()
        .unix_timestamp();
    (
        cert.der().to_vec(),
        cert.pem(),
        key.serialize_pem(),
        not_after,
    )
}

#[tokio::test]
async fn logs_hold_no_secret_material_and_metrics_show_certificate_expiry() {
    let capture = Capture::default();
    let filter = telemetry::logging::filter_for(None, 9).expect("filter");
    let subscriber = telemetry::subscriber_with_writer(false, filter, capture.clone());
    tracing::subscriber::set_global_default(subscriber).expect("install the capture subscriber");

    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT_ID,
        ISSUER,
        "system:serviceaccount:ns:app",
        "api://AzureADTokenExchange",
    );
    fake.add_client_secret(TENANT, CLIENT_ID, SP_SECRET);
    fake.grant(VAULT, CLIENT_ID);
    fake.add_secret(VAULT, "plain", "v1", SECRET_VALUE, None, None, 100, true);
    let (der, cert_pem, key_pem, not_after) = certificate(2031);
    let bundle = format!("{key_pem}{cert_pem}");
    fake.add_secret(
        VAULT,
        "tls",
        "t1",
        &bundle,
        Some("application/x-pem-file"),
        Some("https://logvault.vault.azure.net/keys/tls/t1"),
        100,
        true,
    );
    fake.add_secret(
        VAULT,
        "broken-pfx",
        "b1",
        "not base64 at all: SENSITIVE-PFX-VALUE",
        Some("application/x-pkcs12"),
        Some("https://logvault.vault.azure.net/keys/broken-pfx/b1"),
        100,
        true,
    );
    fake.add_certificate(VAULT, "ca", "c1", &der, 100, true);
    let fixture = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/content/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    };
    let pfx = fixture("legacy.pfx.b64");
    fake.add_secret(
        VAULT,
        "pfx-kept",
        "p1",
        pfx.trim(),
        Some("application/x-pkcs12"),
        Some("https://logvault.vault.azure.net/keys/pfx-kept/p1"),
        100,
        true,
    );
    let chain = format!(
        "{}{}{}",
        fixture("root.pem"),
        fixture("inter.pem"),
        fixture("leaf.pem")
    );
    let pfx_not_after = akv_csi_provider::content::certificate_expiries(chain.as_bytes())
        .into_iter()
        .min()
        .expect("chain expiry");
    let provider = RunningProvider::start(fake.transport(), ProviderOptions::default()).await;
    let mut driver = provider.driver().await;

    let token = service_account_token(
        ISSUER,
        "ns",
        "app",
        "api://AzureADTokenExchange",
        now() + 3600,
    );
    let wi = |yaml: String| {
        json!({
            "keyvaultName": VAULT, "tenantId": TENANT, "clientID": CLIENT_ID, "objects": yaml,
            "csi.storage.k8s.io/pod.name": "pod1", "csi.storage.k8s.io/pod.namespace": "ns",
            "csi.storage.k8s.io/serviceAccount.name": "app",
            "csi.storage.k8s.io/serviceAccount.tokens": service_account_tokens_attribute(&[("api://AzureADTokenExchange", &token)]),
        })
    };
    let ok = driver
        .mount(
            &wi(objects(&[
                ("plain", "secret"),
                ("tls", "secret"),
                ("ca", "cert"),
            ])),
            None,
            "420",
        )
        .await
        .expect("mount");
    assert_eq!(ok.files.len(), 3);
    let kept = format!(
        "{}  - |\n    objectName: pfx-kept\n    objectType: secret\n    objectFormat: pfx\n",
        objects(&[])
    );
    driver
        .mount(&wi(kept), None, "420")
        .await
        .expect("PFX kept as PFX");
    let bad = driver
        .mount(&wi(objects(&[("broken-pfx", "secret")])), None, "420")
        .await
        .expect_err("corrupt PFX");
    assert!(
        bad.message().contains("secret/broken-pfx"),
        "{}",
        bad.message()
    );
    assert!(!bad.message().contains("SENSITIVE-PFX-VALUE"));
    let sp = json!({
        "keyvaultName": VAULT, "tenantId": TENANT, "objects": objects(&[("plain", "secret")]),
        "csi.storage.k8s.io/pod.name": "pod2", "csi.storage.k8s.io/pod.namespace": "ns2",
    });
    driver
        .mount(
            &sp,
            Some(&json!({"clientid": CLIENT_ID, "clientsecret": SP_SECRET})),
            "420",
        )
        .await
        .expect("service principal mount");
    let wrong = driver
        .mount(
            &sp,
            Some(&json!({"clientid": CLIENT_ID, "clientsecret": "wrong-secret-Kk22"})),
            "420",
        )
        .await
        .expect_err("wrong secret");
    assert!(
        wrong.message().contains("AADSTS7000215"),
        "{}",
        wrong.message()
    );
    assert!(!wrong.message().contains("wrong-secret-Kk22"));

    // Metrics: the expiry of the served certificates (the cert object and the one in the bundle).
    let exposition = telemetry::metrics().encode();
    let line = |name: &str| {
        exposition
            .lines()
            .find(|l| {
                l.starts_with("akv_csi_provider_certificate_chain_expiry_timestamp_seconds{")
                    && l.contains(&format!("object_name=\"{name}\""))
            })
            .map(str::to_string)
    };
    for (name, expected) in [
        ("ca", not_after),
        ("tls", not_after),
        ("pfx-kept", pfx_not_after),
    ] {
        let line =
            line(name).unwrap_or_else(|| panic!("no expiry gauge for {name}:\n{exposition}"));
        assert!(
            line.ends_with(&format!(" {expected}")) || line.ends_with(&format!(" {expected}.0")),
            "{line}"
        );
    }

    // Logs: something was logged, and none of the secret material.
    drop(provider);
    let logs = String::from_utf8_lossy(&capture.0.lock().expect("capture").clone()).to_string();
    assert!(logs.contains("mount"), "the mount lines are there:\n{logs}");
    let key_body: String = key_pem.lines().nth(1).unwrap_or_default().to_string();
    let mut forbidden = fake.sensitive_strings();
    forbidden.extend([
        SECRET_VALUE.to_string(),
        SP_SECRET.to_string(),
        "wrong-secret-Kk22".to_string(),
        token.clone(),
        key_body,
        "SENSITIVE-PFX-VALUE".to_string(),
    ]);
    for needle in forbidden.iter().filter(|s| s.len() >= 8) {
        assert!(
            !logs.contains(needle.as_str()),
            "logs contain secret material ({} chars)",
            needle.len()
        );
    }
}
