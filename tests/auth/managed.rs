//! Managed identity over IMDS (always through the fake's redirecting transport).

use crate::common::*;

pub(crate) fn vm(id: Option<&str>) -> MountRequest {
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
