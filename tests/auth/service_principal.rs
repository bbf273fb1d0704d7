//! Service principal with a client secret: tokens reused across mounts, clean failures, one
//! acquisition for concurrent mounts.

use crate::common::*;

#[tokio::test]
async fn service_principal_token_is_reused_across_mounts() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let ids = identities(&fake);
    let first = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
    assert_eq!(first.key.mode, "service_principal");
    let shown = first.key.to_string();
    assert!(
        shown.starts_with("service_principal client=") && !shown.contains(SECRET),
        "{shown}"
    );
    assert!(first.key.subject.starts_with("sha256:") && !first.key.subject.contains(SECRET));
    let token = token_of(&first).await.unwrap();
    assert_eq!(entra(&fake), 1);

    let second = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
    assert_eq!(second.key, first.key);
    assert_eq!(token_of(&second).await.unwrap(), token);
    assert_eq!(entra(&fake), 1, "the second mount makes no token request");
    assert_eq!(ids.cached(), 1);
}

#[tokio::test]
async fn service_principal_wrong_secret_fails_cleanly() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let ids = identities(&fake);
    let resolved = ids
        .resolve(&sp(CLIENT, "wrong-secret-value"))
        .await
        .unwrap();
    let err = token_of(&resolved).await.unwrap_err();
    assert_clean(
        &fake,
        &err,
        &[
            "service_principal",
            "401",
            "AADSTS7000215",
            "Invalid client secret",
        ],
    );
    assert!(!err.contains("wrong-secret-value"));
}

#[tokio::test]
async fn service_principal_unknown_client_fails_cleanly() {
    let fake = FakeAzure::start().await;
    let ids = identities(&fake);
    let resolved = ids.resolve(&sp(OTHER_CLIENT, SECRET)).await.unwrap();
    let err = token_of(&resolved).await.unwrap_err();
    assert_clean(
        &fake,
        &err,
        &["service_principal", "HTTP 400", "AADSTS700016"],
    );
}

#[tokio::test]
async fn same_client_id_with_another_secret_never_shares_an_entry() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    fake.add_client_secret(TENANT, CLIENT, "sp-secret-value-2");
    let ids = identities(&fake);
    let a = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
    let token_a = token_of(&a).await.unwrap();
    let b = ids.resolve(&sp(CLIENT, "sp-secret-value-2")).await.unwrap();
    assert_ne!(a.key, b.key);
    assert_ne!(token_of(&b).await.unwrap(), token_a);
    assert_eq!(entra(&fake), 2);

    // A wrong secret for the same client id is sent to Entra ID, never served the cached token.
    let wrong = ids.resolve(&sp(CLIENT, "not-the-secret")).await.unwrap();
    let err = token_of(&wrong).await.unwrap_err();
    assert_clean(&fake, &err, &["AADSTS7000215"]);
    assert_eq!(entra(&fake), 3);
}

#[tokio::test]
async fn entra_outage_names_status_and_code() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    fake.inject(Fault::EntraStatus {
        count: 1000,
        status: 503,
        aadsts: "AADSTS90033",
    });
    let ids = identities(&fake);
    let resolved = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
    let err = token_of(&resolved).await.unwrap_err();
    assert_clean(
        &fake,
        &err,
        &["service_principal", "HTTP 503", "AADSTS90033"],
    );
    let attempts = u64::from(akv_csi_provider::auth::DEFAULT_AUTH_MAX_RETRIES) + 1;
    assert_eq!(entra(&fake), attempts, "our retries only, no SDK retries");
    // Once the outage is over the next acquisition succeeds.
    fake.clear_faults();
    token_of(&resolved).await.unwrap();
}

#[tokio::test]
async fn concurrent_mounts_share_one_acquisition() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    fake.set_latency(Duration::ZERO, Duration::from_millis(200));
    let ids = Arc::new(identities(&fake));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let ids = ids.clone();
            tokio::spawn(async move {
                let resolved = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
                token_of(&resolved).await.unwrap()
            })
        })
        .collect();
    let tokens: Vec<String> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(entra(&fake), 1);
}
