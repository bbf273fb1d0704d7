//! Drives the in-repo fake with the real Azure SDK through the redirecting transport, so the
//! fake's REST shapes are checked against what the official crates send and parse.

mod support;

use std::sync::Arc;

use azure_core::{credentials::Secret, http::StatusCode};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use azure_security_keyvault_secrets::{
    ResourceExt as _, SecretClient, SecretClientOptions, models::SecretClientGetSecretOptions,
};
use futures::TryStreamExt as _;
use support::fake::{Counts, FakeAzure};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const SECRET: &str = "sp-secret-value";
const VAULT_URL: &str = "https://myvault.vault.azure.net/";

fn secret_client(fake: &FakeAzure, client_secret: &str) -> SecretClient {
    let client_options = fake.transport().client_options();
    let credential = ClientSecretCredential::new(
        TENANT,
        CLIENT.to_string(),
        Secret::new(client_secret.to_string()),
        Some(ClientSecretCredentialOptions {
            client_options: client_options.clone(),
        }),
    )
    .expect("credential");
    SecretClient::new(
        VAULT_URL,
        credential,
        Some(SecretClientOptions {
            client_options,
            ..Default::default()
        }),
    )
    .expect("secret client")
}

/// A vault with two enabled versions and a newer disabled one of `db-password`.
fn populate(fake: &FakeAzure) {
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    fake.add_secret(
        "myvault",
        "db-password",
        "v1",
        "hunter1",
        None,
        None,
        1_700_000_000,
        true,
    );
    fake.add_secret(
        "myvault",
        "db-password",
        "v2",
        "hunter2",
        Some("text/plain"),
        None,
        1_700_000_100,
        true,
    );
    fake.add_secret(
        "myvault",
        "db-password",
        "v3",
        "hunter3",
        None,
        None,
        1_700_000_200,
        false,
    );
}

async fn secret_flow(fake: &FakeAzure) {
    populate(fake);
    fake.grant("myvault", CLIENT);
    let client = secret_client(fake, SECRET);

    let current = client
        .get_secret("db-password", None)
        .await
        .expect("current secret")
        .into_model()
        .expect("model");
    assert_eq!(current.value.as_deref(), Some("hunter2"));
    assert_eq!(current.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        current.resource_id().expect("id").version.as_deref(),
        Some("v2")
    );
    assert_eq!(
        fake.counts(),
        Counts {
            keyvault: 2,
            challenges: 1,
            entra_tokens: 1,
            ..Counts::default()
        }
    );

    let options = SecretClientGetSecretOptions {
        secret_version: Some("v1".into()),
        ..Default::default()
    };
    let pinned = client
        .get_secret("db-password", Some(options))
        .await
        .expect("pinned")
        .into_model()
        .expect("model");
    assert_eq!(pinned.value.as_deref(), Some("hunter1"));
    assert_eq!(
        fake.counts(),
        Counts {
            keyvault: 3,
            challenges: 1,
            entra_tokens: 1,
            ..Counts::default()
        }
    );
}

#[tokio::test]
async fn client_secret_flow_over_http() {
    let fake = FakeAzure::start().await;
    secret_flow(&fake).await;
    let requests = fake.requests();
    assert_eq!(
        requests[0].path,
        "/secrets/db-password/?api-version=2025-07-01"
    );
    assert_eq!((requests[0].status, requests[0].authorized), (401, false));
    assert_eq!((requests[1].service, requests[1].status), ("entra", 200));
    assert_eq!(requests[1].host, "login.microsoftonline.com");
    assert_eq!((requests[2].status, requests[2].authorized), (200, true));
    assert!(fake.sensitive_strings().iter().any(|s| s == SECRET));
}
