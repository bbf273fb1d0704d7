//! A fake AKS identity-binding token proxy (HTTPS on 127.0.0.1), issuing tokens the Key Vault
//! fake of the same [`super::FakeAzure`] accepts.
//!
//! It presents two certificates, both signed by its own throwaway CA, chosen by the TLS server
//! name the client sends:
//! - for the token proxy's server name (`--sni-name`, or the name computed from the cluster id):
//!   a certificate for that name only;
//! - otherwise (no SNI, as for an IP address, or any other name): an API-server-like certificate
//!   for `127.0.0.1`, `localhost` and `hcp-kubernetes.<cluster id>.svc.cluster.local`, from which
//!   the provider computes the server name. Any request made this way is answered 403, as the
//!   API server answers anonymous requests.
//!
//! A token request (`POST <path>/<tenant>/oauth2/v2.0/token`) is checked in this order: the
//! server name (421 when wrong), the `Host` header (the proxy URL's `127.0.0.1:<port>`, else 400),
//! the path prefix (404), the form (400 `invalid_request`), the assertion's audience
//! (`api://AKSIdentityBinding`, else 401 `invalid_client`) and expiry (401), then the binding of
//! the assertion's `sub` to `client_id` (403 `unauthorized_client` when not bound).

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::http::{Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinSet};

use super::{Shared, identity::jwt_claims, unix_now};

/// The audience the proxy requires of assertions.
pub const IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

/// A request the proxy received.
#[derive(Clone, Debug)]
pub struct ProxyRecord {
    /// The TLS server name the client sent (`None`: no SNI).
    pub server_name: Option<String>,
    pub method: String,
    pub path: String,
    /// The `Host` header.
    pub host: String,
    pub status: u16,
}

#[derive(Default)]
struct ProxyState {
    /// (`system:serviceaccount:<ns>:<name>`, client id) pairs bound.
    bindings: HashSet<(String, String)>,
    records: Vec<ProxyRecord>,
    /// Token requests (with the right server name) received.
    token_requests: u64,
    /// TLS handshakes, by whether they named the proxy.
    handshakes: u64,
}

struct ProxyShared {
    azure: Arc<Shared>,
    server_name: String,
    authority: String,
    path: String,
    state: Mutex<ProxyState>,
}

impl ProxyShared {
    fn lock(&self) -> MutexGuard<'_, ProxyState> {
        akv_csi_provider::sync::lock(&self.state)
    }
}

/// A running fake token proxy; dropping it stops the server.
pub struct FakeTokenProxy {
    shared: Arc<ProxyShared>,
    url: String,
    ca_pem: Vec<u8>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTokenProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A certificate for `sans`, signed by `ca`, as rustls serves it.
fn certified(ca: &CertifiedIssuer<'_, KeyPair>, sans: Vec<String>) -> Arc<CertifiedKey> {
    let mut params = CertificateParams::new(sans.clone()).expect("fake token proxy: SANs");
    params
        .distinguished_name
        .push(DnType::CommonName, sans[0].clone());
    let key = KeyPair::generate().expect("fake token proxy: key generation");
    let cert = params
        .signed_by(&key, ca)
        .expect("fake token proxy: signing");
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider
        .key_provider
        .load_private_key(der)
        .expect("fake token proxy: key loads");
    Arc::new(CertifiedKey::new(
        vec![cert.der().clone(), ca.der().clone()],
        signing,
    ))
}

/// Picks the certificate by the client's server name.
#[derive(Debug)]
struct BySni {
    server_name: String,
    proxy: Arc<CertifiedKey>,
    api_server: Arc<CertifiedKey>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match hello.server_name() {
            Some(name) if name.eq_ignore_ascii_case(&self.server_name) => self.proxy.clone(),
            _ => self.api_server.clone(),
        })
    }
}

impl FakeTokenProxy {
    /// A proxy answering for `server_name` at `https://127.0.0.1:<port><path>`, whose
    /// API-server certificate names `cluster_id`; tokens are issued by `azure`.
    pub async fn start(
        azure: &super::FakeAzure,
        server_name: &str,
        cluster_id: &str,
        path: &str,
    ) -> FakeTokenProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake token proxy: bind 127.0.0.1:0");
        let port = listener.local_addr().expect("bound").port();

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "fake cluster CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("fake CA key");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("fake CA");
        let resolver = BySni {
            server_name: server_name.to_string(),
            proxy: certified(&ca, vec![server_name.to_string()]),
            api_server: certified(
                &ca,
                vec![
                    "127.0.0.1".into(),
                    "localhost".into(),
                    "kubernetes.default.svc.cluster.local".into(),
                    format!("hcp-kubernetes.{cluster_id}.svc.cluster.local"),
                ],
            ),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("fake token proxy: protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let path = path.trim_end_matches('/').to_string();
        let shared = Arc::new(ProxyShared {
            azure: azure.shared.clone(),
            server_name: server_name.to_string(),
            authority: format!("127.0.0.1:{port}"),
            path: path.clone(),
            state: Mutex::new(ProxyState::default()),
        });
        let server = tokio::spawn(serve(listener, acceptor, shared.clone()));
        FakeTokenProxy {
            shared,
            url: format!("https://127.0.0.1:{port}{path}"),
            ca_pem: ca.pem().into_bytes(),
            server,
        }
    }

    /// `https://127.0.0.1:<port><path>`, the `--token-proxy-url`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The cluster CA (the service-account `ca.crt`).
    pub fn ca_pem(&self) -> Vec<u8> {
        self.ca_pem.clone()
    }

    /// Binds a service account (`system:serviceaccount:<namespace>:<name>`) to a client id.
    pub fn bind(&self, namespace: &str, service_account: &str, client_id: &str) {
        self.shared.lock().bindings.insert((
            format!("system:serviceaccount:{namespace}:{service_account}"),
            client_id.to_string(),
        ));
    }

    /// Token requests received with the right server name.
    pub fn token_requests(&self) -> u64 {
        self.shared.lock().token_requests
    }

    /// TLS handshakes completed.
    pub fn handshakes(&self) -> u64 {
        self.shared.lock().handshakes
    }

    pub fn records(&self) -> Vec<ProxyRecord> {
        self.shared.lock().records.clone()
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<ProxyShared>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                connections.spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else { return };
                    let server_name = stream.get_ref().1.server_name().map(str::to_string);
                    shared.lock().handshakes += 1;
                    let service = hyper::service::service_fn(move |request| {
                        let (shared, server_name) = (shared.clone(), server_name.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(handle(&shared, server_name, request).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn reply(status: StatusCode, body: Value) -> Response<axum::body::Body> {
    let mut response = Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<axum::body::Body> {
    reply(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

async fn handle(
    shared: &ProxyShared,
    server_name: Option<String>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Response<axum::body::Body> {
    let (parts, body) = request.into_parts();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(axum::body::Body::new(body), 1 << 20)
        .await
        .unwrap_or_default();
    let response = decide(shared, server_name.as_deref(), &parts, &host, &body);
    shared.lock().records.push(ProxyRecord {
        server_name,
        method: parts.method.to_string(),
        path,
        host,
        status: response.status().as_u16(),
    });
    response
}

fn decide(
    shared: &ProxyShared,
    server_name: Option<&str>,
    parts: &axum::http::request::Parts,
    host: &str,
    body: &[u8],
) -> Response<axum::body::Body> {
    if server_name.is_none_or(|n| !n.eq_ignore_ascii_case(&shared.server_name)) {
        if parts.method == axum::http::Method::POST {
            return oauth_error(
                StatusCode::MISDIRECTED_REQUEST,
                "invalid_request",
                "this connection did not name the token proxy's TLS server name",
            );
        }
        return reply(
            StatusCode::FORBIDDEN,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403}),
        );
    }
    shared.lock().token_requests += 1;
    if host != shared.authority {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("Host header {host:?} is not {:?}", shared.authority),
        );
    }
    let Some(tail) = parts
        .uri
        .path()
        .strip_prefix(&shared.path)
        .and_then(|t| t.strip_suffix("/oauth2/v2.0/token"))
        .and_then(|t| t.strip_prefix('/'))
        .filter(|tenant| !tenant.is_empty() && !tenant.contains('/'))
    else {
        return oauth_error(StatusCode::NOT_FOUND, "invalid_request", "no such endpoint");
    };
    let _tenant = tail;
    if parts.method != axum::http::Method::POST {
        return oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "POST only",
        );
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (Some(client_id), Some(assertion), Some(scope)) = (
        field("client_id"),
        field("client_assertion"),
        field("scope"),
    ) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id, client_assertion and scope are required",
        );
    };
    shared.azure.lock().remember_sensitive(assertion);
    if field("grant_type") != Some("client_credentials")
        || field("client_assertion_type")
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a jwt-bearer client_credentials grant is required",
        );
    }
    let Some(claims) = jwt_claims(assertion) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the assertion is not a JWT",
        );
    };
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !audiences.contains(&IDENTITY_BINDING_AUDIENCE) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the service account token's audience is not api://AKSIdentityBinding",
        );
    }
    if claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp <= unix_now())
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the service account token has expired",
        );
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !shared
        .lock()
        .bindings
        .contains(&(subject.to_string(), client_id.to_string()))
    {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            &format!("service account {subject} is not bound to managed identity {client_id}"),
        );
    }
    let resource = scope.split_whitespace().next().unwrap_or(scope);
    let (token, lifetime) = shared.azure.lock().issue_token(client_id, resource);
    let secs = lifetime.as_secs();
    reply(
        StatusCode::OK,
        json!({ "token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": token }),
    )
}
