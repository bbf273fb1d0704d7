//! Workload identity: the service-account token exchange, who may share an entry, refresh, and the
//! cloud's authority host.

use crate::common::*;

#[tokio::test]
async fn workload_identity_exchanges_once_then_reuses() {
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:apps:web",
        AUDIENCE,
    );
    let ids = identities(&fake);
    let token = sa_token("apps", "web");
    let mut req = wi(CLIENT, &token);
    req.pod.service_account = Some("web".into());
    let first = ids.resolve(&req).await.unwrap();
    assert_eq!(first.key.subject, "system:serviceaccount:apps:web");
    assert_eq!(first.key.client_id, CLIENT);
    assert_eq!(entra(&fake), 1, "the presented token is proven at resolve");
    let access = token_of(&first).await.unwrap();
    assert_eq!(entra(&fake), 1, "the proving exchange's token is served");

    let second = ids.resolve(&req).await.unwrap();
    assert_eq!(token_of(&second).await.unwrap(), access);
    assert_eq!(entra(&fake), 1);
}

#[tokio::test]
async fn workload_identity_for_another_namespace_fails_cleanly() {
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:other:web",
        AUDIENCE,
    );
    let ids = identities(&fake);
    let err = ids
        .resolve(&wi(CLIENT, &sa_token("apps", "web")))
        .await
        .unwrap_err();
    assert_clean(
        &fake,
        &err.0,
        &["workload_identity", "HTTP 400", "AADSTS70021"],
    );
    assert_eq!(ids.cached(), 0, "an identity never proven is not kept");
}

#[tokio::test]
async fn two_service_accounts_with_one_client_id_never_share() {
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:apps:web",
        AUDIENCE,
    );
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:apps:batch",
        AUDIENCE,
    );
    let ids = identities(&fake);
    let web = ids
        .resolve(&wi(CLIENT, &sa_token("apps", "web")))
        .await
        .unwrap();
    let batch = ids
        .resolve(&wi(CLIENT, &sa_token("apps", "batch")))
        .await
        .unwrap();
    assert_ne!(web.key, batch.key);
    assert_ne!(
        token_of(&web).await.unwrap(),
        token_of(&batch).await.unwrap()
    );
    assert_eq!(entra(&fake), 2);
    assert_eq!(ids.cached(), 2);
}

#[tokio::test]
async fn forged_token_claiming_an_accepted_subject_is_exchanged_not_served() {
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:apps:web",
        AUDIENCE,
    );
    let ids = identities(&fake);
    let genuine = ids
        .resolve(&wi(CLIENT, &sa_token("apps", "web")))
        .await
        .unwrap();
    token_of(&genuine).await.unwrap();
    assert_eq!(entra(&fake), 1);

    // Same sub, minted by another issuer (anyone can write an unsigned JWT).
    let forged = service_account_token(
        "https://attacker.example/",
        "apps",
        "web",
        AUDIENCE,
        in_hour(),
    );
    let err = ids.resolve(&wi(CLIENT, &forged)).await.unwrap_err();
    assert_clean(&fake, &err.0, &["workload_identity", "AADSTS70021"]);
    assert_eq!(entra(&fake), 2, "the forged token went to Entra ID");

    // Same sub and issuer, wrong audience.
    let wrong_audience =
        service_account_token(ISSUER, "apps", "web", "api://AKSIdentityBinding", in_hour());
    let err = ids.resolve(&wi(CLIENT, &wrong_audience)).await.unwrap_err();
    assert_clean(&fake, &err.0, &["AADSTS70021"]);
    assert_eq!(entra(&fake), 3);

    // The genuine entry is intact.
    assert!(
        ids.resolve(&wi(CLIENT, &sa_token("apps", "web")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_new_genuine_token_is_proven_once_then_shares_the_entry() {
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:apps:web",
        AUDIENCE,
    );
    let ids = identities(&fake);
    let pod_a = ids
        .resolve(&wi(CLIENT, &sa_token("apps", "web")))
        .await
        .unwrap();
    token_of(&pod_a).await.unwrap();
    // Another pod of the same service account: its own token (later exp), same entry.
    let later = service_account_token(ISSUER, "apps", "web", AUDIENCE, in_hour() + 60);
    let pod_b = ids.resolve(&wi(CLIENT, &later)).await.unwrap();
    assert_eq!(pod_b.key, pod_a.key);
    assert_eq!(entra(&fake), 2);
    // Its exchange produced the longer-lived access token, now shared by both pods.
    let shared = token_of(&pod_b).await.unwrap();
    assert_eq!(token_of(&pod_a).await.unwrap(), shared);
    ids.resolve(&wi(CLIENT, &later)).await.unwrap();
    assert_eq!(entra(&fake), 2);
}

#[tokio::test]
async fn workload_identity_refreshes_with_the_accepted_token() {
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:apps:web",
        AUDIENCE,
    );
    fake.set_token_lifetime(Duration::from_secs(2));
    let ids = identities(&fake);
    let resolved = ids
        .resolve(&wi(CLIENT, &sa_token("apps", "web")))
        .await
        .unwrap();
    let first = token_of(&resolved).await.unwrap();
    assert_eq!(entra(&fake), 1);
    // Past half of a 2 s lifetime the token is refreshed, asserting with the accepted SA token.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let refreshed = token_of(&resolved).await.unwrap();
    assert_ne!(refreshed, first);
    assert_eq!(entra(&fake), 2);
}

#[tokio::test]
async fn concurrent_mounts_with_one_new_token_exchange_once() {
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:apps:web",
        AUDIENCE,
    );
    fake.set_latency(Duration::ZERO, Duration::from_millis(200));
    let ids = Arc::new(identities(&fake));
    let token = sa_token("apps", "web");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (ids, token) = (ids.clone(), token.clone());
            tokio::spawn(async move {
                token_of(&ids.resolve(&wi(CLIENT, &token)).await.unwrap())
                    .await
                    .unwrap()
            })
        })
        .collect();
    for result in futures::future::join_all(tasks).await {
        result.unwrap();
    }
    assert_eq!(entra(&fake), 1);
}

#[tokio::test]
async fn token_for_another_service_account_than_the_pods_is_refused() {
    let fake = FakeAzure::start().await;
    let ids = identities(&fake);
    let mut req = wi(CLIENT, &sa_token("apps", "admin"));
    req.pod.service_account = Some("web".into());
    let err = ids.resolve(&req).await.unwrap_err();
    assert_clean(
        &fake,
        &err.0,
        &[
            "workload_identity",
            "system:serviceaccount:apps:admin",
            "system:serviceaccount:apps:web",
        ],
    );
    assert!(!err.0.contains("eyJ"));
    assert_eq!(entra(&fake), 0);
}

#[tokio::test]
async fn expired_or_malformed_tokens_fail_without_calling_entra() {
    let fake = FakeAzure::start().await;
    let ids = identities(&fake);
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 10;
    let expired = service_account_token(ISSUER, "apps", "web", AUDIENCE, past);
    let err = ids.resolve(&wi(CLIENT, &expired)).await.unwrap_err();
    assert_clean(
        &fake,
        &err.0,
        &[
            "workload_identity",
            "expired",
            "system:serviceaccount:apps:web",
        ],
    );
    assert!(!err.0.contains(&expired));
    let err = ids
        .resolve(&wi(CLIENT, "opaque-garbage"))
        .await
        .unwrap_err();
    assert_clean(&fake, &err.0, &["workload_identity", "not a JWT"]);
    assert!(!err.0.contains("opaque-garbage"));
    assert_eq!(entra(&fake), 0);
}

#[tokio::test]
async fn key_vault_uses_the_token_of_the_proving_exchange() {
    use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:apps:web",
        AUDIENCE,
    );
    fake.add_secret(
        "myvault",
        "db-password",
        "v1",
        "hunter2",
        None,
        None,
        1_700_000_000,
        true,
    );
    fake.grant("myvault", CLIENT);
    let ids = identities(&fake);
    let req = wi(CLIENT, &sa_token("apps", "web"));
    let resolved = ids.resolve(&req).await.unwrap();
    let options = SecretClientOptions {
        client_options: fake.transport().client_options(),
        ..Default::default()
    };
    let client =
        SecretClient::new(&req.vault_url(), resolved.credential.clone(), Some(options)).unwrap();
    let secret = client
        .get_secret("db-password", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(secret.value.as_deref(), Some("hunter2"));
    assert_eq!(
        entra(&fake),
        1,
        "the challenge's scope matches the exchange's: no second token request"
    );
}

#[tokio::test]
async fn the_clouds_authority_host_is_used() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let mut req = sp(CLIENT, SECRET);
    req.cloud = CloudEnvironment {
        name: "AzureChinaCloud".into(),
        active_directory_endpoint: "https://login.chinacloudapi.cn/".into(),
        key_vault_endpoint: "https://vault.azure.cn/".into(),
        key_vault_dns_suffix: "vault.azure.cn".into(),
    };
    let china = identities(&fake).resolve(&req).await.unwrap();
    china
        .credential
        .get_token(&["https://vault.azure.cn/.default"], None)
        .await
        .unwrap();
    let token_request = fake
        .requests()
        .into_iter()
        .find(|r| r.service == "entra")
        .unwrap();
    assert_eq!(token_request.host, "login.chinacloudapi.cn");
    assert_eq!(token_request.path, format!("/{TENANT}/oauth2/v2.0/token"));

    // The same service principal in another cloud is another identity.
    let public = identities(&fake)
        .resolve(&sp(CLIENT, SECRET))
        .await
        .unwrap();
    assert_ne!(public.key, china.key);
}
