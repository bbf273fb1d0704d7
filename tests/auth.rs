//! Identity modes and the cross-mount credential cache, against the in-repo fake of Entra ID,
//! IMDS and NMI over real HTTP (the redirecting transport; nothing leaves loopback).

mod support;

use std::sync::Arc;
use std::time::Duration;

use akv_csi_provider::auth::{AuthOptions, Identities, ResolvedIdentity};
use akv_csi_provider::request::{CloudEnvironment, IdentityRequest, MountRequest, PodInfo};
use akv_csi_provider::sensitive::Sensitive;
use support::fake::{FakeAzure, Fault, service_account_token};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const OTHER_CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const SECRET: &str = "sp-secret-value-1";
const ISSUER: &str = "https://oidc.prod-aks.azure.com/cluster/";
const AUDIENCE: &str = "api://AzureADTokenExchange";
const SCOPES: &[&str] = &["https://vault.azure.net/.default"];

fn request(identity: IdentityRequest) -> MountRequest {
    MountRequest {
        pod: PodInfo {
            name: "web-0".into(),
            namespace: "apps".into(),
            uid: None,
            service_account: None,
        },
        secret_provider_class: Some("spc".into()),
        vault_name: "myvault".into(),
        tenant_id: TENANT.into(),
        cloud: CloudEnvironment::public(),
        identity,
        objects: vec![],
        default_mode: 0o644,
    }
}

fn sp(client_id: &str, secret: &str) -> MountRequest {
    request(IdentityRequest::ServicePrincipalSecret {
        client_id: client_id.into(),
        client_secret: Sensitive::new(secret),
    })
}

fn in_hour() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + 3600
}

fn sa_token(namespace: &str, account: &str) -> String {
    service_account_token(ISSUER, namespace, account, AUDIENCE, in_hour())
}

fn wi(client_id: &str, token: &str) -> MountRequest {
    request(IdentityRequest::WorkloadIdentity {
        client_id: client_id.into(),
        service_account_token: Sensitive::new(token),
    })
}

fn identities(fake: &FakeAzure) -> Identities {
    Identities::new(fake.transport(), AuthOptions::default())
}

async fn token_of(resolved: &ResolvedIdentity) -> Result<String, String> {
    resolved
        .credential
        .get_token(SCOPES, None)
        .await
        .map(|t| t.token.secret().to_string())
        .map_err(|e| e.to_string())
}

/// An error message: one line, naming what it should, and free of every secret the fake saw.
fn assert_clean(fake: &FakeAzure, message: &str, expected: &[&str]) {
    for part in expected {
        assert!(
            message.contains(part),
            "{message:?} should contain {part:?}"
        );
    }
    assert!(!message.contains('\n'), "{message:?} is not one line");
    for secret in fake.sensitive_strings() {
        assert!(!message.contains(&secret), "{message:?} leaks a secret");
    }
}

fn entra(fake: &FakeAzure) -> u64 {
    fake.counts().entra_tokens
}

// ---- service principal ----

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

// ---- workload identity ----

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

// ---- managed identity (IMDS, always through the fake's redirecting transport) ----

fn vm(id: Option<&str>) -> MountRequest {
    request(IdentityRequest::VmManagedIdentity {
        user_assigned_identity_id: id.map(str::to_string),
    })
}

#[tokio::test]
async fn vm_managed_identities_succeed_and_are_reused() {
    let fake = FakeAzure::start().await;
    fake.add_managed_identity(None);
    fake.add_managed_identity(Some(OTHER_CLIENT));
    let ids = identities(&fake);
    let system = ids.resolve(&vm(None)).await.unwrap();
    let user = ids.resolve(&vm(Some(OTHER_CLIENT))).await.unwrap();
    assert_eq!(system.key.subject, "");
    assert_eq!(user.key.client_id, OTHER_CLIENT);
    assert_ne!(
        token_of(&system).await.unwrap(),
        token_of(&user).await.unwrap()
    );
    assert_eq!(fake.counts().imds, 2);
    token_of(&ids.resolve(&vm(None)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(fake.counts().imds, 2);
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.service == "imds" && r.path.contains(&format!("client_id={OTHER_CLIENT}")))
    );
}

#[tokio::test]
async fn unassigned_managed_identity_fails_cleanly() {
    let fake = FakeAzure::start().await;
    let ids = identities(&fake);
    let resolved = ids.resolve(&vm(Some(OTHER_CLIENT))).await.unwrap();
    let err = token_of(&resolved).await.unwrap_err();
    assert_clean(&fake, &err, &["vm_managed_identity", "HTTP 400"]);
}

#[tokio::test]
async fn imds_down_fails_fast_with_its_status() {
    let fake = FakeAzure::start().await;
    fake.add_managed_identity(None);
    fake.inject(Fault::ImdsStatus {
        count: 10,
        status: 503,
    });
    let ids = identities(&fake);
    let resolved = ids.resolve(&vm(None)).await.unwrap();
    let started = std::time::Instant::now();
    let err = token_of(&resolved).await.unwrap_err();
    assert_clean(&fake, &err, &["vm_managed_identity", "HTTP 503"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no 72 s SDK retry loop"
    );
    let attempts = u64::from(akv_csi_provider::auth::DEFAULT_AUTH_MAX_RETRIES) + 1;
    assert_eq!(fake.counts().imds, attempts, "our bounded retries only");
}

// ---- pod identity (NMI) ----

fn pod_identity(namespace: &str, name: &str) -> MountRequest {
    let mut req = request(IdentityRequest::PodIdentity);
    req.pod.namespace = namespace.into();
    req.pod.name = name.into();
    req
}

#[tokio::test]
async fn pod_identity_succeeds_per_pod() {
    let fake = FakeAzure::start().await;
    fake.add_pod_identity("apps", "web-0", CLIENT);
    fake.add_pod_identity("apps", "web-1", CLIENT);
    let ids = identities(&fake);
    let a = ids.resolve(&pod_identity("apps", "web-0")).await.unwrap();
    let b = ids.resolve(&pod_identity("apps", "web-1")).await.unwrap();
    assert_eq!(a.key.subject, "pod:apps/web-0");
    assert_ne!(a.key, b.key);
    token_of(&a).await.unwrap();
    token_of(&a).await.unwrap();
    token_of(&b).await.unwrap();
    assert_eq!(fake.counts().nmi, 2);
    let nmi = fake
        .requests()
        .into_iter()
        .find(|r| r.service == "nmi")
        .unwrap();
    assert_eq!(nmi.path, "/host/token/?resource=https://vault.azure.net");
}

#[tokio::test]
async fn pod_identity_refused_by_nmi_fails_cleanly() {
    let fake = FakeAzure::start().await;
    let ids = identities(&fake);
    let resolved = ids.resolve(&pod_identity("apps", "unbound")).await.unwrap();
    let err = token_of(&resolved).await.unwrap_err();
    assert_clean(
        &fake,
        &err,
        &["pod_identity", "HTTP 403", "no AzureAssignedIdentity"],
    );

    fake.add_pod_identity("apps", "web-0", CLIENT);
    fake.inject(Fault::NmiStatus {
        count: 1000,
        status: 500,
    });
    let resolved = ids.resolve(&pod_identity("apps", "web-0")).await.unwrap();
    let err = token_of(&resolved).await.unwrap_err();
    assert_clean(&fake, &err, &["pod_identity", "HTTP 500"]);
    fake.clear_faults();

    let err = ids.resolve(&pod_identity("", "")).await.unwrap_err();
    assert!(err.0.contains("podInfoOnMount"), "{err}");
}

#[tokio::test]
async fn pod_identity_is_keyed_by_pod_uid() {
    let fake = FakeAzure::start().await;
    fake.add_pod_identity("apps", "web-0", CLIENT);
    let ids = identities(&fake);
    let with_uid = |uid: &str| {
        let mut req = pod_identity("apps", "web-0");
        req.pod.uid = Some(uid.into());
        req
    };
    let old = ids.resolve(&with_uid("uid-1")).await.unwrap();
    assert_eq!(old.key.subject, "pod:apps/web-0/uid-1");
    token_of(&old).await.unwrap();
    // The same pod mounting again reuses the token.
    let again = ids.resolve(&with_uid("uid-1")).await.unwrap();
    token_of(&again).await.unwrap();
    assert_eq!(fake.counts().nmi, 1);
    // A pod recreated under the same name has a new UID: it asks NMI for itself.
    let recreated = ids.resolve(&with_uid("uid-2")).await.unwrap();
    assert_ne!(recreated.key, old.key);
    token_of(&recreated).await.unwrap();
    assert_eq!(fake.counts().nmi, 2);
    assert_eq!(ids.cached(), 2);
    // Without a UID nothing is kept beyond the mount: every mount asks NMI.
    for expected in [3, 4] {
        let plain = ids.resolve(&pod_identity("apps", "web-0")).await.unwrap();
        assert!(!plain.is_proven());
        token_of(&plain).await.unwrap();
        assert_eq!(fake.counts().nmi, expected);
    }
    assert_eq!(ids.cached(), 2);
}

#[tokio::test]
async fn failing_identities_are_not_cached_and_evict_nothing() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let ids = Identities::new(
        fake.transport(),
        AuthOptions {
            max_identities: 1,
            ..AuthOptions::default()
        },
    );
    let good = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
    assert!(!good.is_proven(), "no token yet");
    assert_eq!((ids.cached(), ids.pending()), (0, 1));
    token_of(&good).await.unwrap();
    assert!(good.is_proven());
    assert_eq!((ids.cached(), ids.pending()), (1, 0));
    for i in 0..5 {
        let bad = ids
            .resolve(&sp(OTHER_CLIENT, &format!("wrong-secret-{i}")))
            .await
            .unwrap();
        token_of(&bad).await.unwrap_err();
        assert!(!bad.is_proven());
    }
    assert_eq!((ids.cached(), ids.pending()), (1, 0));
    let before = entra(&fake);
    let again = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
    assert!(again.is_proven());
    token_of(&again).await.unwrap();
    assert_eq!(entra(&fake), before, "the proven identity kept its token");
}

#[tokio::test]
async fn concurrent_mounts_of_a_new_identity_share_one_build() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let ids = identities(&fake);
    let request = sp(CLIENT, SECRET);
    let all = futures::future::join_all((0..8).map(|_| ids.resolve(&request))).await;
    let all: Vec<ResolvedIdentity> = all.into_iter().map(Result::unwrap).collect();
    assert!(
        all.iter()
            .all(|r| Arc::ptr_eq(&r.credential, &all[0].credential))
    );
    assert_eq!(ids.pending(), 1);
    let tokens = futures::future::join_all(all.iter().map(token_of)).await;
    assert!(tokens.iter().all(|t| t.is_ok()));
    assert_eq!(entra(&fake), 1);
    assert_eq!((ids.cached(), ids.pending()), (1, 0));
}

// ---- invalidation, bounds, idle expiry ----

#[tokio::test]
async fn invalidate_token_forces_a_new_request() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let ids = identities(&fake);
    let resolved = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
    let before = token_of(&resolved).await.unwrap();
    resolved.invalidate_token();
    let after = token_of(&ids.resolve(&sp(CLIENT, SECRET)).await.unwrap())
        .await
        .unwrap();
    assert_ne!(before, after);
    assert_eq!(entra(&fake), 2);
}

#[tokio::test]
async fn least_recently_used_identities_are_evicted() {
    let fake = FakeAzure::start().await;
    for i in 0..3 {
        fake.add_client_secret(TENANT, CLIENT, &format!("secret-number-{i}"));
    }
    let ids = Identities::new(
        fake.transport(),
        AuthOptions {
            max_identities: 2,
            ..AuthOptions::default()
        },
    );
    for i in 0..3 {
        token_of(
            &ids.resolve(&sp(CLIENT, &format!("secret-number-{i}")))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    }
    assert_eq!(ids.cached(), 2);
    assert_eq!(entra(&fake), 3);
    // The most recent two are still cached; the first was evicted.
    token_of(&ids.resolve(&sp(CLIENT, "secret-number-2")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(entra(&fake), 3);
    token_of(&ids.resolve(&sp(CLIENT, "secret-number-0")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(entra(&fake), 4);
}

#[tokio::test]
async fn idle_identities_expire() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let options = AuthOptions {
        idle_ttl: Duration::from_millis(300),
        ..AuthOptions::default()
    };
    let ids = Identities::new(fake.transport(), options);
    token_of(&ids.resolve(&sp(CLIENT, SECRET)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(ids.cached(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(ids.cached(), 0);
    token_of(&ids.resolve(&sp(CLIENT, SECRET)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(entra(&fake), 2);
}

// ---- modes this build refuses ----

#[tokio::test]
async fn identity_binding_through_a_test_transport_stays_on_loopback() {
    // Default flags: the proxy is kubernetes.default.svc.cluster.local, which a test transport
    // refuses to reach (end-to-end identity binding tests: tests/identity_binding.rs).
    let fake = FakeAzure::start().await;
    let ids = identities(&fake);
    let token = service_account_token(ISSUER, "apps", "web", "api://AKSIdentityBinding", in_hour());
    let binding = request(IdentityRequest::AzureTokenProxy {
        client_id: CLIENT.into(),
        service_account_token: Sensitive::new(token),
    });
    let err = ids.resolve(&binding).await.unwrap_err();
    assert!(
        err.0.starts_with("azure_token_proxy") && err.0.contains("loopback"),
        "{err}"
    );
    let wrong = request(IdentityRequest::AzureTokenProxy {
        client_id: CLIENT.into(),
        service_account_token: Sensitive::new(sa_token("apps", "web")),
    });
    let err = ids.resolve(&wrong).await.unwrap_err();
    assert!(err.0.contains("not api://AKSIdentityBinding"), "{err}");
    let missing = request(IdentityRequest::AzureTokenProxy {
        client_id: String::new(),
        service_account_token: Sensitive::new("x"),
    });
    let err = ids.resolve(&missing).await.unwrap_err();
    assert!(
        err.0.contains(
            "clientID and the service account token for api://AKSIdentityBinding are required"
        ),
        "{err}"
    );
    assert_eq!(fake.counts(), Default::default());
}

// ---- service principal with a client certificate ----

/// A fresh RSA key (PKCS#8 DER) and a self-signed certificate (DER) for it.
fn rsa_certificate(name: &str) -> (Vec<u8>, Vec<u8>) {
    use aws_lc_rs::encoding::AsDer;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = key.as_der().unwrap().as_ref().to_vec();
    let signer = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&signer)
        .unwrap();
    (pkcs8, cert.der().to_vec())
}

fn pem_block(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

/// PEM `clientcert`: the certificate first, then the PKCS#8 key.
fn cert_pem(pkcs8: &[u8], cert: &[u8]) -> String {
    pem_block("CERTIFICATE", cert) + &pem_block("PRIVATE KEY", pkcs8)
}

/// The same key as PKCS#1 (`RSA PRIVATE KEY`), before its certificate.
fn cert_pem_pkcs1(pkcs8: &[u8], cert: &[u8]) -> String {
    use pkcs8::der::Decode;
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8).unwrap();
    pem_block("RSA PRIVATE KEY", info.private_key.as_bytes()) + &pem_block("CERTIFICATE", cert)
}

/// Base64 PFX with the empty password, as Key Vault exports it.
fn cert_pfx(pkcs8: &[u8], cert: &[u8]) -> String {
    use base64::Engine;
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let chain = PrivateKeyChain::new(
        b"1".as_slice(),
        PrivateKey::from_der(pkcs8).unwrap(),
        [Certificate::from_der(cert).unwrap()],
    );
    let mut store = KeyStore::new();
    store.add_entry("client", KeyStoreEntry::PrivateKeyChain(chain));
    let pfx = store.writer("").write().unwrap();
    base64::engine::general_purpose::STANDARD.encode(pfx)
}

fn spc(client_id: &str, clientcert: &str) -> MountRequest {
    request(IdentityRequest::ServicePrincipalCertificate {
        client_id: client_id.into(),
        certificate: Sensitive::new(clientcert),
    })
}

/// A certificate-credential error: names the mode and what it should, one line, no secret the
/// fake saw, and no part of `clientcert`.
fn assert_clean_cert(fake: &FakeAzure, message: &str, clientcert: &str, expected: &[&str]) {
    assert!(
        message.starts_with("service_principal_certificate: "),
        "{message}"
    );
    assert_clean(fake, message, expected);
    for line in clientcert.lines().filter(|l| l.len() >= 16) {
        assert!(!message.contains(line), "{message:?} echoes clientcert");
    }
    assert!(!message.contains("eyJ"), "{message:?} holds a JWT");
}

#[tokio::test]
async fn certificate_pem_and_pfx_obtain_tokens_and_are_reused() {
    let fake = FakeAzure::start().await;
    let (key, cert) = rsa_certificate("client");
    fake.add_client_certificate(TENANT, CLIENT, &cert);
    let ids = identities(&fake);
    for (round, clientcert) in [
        cert_pem(&key, &cert),
        cert_pem_pkcs1(&key, &cert),
        cert_pfx(&key, &cert),
    ]
    .iter()
    .enumerate()
    {
        let first = ids.resolve(&spc(CLIENT, clientcert)).await.unwrap();
        assert_eq!(first.key.mode, "service_principal_certificate");
        assert!(first.key.subject.starts_with("sha256:"), "{}", first.key);
        let token = token_of(&first).await.unwrap();
        assert_eq!(entra(&fake), round as u64 + 1);
        let again = ids.resolve(&spc(CLIENT, clientcert)).await.unwrap();
        assert_eq!(again.key, first.key);
        assert_eq!(token_of(&again).await.unwrap(), token);
        assert_eq!(
            entra(&fake),
            round as u64 + 1,
            "the second mount reuses the token"
        );
    }
    assert_eq!(ids.cached(), 3);
}

#[tokio::test]
async fn certificate_assertions_are_fresh_and_well_formed() {
    let fake = FakeAzure::start().await;
    let (key, cert) = rsa_certificate("client");
    fake.add_client_certificate(TENANT, CLIENT, &cert);
    let ids = identities(&fake);
    let resolved = ids
        .resolve(&spc(CLIENT, &cert_pem(&key, &cert)))
        .await
        .unwrap();
    token_of(&resolved).await.unwrap();
    resolved.invalidate_token();
    token_of(&resolved).await.unwrap();
    assert_eq!(entra(&fake), 2);
    // Both assertions were recorded by the fake as sensitive, and they differ (fresh `jti`).
    let assertions: Vec<String> = fake
        .sensitive_strings()
        .into_iter()
        .filter(|s| s.starts_with("eyJ") && s.split('.').count() == 3)
        .collect();
    assert_eq!(assertions.len(), 2, "{assertions:?}");
    assert_ne!(assertions[0], assertions[1]);
}

#[tokio::test]
async fn certificate_assertions_name_the_clouds_token_endpoint() {
    let fake = FakeAzure::start().await;
    let (key, cert) = rsa_certificate("client");
    fake.add_client_certificate(TENANT, CLIENT, &cert);
    let mut req = spc(CLIENT, &cert_pem(&key, &cert));
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
}

#[tokio::test]
async fn an_unregistered_certificate_fails_with_the_aadsts_code() {
    let fake = FakeAzure::start().await;
    let (_, registered) = rsa_certificate("registered");
    let (key, cert) = rsa_certificate("other");
    fake.add_client_certificate(TENANT, CLIENT, &registered);
    let ids = identities(&fake);
    let clientcert = cert_pem(&key, &cert);
    let resolved = ids.resolve(&spc(CLIENT, &clientcert)).await.unwrap();
    let err = token_of(&resolved).await.unwrap_err();
    assert_clean_cert(
        &fake,
        &err,
        &clientcert,
        &["HTTP 401", "AADSTS700027", "invalid signature"],
    );
    // A key that does not belong to the registered certificate, claiming its thumbprint.
    let forged = pem_block("CERTIFICATE", &registered) + &pem_block("PRIVATE KEY", &key);
    let err = ids.resolve(&spc(CLIENT, &forged)).await.unwrap_err().0;
    assert_clean_cert(
        &fake,
        &err,
        &forged,
        &["clientcert", "no certificate for its private key"],
    );
}

#[tokio::test]
async fn bad_clientcert_fails_at_resolve_naming_clientcert() {
    let fake = FakeAzure::start().await;
    let ids = identities(&fake);
    let (rsa_key, rsa_cert) = rsa_certificate("client");
    let ec = rcgen::KeyPair::generate().unwrap();
    let ec_cert = rcgen::CertificateParams::new(vec!["ec".to_string()])
        .unwrap()
        .self_signed(&ec)
        .unwrap();
    let ec_pem = pem_block("CERTIFICATE", ec_cert.der()) + &ec.serialize_pem();
    let cases = [
        (
            "not a certificate at all, just some text",
            "neither PEM nor a base64 PFX",
        ),
        ("bm90IGEgUEZY", "PFX that cannot be used"),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "PKCS#8",
        ),
        (&pem_block("CERTIFICATE", &rsa_cert)[..], "no private key"),
        (
            &pem_block("PRIVATE KEY", &rsa_key)[..],
            "no certificate for its private key",
        ),
        (&ec_pem[..], "EC private key"),
        (
            &cert_pfx(&ec.serialize_der(), ec_cert.der())[..],
            "EC private key",
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "encrypted",
        ),
    ];
    for (clientcert, problem) in cases {
        let err = ids.resolve(&spc(CLIENT, clientcert)).await.unwrap_err().0;
        assert_clean_cert(&fake, &err, clientcert, &["clientcert", problem]);
    }
    assert_eq!(ids.cached(), 0);
    assert_eq!(fake.counts(), Default::default());
}

#[tokio::test]
async fn two_certificates_of_one_client_never_share_an_entry() {
    let fake = FakeAzure::start().await;
    let (key_a, cert_a) = rsa_certificate("a");
    let (key_b, cert_b) = rsa_certificate("b");
    fake.add_client_certificate(TENANT, CLIENT, &cert_a);
    let ids = identities(&fake);
    let a = ids
        .resolve(&spc(CLIENT, &cert_pem(&key_a, &cert_a)))
        .await
        .unwrap();
    token_of(&a).await.unwrap();
    let b = ids
        .resolve(&spc(CLIENT, &cert_pem(&key_b, &cert_b)))
        .await
        .unwrap();
    assert_ne!(a.key, b.key);
    // The unregistered certificate is sent to Entra ID, never served the cached token.
    let err = token_of(&b).await.unwrap_err();
    assert!(err.contains("AADSTS700027"), "{err}");
    assert_eq!(entra(&fake), 2);
    // Only the certificate Entra ID accepted is kept; the refused one leaves when its mount ends.
    assert_eq!(ids.cached(), 1);
    drop(b);
    assert_eq!(ids.pending(), 0);
}

#[tokio::test]
async fn certificate_mount_end_to_end() {
    use akv_csi_provider::provider::ProviderOptions;
    use serde_json::json;
    use support::provider::RunningProvider;

    let fake = FakeAzure::start().await;
    let (key, cert) = rsa_certificate("client");
    fake.add_client_certificate(TENANT, CLIENT, &cert);
    fake.grant("myvault", CLIENT);
    fake.add_secret("myvault", "db", "v1", "hunter2", None, None, 100, true);
    let provider = RunningProvider::start(fake.transport(), ProviderOptions::default()).await;
    let mut driver = provider.driver().await;
    let attributes = json!({
        "keyvaultName": "myvault",
        "tenantID": TENANT,
        "objects": "array:\n  - |\n    objectName: db\n    objectType: secret\n",
        "csi.storage.k8s.io/pod.name": "web-0",
        "csi.storage.k8s.io/pod.namespace": "apps",
    });
    for clientcert in [cert_pem(&key, &cert), cert_pfx(&key, &cert)] {
        let secrets = json!({ "clientid": CLIENT, "clientcert": clientcert });
        let response = driver
            .mount(&attributes, Some(&secrets), "420")
            .await
            .unwrap();
        let files: Vec<(&str, &[u8])> = response
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.contents.as_slice()))
            .collect();
        assert_eq!(files, [("db", b"hunter2".as_slice())]);
    }
    assert_eq!(entra(&fake), 2, "one token per certificate credential");

    // A certificate Entra ID does not know: the mount fails naming the mode and the code.
    let (other_key, other_cert) = rsa_certificate("other");
    let clientcert = cert_pem(&other_key, &other_cert);
    let secrets = json!({ "clientid": CLIENT, "clientcert": clientcert });
    let status = driver
        .mount(&attributes, Some(&secrets), "420")
        .await
        .unwrap_err();
    let message = status.message();
    assert!(
        message.contains("service_principal_certificate"),
        "{message}"
    );
    assert!(message.contains("AADSTS700027"), "{message}");
    assert!(
        !message.contains("eyJ") && !message.contains("PRIVATE KEY"),
        "{message}"
    );
}
