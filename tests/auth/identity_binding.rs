//! Identity binding: a test transport keeps it on loopback.

use crate::common::*;

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
