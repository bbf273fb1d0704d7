//! AKS identity binding (`useAzureTokenProxy: "true"`) end to end: the driver's gRPC client on the
//! provider's Unix socket → provider → the fake token proxy (HTTPS on loopback, its own CA, a
//! certificate per TLS server name) → Key Vault fake, all over real sockets.

mod support;

use std::path::PathBuf;

use akv_csi_provider::auth::AuthOptions;
use akv_csi_provider::provider::ProviderOptions;
use serde_json::{Value, json};
use support::fake::token_proxy::FakeTokenProxy;
use support::fake::{FakeAzure, service_account_token, service_account_tokens_attribute};
use support::provider::RunningProvider;

const TENANT: &str = "72f988bf-0000-4000-8000-000000000001";
const VAULT: &str = "myvault";
const CLIENT_ID: &str = "5b000000-0000-4000-8000-000000000001";
const OTHER_CLIENT_ID: &str = "5b000000-0000-4000-8000-000000000002";
const ISSUER: &str = "https://oidc.example.test/cluster";
const BINDING: &str = "api://AKSIdentityBinding";
const WORKLOAD: &str = "api://AzureADTokenExchange";
/// A cluster id and the server name computed from it, independently of the provider (Python 3):
/// `"a" + base64.b32hexencode(hashlib.sha256(b"identity-binding" + cid).digest()).decode().rstrip("=").lower() + ".ests.aks"`.
const CLUSTER_ID: &str = "0123456789abcdef0123456789abcdef";
const COMPUTED_NAME: &str = "af17kjq0adhpn7fa35gd5hqll5ij3jgramt04f1nbln2vg8nlff5g.ests.aks";
const PROXY_PATH: &str = "/identity-binding";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn objects() -> String {
    "array:\n  - |\n    objectName: db-password\n    objectType: secret\n".into()
}

/// Attributes of an identity-binding pod `<namespace>/pod1` running as `<account>`, with these
/// (audience, token audience claim) service-account tokens.
fn attributes(namespace: &str, account: &str, tokens: &[(&str, &str)]) -> Value {
    let minted: Vec<(String, String)> = tokens
        .iter()
        .map(|(slot, aud)| {
            (
                slot.to_string(),
                service_account_token(ISSUER, namespace, account, aud, now() + 3600),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = minted
        .iter()
        .map(|(a, t)| (a.as_str(), t.as_str()))
        .collect();
    json!({
        "keyvaultName": VAULT,
        "tenantId": TENANT,
        "clientID": CLIENT_ID,
        "useAzureTokenProxy": "true",
        "objects": objects(),
        "csi.storage.k8s.io/pod.name": "pod1",
        "csi.storage.k8s.io/pod.namespace": namespace,
        "csi.storage.k8s.io/pod.uid": "0b4c1a32-0000-4000-8000-000000000000",
        "csi.storage.k8s.io/serviceAccount.name": account,
        "csi.storage.k8s.io/serviceAccount.tokens": service_account_tokens_attribute(&pairs),
        "csi.storage.k8s.io/ephemeral": "true",
        "secretProviderClass": "spc1",
    })
}

fn bound_pod() -> Value {
    attributes("ns1", "app", &[(BINDING, BINDING)])
}

struct Setup {
    fake: FakeAzure,
    proxy: FakeTokenProxy,
    provider: RunningProvider,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// A fake, a proxy answering for `proxy_name`, and a provider told `sni_name` (None: computed)
/// and `url` (None: the proxy's).
async fn setup(proxy_name: &str, sni_name: Option<&str>, url: Option<&str>) -> Setup {
    let fake = FakeAzure::start().await;
    fake.add_secret(VAULT, "db-password", "v1", "hunter2", None, None, 100, true);
    fake.grant(VAULT, CLIENT_ID);
    fake.grant(VAULT, OTHER_CLIENT_ID);
    let proxy = FakeTokenProxy::start(&fake, proxy_name, CLUSTER_ID, PROXY_PATH).await;
    proxy.bind("ns1", "app", CLIENT_ID);
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, proxy.ca_pem()).expect("write the CA file");
    let options = ProviderOptions {
        auth: AuthOptions {
            token_proxy_url: Some(url.map_or_else(|| proxy.url(), str::to_string)),
            sni_name: sni_name.map(str::to_string),
            token_proxy_ca_file: Some(ca_file.clone()),
            ..AuthOptions::default()
        },
        ..ProviderOptions::default()
    };
    let provider = RunningProvider::start(fake.transport(), options).await;
    Setup {
        fake,
        proxy,
        provider,
        ca_file,
        _dir: dir,
    }
}

fn contents(response: &akv_csi_provider::pb::MountResponse) -> Vec<(&str, &str)> {
    response
        .files
        .iter()
        .map(|f| {
            (
                f.path.as_str(),
                std::str::from_utf8(&f.contents).unwrap_or("<binary>"),
            )
        })
        .collect()
}

/// The message names what it should and leaks no token the fakes saw.
fn assert_clean(fake: &FakeAzure, status: &tonic::Status, expected: &[&str]) {
    let message = status.message();
    for part in expected {
        assert!(
            message.contains(part),
            "{message:?} should contain {part:?}"
        );
    }
    for secret in fake.sensitive_strings() {
        assert!(!message.contains(&secret), "{message:?} leaks a secret");
    }
    assert!(!message.contains("eyJ"), "{message:?} carries a JWT");
}

#[tokio::test]
async fn computed_server_name_mounts_then_warm_mounts_make_no_token_request() {
    let s = setup(COMPUTED_NAME, None, None).await;
    let mut driver = s.provider.driver().await;
    let pod = bound_pod();
    let response = driver.mount(&pod, None, "420").await.unwrap();
    assert_eq!(contents(&response), vec![("db-password", "hunter2")]);
    assert_eq!(s.proxy.token_requests(), 1);
    assert_eq!(
        s.fake.counts().entra_tokens,
        0,
        "nothing goes to Entra ID directly"
    );

    let records = s.proxy.records();
    // The probe: a handshake without SNI (an IP address) reads the API server's certificate.
    assert!(
        records
            .iter()
            .any(|r| r.server_name.is_none() && r.status == 403),
        "{records:?}"
    );
    let token = records
        .iter()
        .find(|r| r.method == "POST")
        .expect("a token request");
    assert_eq!(token.server_name.as_deref(), Some(COMPUTED_NAME));
    assert_eq!(
        token.path,
        format!("{PROXY_PATH}/{TENANT}/oauth2/v2.0/token")
    );
    assert_eq!(
        token.host,
        s.proxy.url()["https://".len()..].split('/').next().unwrap()
    );
    assert_eq!(token.status, 200);

    // Warm: the same pod again (the same accepted token) → no token request, no new probe.
    s.fake.reset_counts();
    for _ in 0..3 {
        let response = driver.mount(&pod, None, "420").await.unwrap();
        assert_eq!(contents(&response), vec![("db-password", "hunter2")]);
    }
    assert_eq!(
        s.proxy.token_requests(),
        1,
        "warm mounts make 0 token requests"
    );
    assert_eq!(
        s.proxy
            .records()
            .iter()
            .filter(|r| r.method == "GET")
            .count(),
        1,
        "the server name is computed once"
    );
    assert_eq!(s.fake.counts().entra_tokens, 0);
}

#[tokio::test]
async fn configured_sni_name_is_used_for_tls_and_no_probe_is_made() {
    let s = setup(
        "proxy.example.ests.aks",
        Some("proxy.example.ests.aks"),
        None,
    )
    .await;
    let mut driver = s.provider.driver().await;
    let response = driver.mount(&bound_pod(), None, "420").await.unwrap();
    assert_eq!(contents(&response), vec![("db-password", "hunter2")]);
    let records = s.proxy.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        records[0].server_name.as_deref(),
        Some("proxy.example.ests.aks")
    );
}

#[tokio::test]
async fn wrong_server_name_fails_tls_verification_cleanly() {
    // The proxy answers for another name than the one configured: its default certificate does
    // not name ours, so the handshake fails and the mount names the settings to check.
    let s = setup("proxy.example.ests.aks", Some("other.ests.aks"), None).await;
    let mut driver = s.provider.driver().await;
    let status = driver.mount(&bound_pod(), None, "420").await.unwrap_err();
    assert_clean(
        &s.fake,
        &status,
        &[
            "azure_token_proxy",
            "token proxy",
            "not valid for that name",
            "--sni-name",
        ],
    );
    assert_eq!(s.proxy.token_requests(), 0);
}

#[tokio::test]
async fn unbound_service_account_and_other_namespace_are_refused() {
    let s = setup(COMPUTED_NAME, None, None).await;
    let mut driver = s.provider.driver().await;
    for pod in [
        attributes("ns2", "app", &[(BINDING, BINDING)]),
        attributes("ns1", "other", &[(BINDING, BINDING)]),
    ] {
        let status = driver.mount(&pod, None, "420").await.unwrap_err();
        assert_clean(
            &s.fake,
            &status,
            &["azure_token_proxy", "HTTP 403", "not bound"],
        );
    }
    // The bound account still works, and a refused one left nothing behind for it to share.
    driver.mount(&bound_pod(), None, "420").await.unwrap();
    assert_eq!(s.fake.counts().entra_tokens, 0);
}

#[tokio::test]
async fn two_service_accounts_with_one_client_id_never_share() {
    let s = setup(COMPUTED_NAME, None, None).await;
    s.proxy.bind("ns2", "app", CLIENT_ID);
    let mut driver = s.provider.driver().await;
    let first = bound_pod();
    let second = attributes("ns2", "app", &[(BINDING, BINDING)]);
    driver.mount(&first, None, "420").await.unwrap();
    driver.mount(&second, None, "420").await.unwrap();
    driver.mount(&first, None, "420").await.unwrap();
    driver.mount(&second, None, "420").await.unwrap();
    assert_eq!(
        s.proxy.token_requests(),
        2,
        "one exchange per service account"
    );
}

#[tokio::test]
async fn wrong_or_missing_audience_is_named() {
    let s = setup(COMPUTED_NAME, None, None).await;
    let mut driver = s.provider.driver().await;
    // A token minted for workload identity placed in identity binding's slot.
    let wrong = attributes("ns1", "app", &[(BINDING, WORKLOAD)]);
    let status = driver.mount(&wrong, None, "420").await.unwrap_err();
    assert_clean(
        &s.fake,
        &status,
        &["api://AzureADTokenExchange", "not api://AKSIdentityBinding"],
    );
    // Only workload identity's token: the driver's tokenRequests lack the audience.
    let missing = attributes("ns1", "app", &[(WORKLOAD, WORKLOAD)]);
    let status = driver.mount(&missing, None, "420").await.unwrap_err();
    assert_clean(
        &s.fake,
        &status,
        &["api://AKSIdentityBinding", "tokenRequests"],
    );
    let mut no_client = bound_pod();
    no_client["clientID"] = json!("");
    let status = driver.mount(&no_client, None, "420").await.unwrap_err();
    assert_clean(&s.fake, &status, &["clientID is required"]);
    assert_eq!(s.proxy.token_requests(), 0);
}

#[tokio::test]
async fn proxy_down_is_unreachable_with_and_without_a_configured_name() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{closed}");
    for sni in [Some("proxy.example.ests.aks"), None] {
        let s = setup(COMPUTED_NAME, sni, Some(&url)).await;
        let mut driver = s.provider.driver().await;
        let started = std::time::Instant::now();
        let status = driver.mount(&bound_pod(), None, "420").await.unwrap_err();
        assert_clean(
            &s.fake,
            &status,
            &["azure_token_proxy", "token proxy", "unreachable", &url],
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "a refused connection fails fast"
        );
    }
}

#[tokio::test]
async fn a_rotated_ca_file_is_picked_up_without_a_restart() {
    let s = setup(
        "proxy.example.ests.aks",
        Some("proxy.example.ests.aks"),
        None,
    )
    .await;
    // Another cluster's CA: verification fails.
    let stranger = FakeAzure::start_tls().await;
    std::fs::write(&s.ca_file, stranger.ca_pem().unwrap()).unwrap();
    let mut driver = s.provider.driver().await;
    let status = driver.mount(&bound_pod(), None, "420").await.unwrap_err();
    assert_clean(
        &s.fake,
        &status,
        &["--token-proxy-ca-file", "UnknownIssuer"],
    );
    // The right CA appears in the file: the next mount trusts it.
    std::fs::write(&s.ca_file, s.proxy.ca_pem()).unwrap();
    driver.mount(&bound_pod(), None, "420").await.unwrap();
    assert_eq!(s.proxy.token_requests(), 1);
}
