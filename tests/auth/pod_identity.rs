//! Pod identity (NMI): per-pod tokens keyed by pod UID.

use crate::common::*;

pub(crate) fn pod_identity(namespace: &str, name: &str) -> MountRequest {
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
