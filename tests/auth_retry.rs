//! Transient faults of Entra ID, IMDS and NMI are retried (bounded, within the mount's deadline,
//! honouring `Retry-After`); rejections are not; and every auth failure reaches the driver with
//! the gRPC code and the metric class of its kind. Against the in-repo fake over real HTTP, and
//! through a real gRPC socket for the codes.

mod support;

use std::time::{Duration, Instant};

use akv_csi_provider::auth::{
    AuthErrorKind, AuthOptions, DEFAULT_AUTH_MAX_RETRIES, Identities, ResolvedIdentity,
    within_deadline,
};
use akv_csi_provider::provider::ProviderOptions;
use akv_csi_provider::request::{CloudEnvironment, IdentityRequest, MountRequest, PodInfo};
use akv_csi_provider::sensitive::Sensitive;
use serde_json::json;
use support::fake::{FakeAzure, Fault, service_account_token, service_account_tokens_attribute};
use support::provider::RunningProvider;
use tonic::Code;

const TENANT: &str = "5b000000-0000-4000-8000-0000000000aa";
const CLIENT: &str = "5b000000-0000-4000-8000-000000000001";
const SECRET: &str = "retry-secret-value-1";
const ISSUER: &str = "https://oidc.retry.test/";
const AUDIENCE: &str = "api://AzureADTokenExchange";
const SCOPES: &[&str] = &["https://vault.azure.net/.default"];
const VAULT: &str = "retryvault";
const ATTEMPTS: u64 = DEFAULT_AUTH_MAX_RETRIES as u64 + 1;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn request(identity: IdentityRequest) -> MountRequest {
    MountRequest {
        pod: PodInfo {
            name: "web-0".into(),
            namespace: "apps".into(),
            uid: Some("uid-0".into()),
            service_account: None,
        },
        secret_provider_class: Some("spc".into()),
        vault_name: VAULT.into(),
        tenant_id: TENANT.into(),
        cloud: CloudEnvironment::public(),
        identity,
        objects: vec![],
        default_mode: 0o644,
    }
}

fn sp(secret: &str) -> MountRequest {
    request(IdentityRequest::ServicePrincipalSecret {
        client_id: CLIENT.into(),
        client_secret: Sensitive::new(secret),
    })
}

fn wi() -> MountRequest {
    let token = service_account_token(ISSUER, "apps", "web", AUDIENCE, now() + 3600);
    request(IdentityRequest::WorkloadIdentity {
        client_id: CLIENT.into(),
        service_account_token: Sensitive::new(token),
    })
}

fn vm() -> MountRequest {
    request(IdentityRequest::VmManagedIdentity {
        user_assigned_identity_id: None,
    })
}

fn pod() -> MountRequest {
    request(IdentityRequest::PodIdentity)
}

async fn start_fake() -> FakeAzure {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:apps:web",
        AUDIENCE,
    );
    fake.add_managed_identity(None);
    fake.add_pod_identity("apps", "web-0", CLIENT);
    fake
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

/// A fresh identity cache resolves `req` and fetches one token.
async fn fresh_token(fake: &FakeAzure, req: &MountRequest) -> Result<String, String> {
    let ids = identities(fake);
    let resolved = ids.resolve(req).await.map_err(|e| e.to_string())?;
    token_of(&resolved).await
}

/// The requests one endpoint received.
fn count(fake: &FakeAzure, endpoint: &str) -> u64 {
    let counts = fake.counts();
    match endpoint {
        "entra" => counts.entra_tokens,
        "imds" => counts.imds,
        _ => counts.nmi,
    }
}

/// One and two transient faults are survived with one request more per fault; a persistent one
/// fails after the bounded attempts, naming the status.
async fn one_two_persistent(
    endpoint: &str,
    req: MountRequest,
    fault: impl Fn(u32) -> Fault,
    status: &str,
) {
    for n in [1u32, 2] {
        let fake = start_fake().await;
        fake.inject(fault(n));
        fresh_token(&fake, &req)
            .await
            .unwrap_or_else(|e| panic!("{endpoint}: {n} fault(s) survived: {e}"));
        assert_eq!(count(&fake, endpoint), u64::from(n) + 1, "{endpoint}: {n}");
    }
    let fake = start_fake().await;
    fake.inject(fault(1000));
    let err = fresh_token(&fake, &req).await.unwrap_err();
    assert!(err.contains(status), "{endpoint}: {err}");
    assert_eq!(count(&fake, endpoint), ATTEMPTS, "{endpoint}: bounded");
}

#[tokio::test]
async fn entra_server_errors_are_retried() {
    let fault = |count| Fault::EntraStatus {
        count,
        status: 503,
        aadsts: "AADSTS90033",
    };
    one_two_persistent("entra", sp(SECRET), fault, "HTTP 503").await;
}

#[tokio::test]
async fn entra_throttling_is_retried_after_its_retry_after() {
    let fault = |count| Fault::EntraRetryAfter {
        count,
        status: 429,
        retry_after_secs: 0,
    };
    one_two_persistent("entra", sp(SECRET), fault, "HTTP 429").await;

    let fake = start_fake().await;
    fake.inject(Fault::EntraRetryAfter {
        count: 1,
        status: 429,
        retry_after_secs: 1,
    });
    let started = Instant::now();
    fresh_token(&fake, &sp(SECRET)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(count(&fake, "entra"), 2);
}

#[tokio::test]
async fn entra_connection_resets_are_retried() {
    let fault = |count| Fault::EntraReset { count };
    one_two_persistent("entra", wi(), fault, "token request failed").await;
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_is_not_waited_for() {
    let fake = start_fake().await;
    fake.inject(Fault::EntraRetryAfter {
        count: 1000,
        status: 429,
        retry_after_secs: 60,
    });
    let ids = identities(&fake);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let err = within_deadline(deadline, ids.resolve(&wi()))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "gave up at once: {:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), AuthErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("HTTP 429"), "{err}");
    assert_eq!(count(&fake, "entra"), 1);
}

#[tokio::test]
async fn retries_stop_at_the_deadline() {
    let fake = start_fake().await;
    fake.inject(Fault::EntraStatus {
        count: 1000,
        status: 500,
        aadsts: "AADSTS90033",
    });
    let ids = Identities::new(
        fake.transport(),
        AuthOptions {
            max_retries: 1000,
            ..AuthOptions::default()
        },
    );
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let err = within_deadline(deadline, ids.resolve(&wi()))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(err.kind(), AuthErrorKind::Unavailable, "{err}");
    let sent = count(&fake, "entra");
    assert!(
        (2..100).contains(&sent),
        "backed off, not a busy loop: {sent}"
    );
}

#[tokio::test]
async fn rejections_are_never_retried() {
    // Wrong secret (401 AADSTS7000215).
    let fake = start_fake().await;
    let err = fresh_token(&fake, &sp("not-the-secret")).await.unwrap_err();
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert_eq!(count(&fake, "entra"), 1);
    // Unknown client (400 AADSTS700016) and no federated credential (400 AADSTS70021): the
    // workload-identity exchange at resolve time gives the kind.
    for (setup, code) in [("unknown", "AADSTS700016"), ("unfederated", "AADSTS70021")] {
        let fake = FakeAzure::start().await;
        if setup == "unfederated" {
            fake.add_client_secret(TENANT, CLIENT, SECRET);
        }
        let err = identities(&fake).resolve(&wi()).await.unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::Rejected, "{err}");
        assert!(err.message().contains(code), "{err}");
        assert_eq!(count(&fake, "entra"), 1, "{setup}");
    }
    // NMI refusing an unbound pod (403).
    let fake = start_fake().await;
    let mut unbound = pod();
    unbound.pod.name = "unbound".into();
    let err = fresh_token(&fake, &unbound).await.unwrap_err();
    assert!(err.contains("HTTP 403"), "{err}");
    assert_eq!(count(&fake, "nmi"), 1);
}

#[tokio::test]
async fn imds_faults_are_retried() {
    for status in [503u16, 429, 410] {
        let fault = move |count| Fault::ImdsStatus { count, status };
        one_two_persistent("imds", vm(), fault, &format!("HTTP {status}")).await;
    }
    let fault = |count| Fault::ImdsRetryAfter {
        count,
        status: 429,
        retry_after_secs: 0,
    };
    one_two_persistent("imds", vm(), fault, "HTTP 429").await;
    let fault = |count| Fault::ImdsReset { count };
    one_two_persistent("imds", vm(), fault, "token request failed").await;
}

#[tokio::test]
async fn nmi_faults_are_retried() {
    let fault = |count| Fault::NmiStatus { count, status: 500 };
    one_two_persistent("nmi", pod(), fault, "HTTP 500").await;
    let fault = |count| Fault::NmiReset { count };
    one_two_persistent("nmi", pod(), fault, "NMI request failed").await;
}

#[tokio::test]
async fn no_retries_with_zero() {
    let fake = start_fake().await;
    fake.inject(Fault::EntraStatus {
        count: 1,
        status: 503,
        aadsts: "AADSTS90033",
    });
    let ids = Identities::new(
        fake.transport(),
        AuthOptions {
            max_retries: 0,
            ..AuthOptions::default()
        },
    );
    let err = ids.resolve(&wi()).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::Unavailable, "{err}");
    assert_eq!(count(&fake, "entra"), 1);
}

// ---- gRPC codes and metric classes, through the driver's socket ----

fn objects() -> String {
    "array:\n  - |\n    objectName: s0\n    objectType: secret\n".into()
}

fn attributes(extra: &[(&str, &str)]) -> serde_json::Value {
    let mut attributes = json!({
        "keyvaultName": VAULT,
        "tenantId": TENANT,
        "objects": objects(),
        "csi.storage.k8s.io/pod.name": "web-0",
        "csi.storage.k8s.io/pod.namespace": "apps",
        "csi.storage.k8s.io/pod.uid": "uid-0",
        "csi.storage.k8s.io/serviceAccount.name": "web",
    });
    for (key, value) in extra {
        attributes[*key] = json!(value);
    }
    attributes
}

fn mount_class_count(class: &str) -> u64 {
    let needle = format!("grpc_message=\"{class}\"");
    akv_csi_provider::telemetry::metrics()
        .encode()
        .lines()
        .filter(|l| l.starts_with("grpc_request_count") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test]
async fn each_auth_kind_has_its_grpc_code_and_metric_class() {
    let fake = start_fake().await;
    fake.grant(VAULT, CLIENT);
    fake.add_secret(VAULT, "s0", "v1", "value", None, None, 100, true);
    let provider = RunningProvider::start(fake.transport(), ProviderOptions::default()).await;
    let token = service_account_token(ISSUER, "apps", "web", AUDIENCE, now() + 3600);
    let tokens = service_account_tokens_attribute(&[(AUDIENCE, &token)]);
    let binding_tokens = service_account_tokens_attribute(&[("api://AKSIdentityBinding", &token)]);
    let secrets = |secret: &str| json!({"clientid": CLIENT, "clientsecret": secret});

    // Works at all.
    let mut driver = provider.driver().await;
    driver
        .mount(&attributes(&[]), Some(&secrets(SECRET)), "420")
        .await
        .expect("a clean mount");

    struct Case {
        name: &'static str,
        attributes: serde_json::Value,
        secrets: Option<serde_json::Value>,
        fault: Option<Fault>,
        code: Code,
        class: &'static str,
        says: &'static str,
    }
    let cases = [
        Case {
            name: "rejected",
            attributes: attributes(&[]),
            secrets: Some(secrets("not-the-secret")),
            fault: None,
            code: Code::Unauthenticated,
            class: "unauthenticated",
            says: "AADSTS7000215",
        },
        Case {
            name: "unavailable",
            attributes: attributes(&[
                ("clientID", CLIENT),
                ("csi.storage.k8s.io/serviceAccount.tokens", &tokens),
            ]),
            secrets: None,
            fault: Some(Fault::EntraStatus {
                count: 1000,
                status: 503,
                aadsts: "AADSTS90033",
            }),
            code: Code::Unavailable,
            class: "unavailable",
            says: "HTTP 503",
        },
        Case {
            // The first token of a service principal is fetched by the Key Vault call.
            name: "unavailable during the Key Vault call",
            attributes: attributes(&[]),
            secrets: Some(secrets("another-secret-so-a-cold-identity")),
            fault: Some(Fault::EntraReset { count: 1000 }),
            code: Code::Unavailable,
            class: "unavailable",
            says: "token request failed",
        },
        Case {
            name: "misconfigured",
            attributes: attributes(&[
                ("useAzureTokenProxy", "true"),
                ("csi.storage.k8s.io/serviceAccount.tokens", &binding_tokens),
            ]),
            secrets: None,
            fault: None,
            // The parser catches it before auth does, with the same code.
            code: Code::InvalidArgument,
            class: "invalid_request",
            says: "clientID is required",
        },
    ];
    for case in cases {
        fake.clear_faults();
        if let Some(fault) = case.fault {
            fake.inject(fault);
        }
        let before = mount_class_count(case.class);
        let status = driver
            .mount(&case.attributes, case.secrets.as_ref(), "420")
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            case.code,
            "{}: {}",
            case.name,
            status.message()
        );
        // A service principal's first token is fetched by the Key Vault call that needs it.
        let message = status.message();
        assert!(
            message.starts_with("failed to authenticate: ")
                || message.contains("cannot get an access token for Key Vault: ")
                || message.contains("failed to build auth config"),
            "{}: {}",
            case.name,
            status.message()
        );
        assert!(
            status.message().contains(case.says),
            "{}: {}",
            case.name,
            status.message()
        );
        for secret in fake.sensitive_strings() {
            assert!(!status.message().contains(&secret), "{}", case.name);
        }
        assert!(
            mount_class_count(case.class) > before,
            "{}: class {} counted",
            case.name,
            case.class
        );
    }
    fake.clear_faults();
    driver
        .mount(&attributes(&[]), Some(&secrets(SECRET)), "420")
        .await
        .expect("serving again");
}

#[tokio::test]
async fn a_cold_mount_survives_one_entra_hiccup() {
    let fake = start_fake().await;
    fake.grant(VAULT, CLIENT);
    fake.add_secret(VAULT, "s0", "v1", "value", None, None, 100, true);
    let provider = RunningProvider::start(fake.transport(), ProviderOptions::default()).await;
    let token = service_account_token(ISSUER, "apps", "web", AUDIENCE, now() + 3600);
    let tokens = service_account_tokens_attribute(&[(AUDIENCE, &token)]);
    let attributes = attributes(&[
        ("clientID", CLIENT),
        ("csi.storage.k8s.io/serviceAccount.tokens", &tokens),
    ]);
    fake.inject(Fault::EntraStatus {
        count: 1,
        status: 503,
        aadsts: "AADSTS90033",
    });
    let mut driver = provider.driver().await;
    let response = driver
        .mount(&attributes, None, "420")
        .await
        .expect("one 503 is retried");
    assert_eq!(response.files.len(), 1);
    assert_eq!(response.files[0].contents, b"value");
    assert_eq!(fake.counts().entra_tokens, 2);
}

#[tokio::test]
async fn a_mount_with_a_short_deadline_fails_unavailable_within_it() {
    let fake = start_fake().await;
    fake.grant(VAULT, CLIENT);
    fake.add_secret(VAULT, "s0", "v1", "value", None, None, 100, true);
    let provider = RunningProvider::start(
        fake.transport(),
        ProviderOptions {
            auth: AuthOptions {
                max_retries: 1000,
                ..AuthOptions::default()
            },
            ..ProviderOptions::default()
        },
    )
    .await;
    let token = service_account_token(ISSUER, "apps", "web", AUDIENCE, now() + 3600);
    let tokens = service_account_tokens_attribute(&[(AUDIENCE, &token)]);
    let attributes = attributes(&[
        ("clientID", CLIENT),
        ("csi.storage.k8s.io/serviceAccount.tokens", &tokens),
    ]);
    fake.inject(Fault::EntraRetryAfter {
        count: 1000,
        status: 503,
        retry_after_secs: 1,
    });
    let mut driver = provider.driver().await.with_timeout(Duration::from_secs(6));
    let started = Instant::now();
    let status = driver.mount(&attributes, None, "420").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(
        status.message().contains("HTTP 503"),
        "{}",
        status.message()
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let sent = fake.counts().entra_tokens;
    assert!(
        (2..=7).contains(&sent),
        "one request per Retry-After: {sent}"
    );
}
