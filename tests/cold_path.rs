//! The cold path end to end (driver-side gRPC client on the provider's Unix socket → provider →
//! the in-repo fake over real HTTP, the fake counting requests): the first Key Vault request of
//! a vault URL built from the trusted cloud configuration is already authorised; a new identity
//! on a known vault makes no challenge request; Key Vault's challenge still decides when it names
//! another resource; and a token never goes to a host the trusted scope does not cover.

mod support;

use std::sync::Arc;

use akv_csi_provider::auth::{IdentityKey, ResolvedIdentity};
use akv_csi_provider::keyvault::{KeyVaultOptions, VaultClients};
use akv_csi_provider::provider::ProviderOptions;
use akv_csi_provider::request::CloudEnvironment;
use azure_core::credentials::Secret;
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use serde_json::{Value, json};
use support::fake::{FakeAzure, service_account_token, service_account_tokens_attribute};
use support::provider::RunningProvider;
use tokio::time::Instant;

const TENANT: &str = "72f988bf-0000-0000-0000-000000000013";
const VAULT: &str = "coldvault";
const FIRST: &str = "5b000000-0000-4000-8000-000000000131";
const SECOND: &str = "5b000000-0000-4000-8000-000000000132";
const ISSUER: &str = "https://oidc.cold.test/cluster";
const SECRET: &str = "sp-cold-client-secret";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn objects(names: &[String]) -> String {
    let mut yaml = String::from("array:\n");
    for name in names {
        yaml.push_str(&format!(
            "  - |\n    objectName: {name}\n    objectType: secret\n"
        ));
    }
    yaml
}

/// A workload-identity mount of `names` under `client_id`.
fn attributes(client_id: &str, names: &[String]) -> Value {
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
        "clientID": client_id,
        "objects": objects(names),
        "csi.storage.k8s.io/pod.name": "pod1",
        "csi.storage.k8s.io/pod.namespace": "ns1",
        "csi.storage.k8s.io/serviceAccount.name": "app",
        "csi.storage.k8s.io/serviceAccount.tokens": service_account_tokens_attribute(&[("api://AzureADTokenExchange", &token)]),
    })
}

async fn setup(secrets: usize) -> (FakeAzure, RunningProvider, Vec<String>) {
    let fake = FakeAzure::start().await;
    for client_id in [FIRST, SECOND] {
        fake.add_federated_credential(
            TENANT,
            client_id,
            ISSUER,
            "system:serviceaccount:ns1:app",
            "api://AzureADTokenExchange",
        );
        fake.add_client_secret(TENANT, client_id, SECRET);
        fake.grant(VAULT, client_id);
    }
    let names: Vec<String> = (0..secrets).map(|i| format!("s{i}")).collect();
    for name in &names {
        fake.add_secret(VAULT, name, "v1", "x", None, None, 100, true);
    }
    let provider = RunningProvider::start(fake.transport(), ProviderOptions::default()).await;
    (fake, provider, names)
}

#[tokio::test]
async fn a_cold_mount_sends_its_first_request_authorised() {
    let (fake, provider, names) = setup(10).await;
    fake.reset_counts();
    fake.clear_requests();
    let mut driver = provider.driver().await;
    driver
        .mount(&attributes(FIRST, &names), None, "420")
        .await
        .unwrap();
    let counts = fake.counts();
    assert_eq!(
        (counts.challenges, counts.entra_tokens, counts.keyvault),
        (0, 1, 10),
        "no challenge, one token, one GET per object: {counts:?}"
    );
    let requests = fake.requests();
    let keyvault: Vec<_> = requests
        .iter()
        .filter(|r| r.service == "keyvault")
        .collect();
    assert!(
        keyvault.iter().all(|r| r.authorized && r.status == 200),
        "{keyvault:?}"
    );
}

#[tokio::test]
async fn a_new_identity_on_a_known_vault_makes_no_challenge() {
    let (fake, provider, names) = setup(3).await;
    let mut driver = provider.driver().await;
    driver
        .mount(&attributes(FIRST, &names), None, "420")
        .await
        .unwrap();
    fake.reset_counts();
    driver
        .mount(&attributes(SECOND, &names), None, "420")
        .await
        .unwrap();
    let counts = fake.counts();
    assert_eq!(
        (counts.challenges, counts.entra_tokens, counts.keyvault),
        (0, 1, 3),
        "{counts:?}"
    );
}

#[tokio::test]
async fn a_challenge_naming_another_resource_still_decides() {
    let (fake, provider, names) = setup(1).await;
    // The vault wants tokens for https://azure.net (it covers coldvault.vault.azure.net), not the
    // cloud's https://vault.azure.net: the pre-authorised request is refused with that challenge.
    fake.set_vault_resource(VAULT, "https://azure.net");
    fake.reset_counts();
    let mut driver = provider.driver().await;
    driver
        .mount(&attributes(FIRST, &names), None, "420")
        .await
        .unwrap();
    let counts = fake.counts();
    assert_eq!(
        (counts.challenges, counts.entra_tokens, counts.keyvault),
        (0, 2, 2),
        "one refused request, a token for the named resource, the retry: {counts:?}"
    );
    // The vault's answer is remembered: another identity asks for the right audience at once
    // (its exchange proves it with a token for the cloud's scope first, then one for the vault's).
    fake.reset_counts();
    driver
        .mount(&attributes(SECOND, &names), None, "420")
        .await
        .unwrap();
    let counts = fake.counts();
    assert_eq!(
        (counts.challenges, counts.entra_tokens, counts.keyvault),
        (0, 2, 1),
        "no refused request: {counts:?}"
    );
}

/// A client-secret identity as the auth module resolves it.
fn identity(fake: &FakeAzure, client_id: &str) -> ResolvedIdentity {
    let options = ClientSecretCredentialOptions {
        client_options: fake.transport().client_options(),
    };
    let credential = ClientSecretCredential::new(
        TENANT,
        client_id.to_string(),
        Secret::new(SECRET),
        Some(options),
    )
    .expect("valid test credential");
    let key = IdentityKey {
        cloud: "AzurePublicCloud".into(),
        tenant_id: TENANT.into(),
        mode: "service-principal",
        client_id: client_id.into(),
        subject: format!("sha256:{client_id}"),
    };
    ResolvedIdentity::new(key, credential)
}

fn public_cloud() -> CloudEnvironment {
    CloudEnvironment {
        name: "AzurePublicCloud".into(),
        active_directory_endpoint: "https://login.microsoftonline.com/".into(),
        key_vault_endpoint: "https://vault.azure.net/".into(),
        key_vault_dns_suffix: "vault.azure.net".into(),
    }
}

#[tokio::test]
async fn no_token_goes_to_a_host_outside_the_trusted_suffix() {
    let (fake, _provider, _) = setup(0).await;
    for vault in ["elsewhere", "coldvault"] {
        fake.add_secret(vault, "s", "v1", "x", None, None, 100, true);
        fake.grant(vault, FIRST);
    }
    let clients = VaultClients::new(fake.transport(), KeyVaultOptions::default());
    let cloud = public_cloud();
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    // Not `<name>.vault.azure.net`, and not one label under it: the vault's own challenge first.
    for url in [
        "https://elsewhere.azure-vault.example/",
        "https://coldvault.x.vault.azure.net/",
    ] {
        fake.reset_counts();
        fake.clear_requests();
        let client = clients
            .client_in(&identity(&fake, FIRST), url, Some(&cloud))
            .unwrap();
        // The second vault is not known to the fake under its 3-label name: any answer will do,
        // what matters is what was sent.
        let _ = client.get_secret("s", "", deadline).await;
        let requests = fake.requests();
        let first = requests
            .iter()
            .find(|r| r.service == "keyvault")
            .expect("a Key Vault request");
        assert!(!first.authorized, "{url}: {requests:?}");
        assert_eq!(fake.counts().challenges, 1, "{url}");
    }
}

#[tokio::test]
async fn a_learned_scope_is_shared_without_the_cloud_configuration() {
    let (fake, _provider, _) = setup(0).await;
    fake.add_secret(VAULT, "s", "v1", "x", None, None, 100, true);
    let clients = VaultClients::new(fake.transport(), KeyVaultOptions::default());
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let url = "https://coldvault.vault.azure.net/";
    let first = clients.client(&identity(&fake, FIRST), url).unwrap();
    first.get_secret("s", "", deadline).await.unwrap();
    assert_eq!(fake.counts().challenges, 1);
    fake.reset_counts();
    let second = clients.client(&identity(&fake, SECOND), url).unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    second.get_secret("s", "", deadline).await.unwrap();
    let counts = fake.counts();
    assert_eq!(
        (counts.challenges, counts.entra_tokens, counts.keyvault),
        (0, 1, 1),
        "{counts:?}"
    );
}
