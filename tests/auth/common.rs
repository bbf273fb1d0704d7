//! What every identity mode's tests share: the tenant and clients, the mount request, the
//! fake's transport and the checks that an error names its problem and no secret.

pub(crate) use std::sync::Arc;
pub(crate) use std::time::Duration;

pub(crate) use akv_csi_provider::auth::{AuthOptions, Identities, ResolvedIdentity};
pub(crate) use akv_csi_provider::request::{
    CloudEnvironment, IdentityRequest, MountRequest, PodInfo,
};
pub(crate) use akv_csi_provider::sensitive::Sensitive;

pub(crate) use crate::support::fake::{FakeAzure, Fault, service_account_token};

pub(crate) const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub(crate) const CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
pub(crate) const OTHER_CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000002";
pub(crate) const SECRET: &str = "sp-secret-value-1";
pub(crate) const ISSUER: &str = "https://oidc.prod-aks.azure.com/cluster/";
pub(crate) const AUDIENCE: &str = "api://AzureADTokenExchange";
pub(crate) const SCOPES: &[&str] = &["https://vault.azure.net/.default"];

pub(crate) fn request(identity: IdentityRequest) -> MountRequest {
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

pub(crate) fn sp(client_id: &str, secret: &str) -> MountRequest {
    request(IdentityRequest::ServicePrincipalSecret {
        client_id: client_id.into(),
        client_secret: Sensitive::new(secret),
    })
}

pub(crate) fn in_hour() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + 3600
}

pub(crate) fn sa_token(namespace: &str, account: &str) -> String {
    service_account_token(ISSUER, namespace, account, AUDIENCE, in_hour())
}

pub(crate) fn wi(client_id: &str, token: &str) -> MountRequest {
    request(IdentityRequest::WorkloadIdentity {
        client_id: client_id.into(),
        service_account_token: Sensitive::new(token),
    })
}

pub(crate) fn identities(fake: &FakeAzure) -> Identities {
    Identities::new(fake.transport(), AuthOptions::default())
}

pub(crate) async fn token_of(resolved: &ResolvedIdentity) -> Result<String, String> {
    resolved
        .credential
        .get_token(SCOPES, None)
        .await
        .map(|t| t.token.secret().to_string())
        .map_err(|e| e.to_string())
}

/// An error message: one line, naming what it should, and free of every secret the fake saw.
pub(crate) fn assert_clean(fake: &FakeAzure, message: &str, expected: &[&str]) {
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

pub(crate) fn entra(fake: &FakeAzure) -> u64 {
    fake.counts().entra_tokens
}
