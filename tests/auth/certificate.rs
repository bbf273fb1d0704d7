//! Service principal with a client certificate (PEM and PFX `clientcert`): fresh, well-formed
//! assertions, clean failures.

use crate::common::*;

/// A fresh RSA key (PKCS#8 DER) and a self-signed certificate (DER) for it.
pub(crate) fn rsa_certificate(name: &str) -> (Vec<u8>, Vec<u8>) {
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

pub(crate) fn pem_block(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

/// PEM `clientcert`: the certificate first, then the PKCS#8 key.
pub(crate) fn cert_pem(pkcs8: &[u8], cert: &[u8]) -> String {
    pem_block("CERTIFICATE", cert) + &pem_block("PRIVATE KEY", pkcs8)
}

/// The same key as PKCS#1 (`RSA PRIVATE KEY`), before its certificate.
pub(crate) fn cert_pem_pkcs1(pkcs8: &[u8], cert: &[u8]) -> String {
    use pkcs8::der::Decode;
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8).unwrap();
    pem_block("RSA PRIVATE KEY", info.private_key.as_bytes()) + &pem_block("CERTIFICATE", cert)
}

/// Base64 PFX with the empty password, as Key Vault exports it.
pub(crate) fn cert_pfx(pkcs8: &[u8], cert: &[u8]) -> String {
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

pub(crate) fn spc(client_id: &str, clientcert: &str) -> MountRequest {
    request(IdentityRequest::ServicePrincipalCertificate {
        client_id: client_id.into(),
        certificate: Sensitive::new(clientcert),
    })
}

/// A certificate-credential error: names the mode and what it should, one line, no secret the
/// fake saw, and no part of `clientcert`.
pub(crate) fn assert_clean_cert(
    fake: &FakeAzure,
    message: &str,
    clientcert: &str,
    expected: &[&str],
) {
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
    use crate::support::provider::RunningProvider;
    use akv_csi_provider::provider::ProviderOptions;
    use serde_json::json;

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
