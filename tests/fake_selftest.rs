//! Drives the in-repo fake with the real Azure SDK through the redirecting transport, so the
//! fake's REST shapes, challenges and token formats are checked against what the official crates
//! send and parse. Managed identity is only ever built on the fake's redirecting transport.

mod support;

use std::sync::Arc;

use azure_core::{
    credentials::{Secret, TokenCredential},
    http::{ClientMethodOptions, Method, Request, StatusCode, Url},
};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId,
};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::{
    ResourceExt as _, SecretClient, SecretClientOptions, models::SecretClientGetSecretOptions,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::TryStreamExt as _;
use support::fake::{
    Counts, FakeAzure, Fault, service_account_token, service_account_tokens_attribute,
};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const SECRET: &str = "sp-secret-value";
const VAULT_URL: &str = "https://myvault.vault.azure.net/";
const ISSUER: &str = "https://oidc.prod-aks.azure.com/cluster/";
const AUDIENCE: &str = "api://AzureADTokenExchange";

fn secret_credential(fake: &FakeAzure, client_secret: &str) -> Arc<dyn TokenCredential> {
    let options = ClientSecretCredentialOptions {
        client_options: fake.transport().client_options(),
    };
    ClientSecretCredential::new(
        TENANT,
        CLIENT.to_string(),
        Secret::new(client_secret.to_string()),
        Some(options),
    )
    .expect("credential")
}

fn secret_client(fake: &FakeAzure, credential: Arc<dyn TokenCredential>) -> SecretClient {
    let options = SecretClientOptions {
        client_options: fake.transport().client_options(),
        ..Default::default()
    };
    SecretClient::new(VAULT_URL, credential, Some(options)).expect("secret client")
}

/// A service principal and `db-password` with two enabled versions and a newer disabled one.
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

async fn secret_value(
    client: &SecretClient,
    name: &str,
    version: Option<&str>,
) -> azure_core::Result<Option<String>> {
    let options = SecretClientGetSecretOptions {
        secret_version: version.map(str::to_string),
        ..Default::default()
    };
    Ok(client
        .get_secret(name, Some(options))
        .await?
        .into_model()?
        .value)
}

fn status_of<T: std::fmt::Debug>(result: azure_core::Result<T>) -> Option<StatusCode> {
    result.expect_err("the call should fail").http_status()
}

/// Current and pinned versions, one challenge and one token request for the client's lifetime.
async fn secret_flow(fake: &FakeAzure) {
    populate(fake);
    fake.grant("myvault", CLIENT);
    let client = secret_client(fake, secret_credential(fake, SECRET));

    let current = client
        .get_secret("db-password", None)
        .await
        .expect("current secret")
        .into_model()
        .expect("model");
    assert_eq!(
        current.value.as_deref(),
        Some("hunter2"),
        "newest enabled version"
    );
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

    assert_eq!(
        secret_value(&client, "db-password", Some("v1"))
            .await
            .expect("pinned"),
        Some("hunter1".into())
    );
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
    assert_eq!(
        (
            requests[0].service,
            requests[0].status,
            requests[0].authorized
        ),
        ("keyvault", 401, false)
    );
    assert_eq!(requests[0].host, "myvault.vault.azure.net");
    assert_eq!((requests[1].service, requests[1].status), ("entra", 200));
    assert_eq!(requests[1].host, "login.microsoftonline.com");
    assert_eq!(requests[1].path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!((requests[2].status, requests[2].authorized), (200, true));
    assert!(fake.sensitive_strings().iter().any(|s| s == SECRET));
}

#[tokio::test]
async fn client_secret_flow_over_tls() {
    let fake = FakeAzure::start_tls().await;
    assert!(fake.url().starts_with("https://localhost:"));
    assert!(
        fake.ca_pem()
            .is_some_and(|pem| pem.starts_with(b"-----BEGIN CERTIFICATE-----"))
    );
    secret_flow(&fake).await;
}

#[tokio::test]
async fn errors_missing_disabled_ungranted_and_bad_secret() {
    let fake = FakeAzure::start().await;
    populate(&fake);
    fake.grant("myvault", CLIENT);
    let client = secret_client(&fake, secret_credential(&fake, SECRET));
    assert_eq!(
        status_of(secret_value(&client, "nope", None).await),
        Some(StatusCode::NotFound)
    );
    assert_eq!(
        status_of(secret_value(&client, "db-password", Some("v9")).await),
        Some(StatusCode::NotFound)
    );
    assert_eq!(
        status_of(secret_value(&client, "db-password", Some("v3")).await),
        Some(StatusCode::Forbidden)
    );
    let body = |i: usize| fake.requests()[i].clone();
    assert_eq!(body(2).status, 404);

    // Another vault the service principal was not granted.
    let other = SecretClient::new(
        "https://othervault.vault.azure.net/",
        secret_credential(&fake, SECRET),
        Some(SecretClientOptions {
            client_options: fake.transport().client_options(),
            ..Default::default()
        }),
    )
    .expect("client");
    assert_eq!(
        status_of(other.get_secret("db-password", None).await),
        Some(StatusCode::Forbidden)
    );

    // A wrong client secret: Entra answers 401 AADSTS7000215 and never echoes the secret.
    let wrong = secret_client(&fake, secret_credential(&fake, "wrong-secret"));
    let error = secret_value(&wrong, "db-password", None)
        .await
        .expect_err("bad secret");
    let text = format!("{error:?} {error}");
    assert!(text.contains("7000215"), "{text}");
    assert!(!text.contains("wrong-secret"), "{text}");
    let entra = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.service == "entra")
        .expect("entra request");
    assert_eq!(entra.status, 401);
    assert!(fake.sensitive_strings().iter().any(|s| s == "wrong-secret"));
}

#[tokio::test]
async fn version_listing_pages_through_next_link() {
    let fake = FakeAzure::start().await;
    populate(&fake);
    fake.grant("myvault", CLIENT);
    fake.set_page_size(2);
    let client = secret_client(&fake, secret_credential(&fake, SECRET));
    let mut pager = client
        .list_secret_properties_versions("db-password", None)
        .expect("pager");
    let mut versions = Vec::new();
    while let Some(item) = pager.try_next().await.expect("page") {
        let enabled = item.attributes.as_ref().and_then(|a| a.enabled);
        versions.push((
            item.resource_id().expect("id").version.expect("version"),
            enabled,
        ));
    }
    let expected = [("v1", Some(true)), ("v2", Some(true)), ("v3", Some(false))];
    assert_eq!(versions, expected.map(|(v, e)| (v.to_string(), e)));
    let pages: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.service == "keyvault" && r.status == 200)
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].path.contains("skiptoken=2"), "{}", pages[1].path);
    assert_eq!(pages[1].host, "myvault.vault.azure.net");
}

#[tokio::test]
async fn keys_and_certificates() {
    let fake = FakeAzure::start().await;
    populate(&fake);
    fake.grant("myvault", CLIENT);
    let modulus = vec![0xC5u8; 256];
    let jwk = serde_json::json!({ "kty": "RSA", "key_ops": ["verify"], "n": URL_SAFE_NO_PAD.encode(&modulus), "e": "AQAB" });
    fake.add_key("myvault", "signing", "k1", jwk, 1_700_000_000, true);
    let cert = rcgen::generate_simple_self_signed(vec!["example.com".to_string()]).expect("cert");
    let der = cert.cert.der().to_vec();
    fake.add_certificate("myvault", "tls", "c1", &der, 1_700_000_000, true);

    let credential = secret_credential(&fake, SECRET);
    let keys = KeyClient::new(
        VAULT_URL,
        credential.clone(),
        Some(KeyClientOptions {
            client_options: fake.transport().client_options(),
            ..Default::default()
        }),
    )
    .expect("key client");
    let key = keys
        .get_key("signing", None)
        .await
        .expect("key")
        .into_model()
        .expect("model");
    let jwk = key.key.expect("jwk");
    assert_eq!(jwk.n.as_deref(), Some(modulus.as_slice()));
    assert_eq!(jwk.e.as_deref(), Some([1u8, 0, 1].as_slice()));
    assert_eq!(
        jwk.kid.as_deref(),
        Some("https://myvault.vault.azure.net/keys/signing/k1")
    );

    let certificates = CertificateClient::new(
        VAULT_URL,
        credential,
        Some(CertificateClientOptions {
            client_options: fake.transport().client_options(),
            ..Default::default()
        }),
    )
    .expect("certificate client");
    let certificate = certificates
        .get_certificate("tls", None)
        .await
        .expect("certificate")
        .into_model()
        .expect("model");
    assert_eq!(certificate.cer.as_deref(), Some(der.as_slice()));
    assert_eq!(
        certificate.sid.as_deref(),
        Some("https://myvault.vault.azure.net/secrets/tls/c1")
    );
    assert_eq!(certificate.x509_thumbprint.map(|t| t.len()), Some(20));
    // One token serves all three clients' scope; each client does its own challenge.
    assert_eq!(fake.counts().entra_tokens, 1);
    assert_eq!(fake.counts().challenges, 2);
}

/// Hands the credential a fixed service-account token.
struct FixedAssertion(String);

impl std::fmt::Debug for FixedAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedAssertion(<redacted>)")
    }
}

#[async_trait::async_trait]
impl ClientAssertion for FixedAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        Ok(self.0.clone())
    }
}

fn assertion_client(fake: &FakeAzure, token: String) -> SecretClient {
    let options = ClientAssertionCredentialOptions {
        client_options: fake.transport().client_options(),
    };
    let credential = ClientAssertionCredential::new(
        TENANT.to_string(),
        CLIENT.to_string(),
        FixedAssertion(token),
        Some(options),
    )
    .expect("assertion credential");
    secret_client(fake, credential)
}

#[tokio::test]
async fn workload_identity_assertion() {
    let fake = FakeAzure::start().await;
    populate(&fake);
    fake.grant("myvault", CLIENT);
    fake.add_federated_credential(
        TENANT,
        CLIENT,
        ISSUER,
        "system:serviceaccount:default:app",
        AUDIENCE,
    );
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;

    let token = service_account_token(ISSUER, "default", "app", AUDIENCE, exp);
    let attribute: serde_json::Value =
        serde_json::from_str(&service_account_tokens_attribute(&[(AUDIENCE, &token)]))
            .expect("attribute JSON");
    assert_eq!(attribute[AUDIENCE]["token"], token.as_str());
    assert!(
        attribute[AUDIENCE]["expirationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let client = assertion_client(&fake, token.clone());
    assert_eq!(
        secret_value(&client, "db-password", None)
            .await
            .expect("secret"),
        Some("hunter2".into())
    );
    assert!(fake.sensitive_strings().contains(&token));

    let other_sa = service_account_token(ISSUER, "default", "intruder", AUDIENCE, exp);
    let error = secret_value(&assertion_client(&fake, other_sa), "db-password", None)
        .await
        .expect_err("no match");
    assert!(format!("{error:?}").contains("70021"), "{error:?}");

    let expired = service_account_token(ISSUER, "default", "app", AUDIENCE, exp - 7200);
    let error = secret_value(&assertion_client(&fake, expired), "db-password", None)
        .await
        .expect_err("expired");
    assert!(format!("{error:?}").contains("700024"), "{error:?}");
}

/// An RS256 assertion over `claims` signed with `key`, naming `cert` by SHA-1 thumbprint.
fn signed_assertion(
    key: &aws_lc_rs::signature::RsaKeyPair,
    cert: &[u8],
    claims: &serde_json::Value,
) -> String {
    use sha1::Digest as _;
    let x5t = URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(cert));
    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "x5t": x5t });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .expect("sign");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A fresh RSA key and a self-signed certificate (DER) for it.
fn rsa_certificate() -> (aws_lc_rs::signature::RsaKeyPair, Vec<u8>) {
    use aws_lc_rs::encoding::AsDer;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("key");
    let pkcs8 = key.as_der().expect("pkcs8").as_ref().to_vec();
    let signer = rcgen::KeyPair::try_from(pkcs8.as_slice()).expect("rcgen key");
    let cert = rcgen::CertificateParams::new(vec!["client".to_string()])
        .expect("params")
        .self_signed(&signer)
        .expect("certificate");
    (key, cert.der().to_vec())
}

#[tokio::test]
async fn certificate_assertions_are_verified() {
    let fake = FakeAzure::start().await;
    populate(&fake);
    fake.grant("myvault", CLIENT);
    let (key, cert) = rsa_certificate();
    let (other_key, other_cert) = rsa_certificate();
    fake.add_client_certificate(TENANT, CLIENT, &cert);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let aud = format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
    let claims = |aud: &str, iss: &str, exp: i64| serde_json::json!({ "aud": aud, "iss": iss, "sub": CLIENT, "jti": "j", "nbf": now, "exp": exp });
    let good = signed_assertion(&key, &cert, &claims(&aud, CLIENT, now + 600));
    let client = assertion_client(&fake, good);
    assert_eq!(
        secret_value(&client, "db-password", None)
            .await
            .expect("secret"),
        Some("hunter2".into())
    );
    let cases = [
        // Another key claiming the registered certificate's thumbprint.
        (
            signed_assertion(&other_key, &cert, &claims(&aud, CLIENT, now + 600)),
            "700027",
        ),
        // A certificate that is not registered.
        (
            signed_assertion(&other_key, &other_cert, &claims(&aud, CLIENT, now + 600)),
            "700027",
        ),
        (
            signed_assertion(&key, &cert, &claims(&aud, CLIENT, now - 1)),
            "700024",
        ),
        (
            signed_assertion(
                &key,
                &cert,
                &claims("https://elsewhere/token", CLIENT, now + 600),
            ),
            "700023",
        ),
        (
            signed_assertion(&key, &cert, &claims(&aud, "someone-else", now + 600)),
            "700021",
        ),
    ];
    for (assertion, code) in cases {
        let error = secret_value(&assertion_client(&fake, assertion), "db-password", None)
            .await
            .expect_err(code);
        assert!(format!("{error:?}").contains(code), "{code}: {error:?}");
    }
}

fn managed_identity_client(fake: &FakeAzure, client_id: Option<&str>) -> SecretClient {
    // Only ever on the fake's redirecting transport: nothing may reach 169.254.169.254.
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(|id| UserAssignedId::ClientId(id.to_string())),
        client_options: fake.transport().client_options(),
    };
    secret_client(
        fake,
        ManagedIdentityCredential::new(Some(options)).expect("managed identity credential"),
    )
}

#[tokio::test]
async fn managed_identities_through_imds() {
    let fake = FakeAzure::start().await;
    populate(&fake);
    fake.add_managed_identity(None);
    fake.add_managed_identity(Some("uami-client"));
    fake.grant("myvault", "system");
    fake.grant("myvault", "uami-client");

    let system = managed_identity_client(&fake, None);
    assert_eq!(
        secret_value(&system, "db-password", None)
            .await
            .expect("system MI"),
        Some("hunter2".into())
    );
    let user = managed_identity_client(&fake, Some("uami-client"));
    assert_eq!(
        secret_value(&user, "db-password", None)
            .await
            .expect("user MI"),
        Some("hunter2".into())
    );
    assert_eq!(fake.counts().imds, 2);
    let imds: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.service == "imds")
        .collect();
    assert_eq!(imds[0].host, "169.254.169.254");
    assert!(
        imds[1].path.contains("client_id=uami-client"),
        "{}",
        imds[1].path
    );

    let unknown = managed_identity_client(&fake, Some("not-on-this-node"));
    let error = secret_value(&unknown, "db-password", None)
        .await
        .expect_err("unknown identity");
    assert!(
        format!("{error:?}").contains("has not been assigned"),
        "{error:?}"
    );
    assert_eq!(
        fake.requests().last().map(|r| (r.service, r.status)),
        Some(("imds", 400))
    );
}

#[tokio::test]
async fn imds_rejects_requests_without_metadata_header() {
    let fake = FakeAzure::start().await;
    fake.add_managed_identity(None);
    let url = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2019-08-01&resource=https://vault.azure.net";
    let (status, body) = raw_get(&fake, url, &[]).await;
    assert_eq!(status, StatusCode::BadRequest, "{body}");
    let (status, body) = raw_get(&fake, url, &[("metadata", "true")]).await;
    assert_eq!(status, StatusCode::Ok, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["resource"], "https://vault.azure.net");
    assert_eq!(body["token_type"], "Bearer");
}

/// A GET through the redirecting transport's raw client (never any other client).
async fn raw_get(
    fake: &FakeAzure,
    url: &str,
    headers: &[(&'static str, &str)],
) -> (StatusCode, String) {
    let mut request = Request::new(Url::parse(url).expect("url"), Method::Get);
    for (name, value) in headers {
        request.insert_header(*name, value.to_string());
    }
    let response = fake
        .transport()
        .http_client()
        .execute_request(&request)
        .await
        .expect("the fake answers");
    let status = response.status();
    (
        status,
        response.into_body().collect_string().await.expect("body"),
    )
}

async fn nmi_get(fake: &FakeAzure, headers: &[(&'static str, &str)]) -> (StatusCode, String) {
    raw_get(
        fake,
        "http://127.0.0.1:2579/host/token/?resource=https://vault.azure.net",
        headers,
    )
    .await
}

#[tokio::test]
async fn pod_identity_through_nmi() {
    let fake = FakeAzure::start().await;
    fake.add_pod_identity("default", "web-0", "pod-client");
    let (status, body) = nmi_get(&fake, &[("podns", "default"), ("podname", "web-0")]).await;
    assert_eq!(status, StatusCode::Ok, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["clientid"], "pod-client");
    assert_eq!(body["token"]["resource"], "https://vault.azure.net");
    assert!(
        body["token"]["expires_on"]
            .as_str()
            .is_some_and(|e| e.parse::<i64>().is_ok())
    );
    let token = body["token"]["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert!(fake.sensitive_strings().contains(&token));

    assert_eq!(
        nmi_get(&fake, &[("podns", "default"), ("podname", "web-1")])
            .await
            .0,
        StatusCode::Forbidden
    );
    assert_eq!(
        nmi_get(&fake, &[("podns", "default")]).await.0,
        StatusCode::BadRequest
    );
    assert_eq!(fake.counts().nmi, 3);
    assert_eq!(fake.requests()[0].host, "127.0.0.1");
}

#[tokio::test]
async fn throttle_and_reset_faults() {
    let fake = FakeAzure::start().await;
    populate(&fake);
    fake.grant("myvault", CLIENT);
    let client = secret_client(&fake, secret_credential(&fake, SECRET));
    assert_eq!(
        secret_value(&client, "db-password", None)
            .await
            .expect("warm up"),
        Some("hunter2".into())
    );

    fake.inject(Fault::KeyVaultThrottle {
        count: 1,
        retry_after_secs: 7,
    });
    let error = secret_value(&client, "db-password", None)
        .await
        .expect_err("throttled");
    assert_eq!(error.http_status(), Some(StatusCode::TooManyRequests));
    assert_eq!(
        secret_value(&client, "db-password", None)
            .await
            .expect("fault used up"),
        Some("hunter2".into())
    );

    fake.inject(Fault::KeyVaultReset { count: 1 });
    let error = secret_value(&client, "db-password", None)
        .await
        .expect_err("reset");
    assert_eq!(
        error.http_status(),
        None,
        "a connection error, not an HTTP answer: {error:?}"
    );
    assert_eq!(fake.requests().last().map(|r| r.status), Some(0));
    assert_eq!(
        secret_value(&client, "db-password", None)
            .await
            .expect("after reset"),
        Some("hunter2".into())
    );
}

#[tokio::test]
async fn status_faults_for_key_vault_and_entra() {
    let fake = FakeAzure::start().await;
    populate(&fake);
    fake.grant("myvault", CLIENT);
    fake.inject(Fault::EntraStatus {
        count: 1,
        status: 503,
        aadsts: "AADSTS90033",
    });
    let client = secret_client(&fake, secret_credential(&fake, SECRET));
    let error = secret_value(&client, "db-password", None)
        .await
        .expect_err("Entra down");
    assert!(format!("{error:?}").contains("90033"), "{error:?}");
    let entra = fake
        .requests()
        .into_iter()
        .find(|r| r.service == "entra")
        .expect("entra request");
    assert_eq!(entra.status, 503);

    fake.inject(Fault::KeyVaultStatus {
        count: 2,
        status: 500,
    });
    for _ in 0..2 {
        let error = secret_value(&client, "db-password", None)
            .await
            .expect_err("Key Vault down");
        assert_eq!(error.http_status(), Some(StatusCode::InternalServerError));
    }
    assert_eq!(
        secret_value(&client, "db-password", None)
            .await
            .expect("recovered"),
        Some("hunter2".into())
    );
}

#[tokio::test]
async fn revoked_and_expired_tokens_are_challenged() {
    let fake = FakeAzure::start().await;
    populate(&fake);
    fake.grant("myvault", CLIENT);
    let client = secret_client(&fake, secret_credential(&fake, SECRET));
    secret_value(&client, "db-password", None)
        .await
        .expect("first");
    fake.revoke_tokens();
    let error = secret_value(&client, "db-password", None)
        .await
        .expect_err("revoked token");
    assert_eq!(error.http_status(), Some(StatusCode::Unauthorized));
    // A new credential gets a new, valid token.
    let fresh = secret_client(&fake, secret_credential(&fake, SECRET));
    secret_value(&fresh, "db-password", None)
        .await
        .expect("new token");

    // An expired token is refused with the challenge (raw requests: the SDK refreshes early).
    fake.set_token_lifetime(std::time::Duration::from_secs(1));
    fake.add_pod_identity("default", "web-0", "pod-client");
    fake.grant("myvault", "pod-client");
    let (_, body) = nmi_get(&fake, &[("podns", "default"), ("podname", "web-0")]).await;
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    let bearer = format!(
        "Bearer {}",
        body["token"]["access_token"].as_str().expect("token")
    );
    let url = "https://myvault.vault.azure.net/secrets/db-password/?api-version=2025-07-01";
    assert_eq!(
        raw_get(&fake, url, &[("authorization", &bearer)]).await.0,
        StatusCode::Ok
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = raw_get(&fake, url, &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::Unauthorized, "{body}");
    assert!(body.contains("\"Unauthorized\""), "{body}");
}

#[tokio::test]
async fn challenge_names_the_vault_resource() {
    let fake = FakeAzure::start().await;
    let url = "https://myvault.vault.azure.net/secrets/x/?api-version=2025-07-01";
    let mut request = Request::new(Url::parse(url).expect("url"), Method::Get);
    request.insert_header("accept", "application/json");
    let response = fake
        .transport()
        .http_client()
        .execute_request(&request)
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::Unauthorized);
    let challenge = response
        .headers()
        .get_optional_str(&azure_core::http::headers::WWW_AUTHENTICATE);
    let expected = format!(
        r#"Bearer authorization="https://login.microsoftonline.com/{}", resource="https://vault.azure.net""#,
        support::fake::CHALLENGE_TENANT_ID
    );
    assert_eq!(challenge, Some(expected.as_str()));
    assert_eq!(fake.counts().challenges, 1);
}

#[tokio::test]
async fn latency_delays_answers() {
    let fake = FakeAzure::start().await;
    populate(&fake);
    fake.grant("myvault", CLIENT);
    fake.set_latency(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_millis(200),
    );
    let client = secret_client(&fake, secret_credential(&fake, SECRET));
    let started = std::time::Instant::now();
    secret_value(&client, "db-password", None)
        .await
        .expect("secret");
    // Challenge, token, authorized request.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    fake.reset_counts();
    assert_eq!(fake.counts(), Counts::default());
}
