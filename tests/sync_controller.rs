//! The Secrets Store Sync Controller as a second consumer of the provider API, end to end: a
//! client on the provider's Unix socket sends what the controller sends, against the in-repo fake
//! of Key Vault and Entra ID over real HTTP.
//!
//! The request shape is the controller's (`kubernetes-sigs/secrets-store-sync-controller`,
//! `pkg/provider/provider_client.go` and `internal/controller/secretsync_controller.go`, main
//! branch after v0.0.4):
//! - the socket is `<--provider-volume>/<spc.spec.provider>.sock`, a directory the controller
//!   shares with the provider running as a sidecar in its pod;
//! - `attributes` is the SecretProviderClass's parameters plus `csi.storage.k8s.io/pod.name` and
//!   `pod.uid` of the *controller's* pod (from its environment), `pod.namespace` and
//!   `serviceAccount.name` of the SecretSync (its namespace and `spec.serviceAccountName`), and
//!   `serviceAccount.tokens` minted by the controller for that service account, one entry per
//!   `--token-request-audience`, each `{token, expirationTimestamp}` (600 s); no
//!   `secretProviderClass` and no `ephemeral` key;
//! - `secrets` is `{}` (an empty map marshalled), `permission` is `"420"` (0644 marshalled as a
//!   JSON number), `target_path` is `/mnt/secrets-store`, and `current_object_version` carries
//!   the previous object versions (empty on main today; the client accepts a map of them);
//! - it retries a call that fails with `UNAVAILABLE` (3 attempts) and calls `Version` every
//!   health-check interval with a 5 s deadline.
//!
//! The provider returns the files in the response and writes nothing to `target_path`.

mod support;

use std::path::Path;
use std::time::Duration;

use akv_csi_provider::pb;
use serde_json::{Value, json};
use support::driver::Driver;
use support::fake::{FakeAzure, Fault, service_account_token, service_account_tokens_attribute};
use support::provider::RunningProvider;
use tonic::Code;

const TENANT: &str = "5b000000-0000-4000-8000-000000000001";
const CLIENT_ID: &str = "5b000000-0000-4000-8000-000000000002";
const VAULT: &str = "syncvault";
const ISSUER: &str = "https://oidc.example.test/sync-cluster";
const AUDIENCE: &str = "api://AzureADTokenExchange";
/// The SecretSync's namespace and `spec.serviceAccountName`.
const NAMESPACE: &str = "team-a";
const SERVICE_ACCOUNT: &str = "app-sync";
/// The controller's own pod (its Deployment runs in another namespace).
const CONTROLLER_POD: &str = "secrets-store-sync-controller-manager-7d9f8c6b5-x2x4z";
const CONTROLLER_POD_UID: &str = "5b000000-0000-4000-8000-0000000000c1";
const TARGET_PATH: &str = "/mnt/secrets-store";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The SecretProviderClass's parameters, as the controller clones them.
fn spc_parameters() -> serde_json::Map<String, Value> {
    let objects = "array:\n  - |\n    objectName: db-password\n    objectType: secret\n  - |\n    objectName: api-key\n    objectType: secret\n    objectAlias: api/key\n";
    json!({
        "keyvaultName": VAULT,
        "tenantId": TENANT,
        "clientID": CLIENT_ID,
        "objects": objects,
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

/// `attributes` as `prepareCSIProviderParams` builds it.
fn controller_attributes() -> String {
    let token = service_account_token(ISSUER, NAMESPACE, SERVICE_ACCOUNT, AUDIENCE, now() + 600);
    let mut parameters = spc_parameters();
    for (key, value) in [
        ("csi.storage.k8s.io/pod.name", CONTROLLER_POD.to_owned()),
        ("csi.storage.k8s.io/pod.uid", CONTROLLER_POD_UID.to_owned()),
        ("csi.storage.k8s.io/pod.namespace", NAMESPACE.to_owned()),
        (
            "csi.storage.k8s.io/serviceAccount.name",
            SERVICE_ACCOUNT.to_owned(),
        ),
        (
            "csi.storage.k8s.io/serviceAccount.tokens",
            service_account_tokens_attribute(&[(AUDIENCE, &token)]),
        ),
    ] {
        parameters.insert(key.to_owned(), Value::String(value));
    }
    Value::Object(parameters).to_string()
}

/// `MountContent`'s request: secrets `{}`, permission `"420"`, the fixed target path.
fn controller_request(previous: &[(&str, &str)]) -> pb::MountRequest {
    pb::MountRequest {
        attributes: controller_attributes(),
        secrets: "{}".into(),
        permission: "420".into(),
        target_path: TARGET_PATH.into(),
        current_object_version: previous
            .iter()
            .map(|(id, version)| pb::ObjectVersion {
                id: (*id).into(),
                version: (*version).into(),
            })
            .collect(),
    }
}

async fn setup() -> (FakeAzure, RunningProvider) {
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT_ID,
        ISSUER,
        &format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"),
        AUDIENCE,
    );
    fake.grant(VAULT, CLIENT_ID);
    fake.add_secret(VAULT, "db-password", "v1", "old", None, None, 100, true);
    fake.add_secret(VAULT, "db-password", "v2", "hunter2", None, None, 200, true);
    fake.add_secret(VAULT, "api-key", "k1", "key-value", None, None, 100, true);
    let provider = RunningProvider::start(fake.transport(), Default::default()).await;
    (fake, provider)
}

/// The controller's client: one connection, and the deadline it gives each Mount.
async fn controller(socket: &Path) -> Driver {
    // The controller finds the socket as <provider volume>/<spec.provider>.sock.
    assert_eq!(
        socket.file_name().and_then(|n| n.to_str()),
        Some("azure.sock")
    );
    Driver::connect(socket)
        .await
        .with_timeout(Duration::from_secs(120))
}

fn files(response: &pb::MountResponse) -> Vec<(&str, i32, &[u8])> {
    response
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.mode, f.contents.as_slice()))
        .collect()
}

fn versions(response: &pb::MountResponse) -> Vec<(&str, &str)> {
    response
        .object_version
        .iter()
        .map(|v| (v.id.as_str(), v.version.as_str()))
        .collect()
}

#[tokio::test]
async fn the_controllers_mount_request_is_served() {
    let (_fake, provider) = setup().await;
    let target_existed = Path::new(TARGET_PATH).exists();
    let mut client = controller(provider.socket()).await;

    let first = client
        .mount_request(controller_request(&[]))
        .await
        .expect("the controller's first sync succeeds");
    assert!(first.error.is_none(), "no provider error code");
    assert_eq!(
        files(&first),
        [
            ("db-password", 0o644, b"hunter2".as_slice()),
            ("api/key", 0o644, b"key-value".as_slice()),
        ],
        "files in SecretProviderClass order, mode from permission \"420\""
    );
    assert_eq!(
        versions(&first),
        [("secret/db-password", "v2"), ("secret/api-key", "k1")]
    );

    // The next poll passes the versions it holds; the answer is the same objects.
    let previous = versions(&first);
    let again = client
        .mount_request(controller_request(&previous))
        .await
        .expect("a sync with the previous object versions succeeds");
    assert_eq!(files(&again), files(&first));
    assert_eq!(versions(&again), previous);

    if !target_existed {
        assert!(
            !Path::new(TARGET_PATH).exists(),
            "the provider writes nothing to target_path: the controller reads the response"
        );
    }
}

#[tokio::test]
async fn a_rotated_secret_is_returned_against_stale_previous_versions() {
    let (fake, provider) = setup().await;
    let mut client = controller(provider.socket()).await;
    let first = client
        .mount_request(controller_request(&[]))
        .await
        .expect("first sync");
    assert_eq!(versions(&first)[0], ("secret/db-password", "v2"));

    fake.add_secret(VAULT, "db-password", "v3", "rotated", None, None, 300, true);
    let rotated = client
        .mount_request(controller_request(&versions(&first)))
        .await
        .expect("sync after rotation");
    assert_eq!(
        files(&rotated)[0],
        ("db-password", 0o644, b"rotated".as_slice())
    );
    assert_eq!(
        versions(&rotated),
        [("secret/db-password", "v3"), ("secret/api-key", "k1")]
    );
}

#[tokio::test]
async fn version_answers_the_controllers_health_check() {
    let (_fake, provider) = setup().await;
    let mut client = Driver::connect(provider.socket())
        .await
        .with_timeout(Duration::from_secs(5));
    for _ in 0..3 {
        let version = client.version().await.expect("Version answers");
        assert_eq!(version.version, "v1alpha1");
        assert_eq!(version.runtime_name, akv_csi_provider::RUNTIME_NAME);
        assert_eq!(version.runtime_version, env!("CARGO_PKG_VERSION"));
    }
}

#[tokio::test]
async fn key_vault_unavailable_is_unavailable_and_the_controllers_retry_succeeds() {
    let (fake, provider) = setup().await;
    let mut client = controller(provider.socket()).await;
    fake.inject(Fault::KeyVaultStatus {
        count: 10_000,
        status: 503,
    });
    let status = client
        .mount_request(controller_request(&[]))
        .await
        .expect_err("Key Vault answers 503 to everything");
    assert_eq!(
        status.code(),
        Code::Unavailable,
        "the code the controller retries: {status:?}"
    );
    assert!(
        status.message().contains("db-password") || status.message().contains("api-key"),
        "the error names the object: {}",
        status.message()
    );
    assert!(
        !status.message().contains("hunter2") && !status.message().contains("key-value"),
        "no secret value in the error"
    );

    fake.clear_faults();
    let retried = client
        .mount_request(controller_request(&[]))
        .await
        .expect("the retry after Key Vault recovers succeeds");
    assert_eq!(
        files(&retried)[0],
        ("db-password", 0o644, b"hunter2".as_slice())
    );
}
