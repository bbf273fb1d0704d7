//! Issue #10 item 2 through the real socket: PKCS#12 bombs (scrypt N=2^17 r=8 p=16, PBKDF2 and
//! MAC with 2^31 iterations, 10,000 bags, 1,000 safes, a bounded-iteration PFX whose total work
//! is too high, deep nesting, oversize) served by the fake Key Vault as certificate-backed
//! secrets, and the scrypt bomb as a service principal's `clientcert`. Each mount must fail fast
//! with an error naming the object (or `clientcert`) and the problem, while `Version` and
//! `/healthz` keep answering and memory stays bounded; a legitimate PFX still mounts afterwards.

mod pkcs12_der;
mod support;

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use support::driver::Driver;
use support::fake::FakeAzure;
use support::process::{ProviderProcess, under_attack};

const VAULT: &str = "pfxvault";
const KID: &str = "https://pfxvault.vault.azure.net/keys/";
/// Client ids of the service principals (GUIDs, as Entra ID issues them).
const SP: &str = "5b000000-0000-4000-8000-0000000000a1";
const CERT_SP: &str = "5b000000-0000-4000-8000-0000000000a2";

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/content/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn attributes(object: &str) -> serde_json::Value {
    json!({
        "keyvaultName": VAULT, "tenantId": "tid",
        "objects": format!("array:\n  - |\n    objectName: {object}\n    objectType: secret\n"),
        "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "n",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pfx_bombs_in_key_vault_fail_fast_and_isolated() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret("tid", SP, "sp-secret-9f1");
    fake.grant(VAULT, SP);
    let bombs = pkcs12_der::bombs();
    for (index, (_, der, _)) in bombs.iter().enumerate() {
        let name = format!("bomb{index}");
        let kid = format!("{KID}{name}/v1");
        fake.add_secret(
            VAULT,
            &name,
            "v1",
            &b64(der),
            Some("application/x-pkcs12"),
            Some(&kid),
            100,
            true,
        );
    }
    let good_kid = format!("{KID}good/v1");
    fake.add_secret(
        VAULT,
        "good",
        "v1",
        &fixture("legacy.pfx.b64"),
        Some("application/x-pkcs12"),
        Some(&good_kid),
        100,
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    // The Key Vault body cap (256 KiB) would refuse the oversize PFX before the PFX cap does;
    // raised here so that the PFX limits themselves are what each bomb meets.
    let provider = ProviderProcess::start_with_fake(
        &socket,
        &fake.url(),
        &["--max-keyvault-response-bytes=1048576".into()],
    );
    let secrets = json!({"clientid": SP, "clientsecret": "sp-secret-9f1"});

    // Warm the identity and vault client so the attacks measure the PFX alone.
    let mut driver = Driver::connect(&socket).await;
    driver
        .mount(&attributes("good"), Some(&secrets), "420")
        .await
        .expect("legitimate PFX mounts");

    for (index, (label, _, expected)) in bombs.iter().enumerate() {
        let object = format!("bomb{index}");
        let (report, result) = under_attack(&format!("PFX {label}"), &provider, async {
            driver
                .mount(&attributes(&object), Some(&secrets), "420")
                .await
        })
        .await;
        let status = result.expect_err("the bomb is refused");
        let message = status.message();
        assert!(
            message.contains(&format!("object secret/{object}:")),
            "{message}"
        );
        assert!(message.contains(expected), "{label}: {message}");
        assert!(message.len() < 512, "{label}: {message}");
        report.assert_isolated(Duration::from_secs(2));
    }

    let response = driver
        .mount(&attributes("good"), Some(&secrets), "420")
        .await
        .expect("a legitimate PFX still mounts after the bombs");
    let text = String::from_utf8(response.files[0].contents.clone()).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrypt_bomb_as_clientcert_fails_fast_and_isolated() {
    let fake = FakeAzure::start().await;
    fake.grant(VAULT, "certsp");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let provider = ProviderProcess::start_with_fake(&socket, &fake.url(), &[]);
    let (label, bomb, expected) = pkcs12_der::bombs().remove(0);
    assert!(label.starts_with("scrypt"));
    let secrets = json!({"clientid": CERT_SP, "clientcert": b64(&bomb)});
    let (report, result) =
        under_attack("clientcert PFX scrypt N=2^17 r=8 p=16", &provider, async {
            let mut driver = Driver::connect(&socket).await;
            driver
                .mount(&attributes("anything"), Some(&secrets), "420")
                .await
        })
        .await;
    let status = result.expect_err("the bomb is refused");
    let message = status.message();
    assert!(message.contains("clientcert"), "{message}");
    assert!(message.contains(expected), "{message}");
    report.assert_isolated(Duration::from_secs(2));
}

/// A PEM "bundle" that made Go's PEM algorithm quadratic (every BEGIN line rescanned the rest of
/// the input for an END): 200 KB of BEGIN lines as a plain secret (every secret's file is scanned
/// for certificates for the expiry metric) and as a certificate-backed PEM secret. Before the
/// linear decoder, 360 KB took 201 s of one runtime thread (debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quadratic_pem_bundle_is_decoded_in_linear_time() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret("tid", SP, "sp-secret-9f1");
    fake.grant(VAULT, SP);
    let bundle = "-----BEGIN A-----\n".repeat(11_000);
    fake.add_secret(VAULT, "plain", "v1", &bundle, None, None, 100, true);
    let kid = format!("{KID}pem/v1");
    fake.add_secret(
        VAULT,
        "pem",
        "v1",
        &bundle,
        Some("application/x-pem-file"),
        Some(&kid),
        100,
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let provider = ProviderProcess::start_with_fake(&socket, &fake.url(), &[]);
    let secrets = json!({"clientid": SP, "clientsecret": "sp-secret-9f1"});
    let mut driver = Driver::connect(&socket).await;
    for object in ["plain", "pem"] {
        let (report, result) = under_attack(
            &format!("PEM 11,000 BEGIN lines ({object} secret)"),
            &provider,
            async {
                driver
                    .mount(&attributes(object), Some(&secrets), "420")
                    .await
            },
        )
        .await;
        // Served whole, or refused by a value-size limit: either way at once.
        match result {
            Ok(response) => assert_eq!(response.files[0].contents, bundle.as_bytes()),
            Err(status) => assert!(
                status.message().contains(&format!("secret/{object}")),
                "{}",
                status.message()
            ),
        }
        report.assert_isolated(Duration::from_secs(2));
    }
}
