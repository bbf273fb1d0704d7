//! TLS for `FakeAzure::start_tls`: a throwaway CA and a `localhost`/`127.0.0.1` server certificate
//! minted with rcgen, served with rustls (aws-lc-rs provider, chosen explicitly so no process-wide
//! default provider is needed).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// What a TLS fake needs: the acceptor and the CA clients must trust.
pub(super) struct TlsMaterial {
    pub acceptor: TlsAcceptor,
    pub ca_pem: Vec<u8>,
}

/// Mints the CA and server certificate. Panics only on a broken crypto backend (test support).
pub(super) fn mint() -> TlsMaterial {
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).expect("fake CA: empty SAN list is valid");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "akv-csi-provider fake Azure CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("fake CA: key generation");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("fake CA: self-signing");

    let mut server_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("fake server certificate: SANs are valid");
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_key = KeyPair::generate().expect("fake server certificate: key generation");
    let server_cert = server_params
        .signed_by(&server_key, &ca)
        .expect("fake server certificate: signing");

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("fake TLS: default protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .expect("fake TLS: server certificate matches its key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsMaterial {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_pem: ca.pem().into_bytes(),
    }
}
