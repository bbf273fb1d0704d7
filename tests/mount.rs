//! End to end: a driver-side gRPC client on the provider's Unix socket → provider → the in-repo
//! fake of Key Vault and Entra ID over real HTTP(S), through the redirecting transport.

mod support;

use std::time::Duration;

use akv_csi_provider::provider::ProviderOptions;
use serde_json::{Value, json};
use support::fake::{FakeAzure, Fault, service_account_token, service_account_tokens_attribute};
use support::provider::RunningProvider;
use tonic::Code;

const TENANT: &str = "72f988bf-0000-0000-0000-000000000001";
const VAULT: &str = "myvault";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const ISSUER: &str = "https://oidc.example.test/cluster";
const SECRET: &str = "sp-client-secret-value";

fn objects(items: &[&str]) -> String {
    let mut yaml = String::from("array:\n");
    for item in items {
        yaml.push_str("  - |\n");
        for line in item.lines() {
            yaml.push_str("    ");
            yaml.push_str(line.trim());
            yaml.push('\n');
        }
    }
    yaml
}

fn secret_object(name: &str) -> String {
    format!("objectName: {name}\nobjectType: secret")
}

/// Attributes as the driver sends them for a workload-identity pod `ns1/pod1` (SA `app`).
fn wi_attributes(objects_yaml: &str) -> Value {
    let token = service_account_token(
        ISSUER,
        "ns1",
        "app",
        "api://AzureADTokenExchange",
        now() + 3600,
    );
    json!({
        "keyvaultName": VAULT,
        "tenantId": TENANT,
        "clientID": CLIENT_ID,
        "objects": objects_yaml,
        "csi.storage.k8s.io/pod.name": "pod1",
        "csi.storage.k8s.io/pod.namespace": "ns1",
        "csi.storage.k8s.io/pod.uid": "0b4c1a32-0000-0000-0000-000000000000",
        "csi.storage.k8s.io/serviceAccount.name": "app",
        "csi.storage.k8s.io/serviceAccount.tokens": service_account_tokens_attribute(&[("api://AzureADTokenExchange", &token)]),
        "csi.storage.k8s.io/ephemeral": "true",
        "secretProviderClass": "spc1",
    })
}

fn sp_attributes(objects_yaml: &str) -> Value {
    json!({
        "keyvaultName": VAULT,
        "tenantID": TENANT,
        "objects": objects_yaml,
        "csi.storage.k8s.io/pod.name": "pod2",
        "csi.storage.k8s.io/pod.namespace": "ns2",
    })
}

fn sp_secrets() -> Value {
    json!({ "clientid": CLIENT_ID, "clientsecret": SECRET })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn fake_with_identity(fake: FakeAzure) -> FakeAzure {
    fake.add_federated_credential(
        TENANT,
        CLIENT_ID,
        ISSUER,
        "system:serviceaccount:ns1:app",
        "api://AzureADTokenExchange",
    );
    fake.add_client_secret(TENANT, CLIENT_ID, SECRET);
    fake.grant(VAULT, CLIENT_ID);
    fake
}

async fn setup() -> (FakeAzure, RunningProvider) {
    setup_with(FakeAzure::start().await, ProviderOptions::default()).await
}

async fn setup_with(fake: FakeAzure, options: ProviderOptions) -> (FakeAzure, RunningProvider) {
    let fake = fake_with_identity(fake).await;
    let provider = RunningProvider::start(fake.transport(), options).await;
    (fake, provider)
}

fn paths(response: &akv_csi_provider::pb::MountResponse) -> Vec<(&str, i32, &str)> {
    response
        .files
        .iter()
        .map(|f| {
            (
                f.path.as_str(),
                f.mode,
                std::str::from_utf8(&f.contents).unwrap_or("<binary>"),
            )
        })
        .collect()
}

fn versions(response: &akv_csi_provider::pb::MountResponse) -> Vec<(&str, &str)> {
    response
        .object_version
        .iter()
        .map(|v| (v.id.as_str(), v.version.as_str()))
        .collect()
}

#[tokio::test]
async fn secrets_mount_in_spc_order_with_modes_and_versions() {
    let (fake, provider) = setup().await;
    fake.add_secret(VAULT, "db-password", "v1", "old", None, None, 100, true);
    fake.add_secret(VAULT, "db-password", "v2", "hunter2", None, None, 200, true);
    fake.add_secret(
        VAULT,
        "api-key",
        "k1",
        "QmFzZTY0RW5jb2RlZFN0cmluZw==",
        None,
        None,
        100,
        true,
    );
    let yaml = objects(&[
        &secret_object("db-password"),
        "objectName: api-key\nobjectType: secret\nobjectEncoding: base64\nobjectAlias: nested/api\nfilePermission: \"0600\"",
        "objectName: db-password\nobjectType: secret\nobjectVersion: v1\nobjectAlias: db-old",
    ]);
    let mut driver = provider.driver().await;
    let response = driver
        .mount(&wi_attributes(&yaml), None, "420")
        .await
        .expect("mount succeeds");
    assert_eq!(
        paths(&response),
        [
            ("db-password", 0o644, "hunter2"),
            ("nested/api", 0o600, "Base64EncodedString"),
            ("db-old", 0o644, "old")
        ]
    );
    assert_eq!(
        versions(&response),
        [
            ("secret/db-password", "v2"),
            ("secret/api-key", "k1"),
            ("secret/db-password", "v1")
        ]
    );
}

#[tokio::test]
async fn service_principal_secrets_null_and_empty_array() {
    let (fake, provider) = setup().await;
    fake.add_secret(VAULT, "s", "v1", "value", None, None, 100, true);
    let mut driver = provider.driver().await;
    let ok = driver
        .mount(
            &sp_attributes(&objects(&[&secret_object("s")])),
            Some(&sp_secrets()),
            "420",
        )
        .await
        .unwrap();
    assert_eq!(paths(&ok), [("s", 0o644, "value")]);
    let missing = driver
        .mount(
            &sp_attributes(&objects(&[&secret_object("s")])),
            None,
            "420",
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(
        missing.message().contains("nodePublishSecretRef"),
        "{}",
        missing.message()
    );
    // As upstream, identity is checked before objects; an empty array then mounts nothing.
    let empty = driver
        .mount(&sp_attributes("array:\n"), Some(&sp_secrets()), "420")
        .await
        .unwrap();
    assert!(empty.files.is_empty());
}

#[tokio::test]
async fn version_history_returns_exactly_n_newest_first() {
    let (fake, provider) = setup().await;
    for (i, v) in ["a", "b", "c", "d"].iter().enumerate() {
        fake.add_secret(
            VAULT,
            "rotating",
            v,
            &format!("value-{v}"),
            None,
            None,
            1000 + i as i64,
            *v != "c",
        );
    }
    fake.set_page_size(2);
    let yaml = objects(&["objectName: rotating\nobjectType: secret\nobjectVersionHistory: 2"]);
    let mut driver = provider.driver().await;
    let response = driver
        .mount(&wi_attributes(&yaml), None, "420")
        .await
        .unwrap();
    assert_eq!(
        paths(&response),
        [
            ("rotating/0", 0o644, "value-d"),
            ("rotating/1", 0o644, "value-b")
        ],
        "c is disabled"
    );
    assert_eq!(
        versions(&response),
        [("secret/rotating/0", "d"), ("secret/rotating/1", "b")]
    );
}

#[tokio::test]
async fn a_missing_object_fails_the_whole_mount_naming_it() {
    let (fake, provider) = setup().await;
    fake.add_secret(VAULT, "present", "v1", "x", None, None, 100, true);
    let yaml = objects(&[&secret_object("present"), &secret_object("absent")]);
    let mut driver = provider.driver().await;
    let err = driver
        .mount(&wi_attributes(&yaml), None, "420")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("secret/absent"), "{}", err.message());
}

#[tokio::test]
async fn warm_mounts_make_no_token_request_and_no_challenge() {
    let (fake, provider) = setup().await;
    for i in 0..5 {
        fake.add_secret(VAULT, &format!("s{i}"), "v1", "x", None, None, 100, true);
    }
    let names: Vec<String> = (0..5).map(|i| secret_object(&format!("s{i}"))).collect();
    let yaml = objects(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let mut driver = provider.driver().await;
    driver
        .mount(&wi_attributes(&yaml), None, "420")
        .await
        .unwrap();
    fake.reset_counts();
    driver
        .mount(&wi_attributes(&yaml), None, "420")
        .await
        .unwrap();
    let counts = fake.counts();
    assert_eq!(
        (counts.entra_tokens, counts.challenges),
        (0, 0),
        "{counts:?}"
    );
    assert!(
        counts.keyvault <= 5,
        "at most one Key Vault request per object: {counts:?}"
    );
}

#[tokio::test]
async fn concurrent_identical_mounts_are_coalesced() {
    let (fake, provider) = setup().await;
    fake.set_latency(Duration::from_millis(20), Duration::from_millis(30));
    for i in 0..5 {
        fake.add_secret(VAULT, &format!("s{i}"), "v1", "x", None, None, 100, true);
    }
    let names: Vec<String> = (0..5).map(|i| secret_object(&format!("s{i}"))).collect();
    let yaml = objects(&names.iter().map(String::as_str).collect::<Vec<_>>());
    // Warm the identity and clients, then 100 mounts at once.
    provider
        .driver()
        .await
        .mount(&wi_attributes(&yaml), None, "420")
        .await
        .unwrap();
    fake.reset_counts();
    let attributes = wi_attributes(&yaml);
    let mounts = (0..100).map(|_| {
        let attributes = attributes.clone();
        let provider = &provider;
        async move {
            provider
                .driver()
                .await
                .mount(&attributes, None, "420")
                .await
        }
    });
    for result in futures::future::join_all(mounts).await {
        result.expect("mount succeeds");
    }
    let counts = fake.counts();
    assert!(
        counts.keyvault <= 10,
        "100 concurrent mounts of 5 secrets: {counts:?}"
    );
}

#[tokio::test]
async fn throttling_is_waited_out_within_the_deadline() {
    let (fake, provider) = setup().await;
    fake.add_secret(VAULT, "s", "v1", "x", None, None, 100, true);
    let yaml = objects(&[&secret_object("s")]);
    let mut driver = provider.driver().await;
    driver
        .mount(&wi_attributes(&yaml), None, "420")
        .await
        .unwrap();
    fake.inject(Fault::KeyVaultThrottle {
        count: 2,
        retry_after_secs: 1,
    });
    let started = std::time::Instant::now();
    let response = driver
        .mount(&wi_attributes(&yaml), None, "420")
        .await
        .unwrap();
    assert_eq!(paths(&response), [("s", 0o644, "x")]);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
}

#[tokio::test]
async fn https_end_to_end_with_a_throwaway_ca() {
    let (fake, provider) =
        setup_with(FakeAzure::start_tls().await, ProviderOptions::default()).await;
    fake.add_secret(VAULT, "tls-secret", "v9", "over-tls", None, None, 100, true);
    let mut driver = provider.driver().await;
    let response = driver
        .mount(
            &wi_attributes(&objects(&[&secret_object("tls-secret")])),
            None,
            "420",
        )
        .await
        .unwrap();
    assert_eq!(paths(&response), [("tls-secret", 0o644, "over-tls")]);
    assert_eq!(versions(&response), [("secret/tls-secret", "v9")]);
}

#[tokio::test]
async fn bad_requests_are_invalid_argument_naming_the_problem() {
    let (_fake, provider) = setup().await;
    let mut driver = provider.driver().await;
    let bad_mode = objects(&["objectName: s\nobjectType: secret\nfilePermission: \"0900\""]);
    let err = driver
        .mount(&wi_attributes(&bad_mode), None, "420")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("secret/s"), "{}", err.message());
    let err = driver
        .mount_raw("not json", "null", "420")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("attributes"), "{}", err.message());
}

#[tokio::test]
async fn a_cold_mount_pays_one_token_and_no_challenge() {
    let (fake, provider) = setup().await;
    for i in 0..10 {
        fake.add_secret(VAULT, &format!("c{i}"), "v1", "x", None, None, 100, true);
    }
    let names: Vec<String> = (0..10).map(|i| secret_object(&format!("c{i}"))).collect();
    let yaml = objects(&names.iter().map(String::as_str).collect::<Vec<_>>());
    fake.reset_counts();
    let mut driver = provider.driver().await;
    driver
        .mount(&wi_attributes(&yaml), None, "420")
        .await
        .unwrap();
    let counts = fake.counts();
    assert_eq!(
        (counts.challenges, counts.entra_tokens, counts.keyvault),
        (0, 1, 10),
        "no challenge (the scope comes from the cloud), one token, one GET per object: {counts:?}"
    );
}

#[tokio::test]
async fn malformed_requests_never_take_the_provider_down() {
    let (fake, provider) = setup().await;
    fake.add_secret(VAULT, "s", "v1", "x", None, None, 100, true);
    let mut driver = provider.driver().await;
    let deep_yaml = format!("array:\n  - |\n    objectName: {}\n", "[".repeat(50_000));
    let huge = "x".repeat(2 * 1024 * 1024);
    let mut failures = 0;
    for i in 0..300 {
        let (attributes, secrets, permission) = match i % 6 {
            0 => (
                "{not json".to_string(),
                "null".to_string(),
                "420".to_string(),
            ),
            1 => (
                wi_attributes(&deep_yaml).to_string(),
                "null".into(),
                "420".into(),
            ),
            2 => (
                json!({ "keyvaultName": huge }).to_string(),
                "null".into(),
                "420".into(),
            ),
            3 => (
                wi_attributes(&format!(
                    "array:\n  - |\n    objectName: s{i}\n    objectType: weird\n"
                ))
                .to_string(),
                "{}".into(),
                "420".into(),
            ),
            4 => (
                wi_attributes("array: [1, 2").to_string(),
                "[]".into(),
                "-1".into(),
            ),
            _ => (
                String::from_utf8_lossy(&[0xff, 0xfe, b'{', i as u8]).to_string(),
                "\u{0}".into(),
                "999999999999".into(),
            ),
        };
        let error = driver
            .mount_raw(&attributes, &secrets, &permission)
            .await
            .expect_err("malformed");
        assert!(
            matches!(
                error.code(),
                Code::InvalidArgument | Code::ResourceExhausted | Code::OutOfRange
            ),
            "{error:?}"
        );
        failures += 1;
    }
    assert_eq!(failures, 300);
    driver.version().await.expect("still answering");
    let ok = driver
        .mount(
            &wi_attributes(&objects(&[&secret_object("s")])),
            None,
            "420",
        )
        .await
        .expect("still mounting");
    assert_eq!(paths(&ok), [("s", 0o644, "x")]);
}

#[tokio::test]
async fn a_response_beyond_the_drivers_4_mib_limit_is_a_clear_error() {
    let (fake, provider) = setup().await;
    // Each value stays under the 256 KiB Key Vault response-body cap; twenty pass the 4 MiB budget.
    let big = "v".repeat(230 * 1024);
    for i in 0..20 {
        fake.add_secret(VAULT, &format!("big{i}"), "v1", &big, None, None, 100, true);
    }
    let names: Vec<String> = (0..20).map(|i| secret_object(&format!("big{i}"))).collect();
    let yaml = objects(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let mut driver = provider.driver().await;
    let error = driver
        .mount(&wi_attributes(&yaml), None, "420")
        .await
        .expect_err("4.5 MiB cannot be delivered");
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.message().contains("4 MiB"), "{}", error.message());
    // Below the limit (2 MiB) the mount succeeds, with a warning about Secret sync.
    let nine: Vec<&str> = names[..9].iter().map(String::as_str).collect();
    let ok = driver
        .mount(&wi_attributes(&objects(&nine)), None, "420")
        .await
        .expect("2 MiB fits");
    assert_eq!(ok.files.len(), 9);
}
