//! The one HTTP seam.
//!
//! Every credential, every Key Vault client and every hand-written identity call (NMI) is built
//! from a [`Transport`]. In production it is a pooled `reqwest` client trusting the system store
//! (which honours `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus an optional extra CA bundle. Tests build it
//! with [`Transport::redirect_all`], which keeps production URLs (`https://myvault.vault.azure.net/`,
//! `https://login.microsoftonline.com/`, `http://169.254.169.254/`) in the request, so the SDK's
//! https and challenge-resource checks stay on, and rewrites only the connection target to a local
//! fake. Nothing built through a redirecting transport can reach a real Azure host or IMDS.
//!
//! Identity binding needs two more kinds of client, also built here ([`Transport::server_name_client`],
//! [`Transport::certificate_probe`]): one whose TCP connection goes to one host while TLS names (SNI
//! and certificate verification) another, with its own trust roots, and one that reads the
//! certificate a server presents. A transport built for tests or tools ([`Transport::redirect_all`],
//! [`Transport::from_client`]) builds them for loopback hosts only.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use azure_core::http::headers::HeaderName;
use azure_core::http::{AsyncRawResponse, ClientOptions, HttpClient, Request, RetryOptions, Url};

/// Header carrying the host the request was addressed to, set by the redirecting transport so a
/// fake can tell Key Vault, Entra ID, IMDS and NMI apart.
pub const ORIGINAL_HOST_HEADER: &str = "x-original-host";

/// Connection and request limits of the production client.
#[derive(Clone, Debug)]
pub struct TransportOptions {
    /// Extra PEM CA certificates trusted in addition to the system store.
    pub extra_ca_pem: Option<Vec<u8>>,
    pub connect_timeout: Duration,
    /// Upper bound for one HTTP exchange (the retry loop keeps its own deadline).
    pub request_timeout: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            extra_ca_pem: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Error building a transport (bad CA bundle, TLS backend failure).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP transport: {0}")]
pub struct TransportError(String);

/// A cloneable handle on the HTTP client every Azure call goes through.
#[derive(Clone, Debug)]
pub struct Transport {
    client: Arc<dyn HttpClient>,
    scope: Scope,
}

/// Where the clients a transport builds may connect.
#[derive(Clone, Debug)]
enum Scope {
    /// Production: any host, with these limits (and this extra CA for the system store).
    Any(TransportOptions),
    /// Tests and tools: loopback hosts only, so nothing they build leaves the machine.
    LoopbackOnly,
}

/// Trust roots of a [`Transport::server_name_client`] or [`Transport::certificate_probe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// The system store (plus `--extra-ca-file`), as the main client.
    System,
    /// Only these PEM CA certificates.
    Only(Vec<u8>),
}

impl Transport {
    /// The production client: system trust store plus `options.extra_ca_pem`.
    pub fn production(options: &TransportOptions) -> Result<Self, TransportError> {
        let client = reqwest_client(options)?;
        Ok(Self {
            client: Arc::new(client),
            scope: Scope::Any(options.clone()),
        })
    }

    /// Sends every request to `target` (scheme, host and port replaced; path and query kept),
    /// adding [`ORIGINAL_HOST_HEADER`]. For tests and the offline tools only.
    pub fn redirect_all(
        target: Url,
        extra_ca_pem: Option<Vec<u8>>,
    ) -> Result<Self, TransportError> {
        let inner = reqwest_client(&TransportOptions {
            extra_ca_pem,
            ..TransportOptions::default()
        })?;
        Ok(Self {
            client: Arc::new(RedirectAll { target, inner }),
            scope: Scope::LoopbackOnly,
        })
    }

    /// Wraps any HTTP client (used by tests that count or fault requests).
    pub fn from_client(client: Arc<dyn HttpClient>) -> Self {
        Self {
            client,
            scope: Scope::LoopbackOnly,
        }
    }

    /// A client whose TCP connections go to `connect`'s host and port (`https` only) while TLS
    /// sends `server_name` as SNI and verifies the server's certificate for that name against
    /// `roots`; the `Host` header carries `connect`'s host (and port when not 443). Requests given
    /// to it must be addressed to `connect`'s host and port; their path and query are kept.
    /// HTTP/1.1 only, so the `Host` header is what the server sees.
    pub fn server_name_client(
        &self,
        connect: &Url,
        server_name: &str,
        roots: &Roots,
    ) -> Result<ServerNameClient, TransportError> {
        let target = self.target(connect)?;
        if server_name.is_empty() || server_name.parse::<std::net::IpAddr>().is_ok() {
            return Err(TransportError(format!(
                "TLS server name {server_name:?} is not a DNS name"
            )));
        }
        let resolver = FixedTarget {
            host: target.host.clone(),
            port: target.port,
        };
        let client = self
            .builder(roots)?
            .http1_only()
            .dns_resolver(Arc::new(resolver))
            .build()
            .map_err(|e| TransportError(e.to_string()))?;
        Ok(ServerNameClient {
            connect: target,
            server_name: server_name.to_ascii_lowercase(),
            inner: client,
        })
    }

    /// A client that reads the leaf certificate a server presents (verified against `roots` for
    /// the URL's host), for identity binding's cluster id.
    pub fn certificate_probe(&self, roots: &Roots) -> Result<CertificateProbe, TransportError> {
        let client = self
            .builder(roots)?
            .tls_info(true)
            .http1_only()
            .build()
            .map_err(|e| TransportError(e.to_string()))?;
        Ok(CertificateProbe {
            scope: self.scope.clone(),
            inner: client,
        })
    }

    fn target(&self, url: &Url) -> Result<Target, TransportError> {
        target_of(&self.scope, url)
    }

    fn builder(&self, roots: &Roots) -> Result<reqwest::ClientBuilder, TransportError> {
        let defaults = TransportOptions::default();
        let options = match &self.scope {
            Scope::Any(options) => options,
            Scope::LoopbackOnly => &defaults,
        };
        let builder = base_builder(options);
        Ok(match roots {
            Roots::System => match &options.extra_ca_pem {
                Some(pem) => builder.tls_certs_merge(parse_certs(pem, "extra CA bundle")?),
                None => builder,
            },
            Roots::Only(pem) => builder.tls_certs_only(parse_certs(pem, "CA bundle")?),
        })
    }

    /// The raw client, for calls we make ourselves (pod identity / NMI).
    pub fn http_client(&self) -> Arc<dyn HttpClient> {
        self.client.clone()
    }

    /// SDK client options using this transport and no SDK retries: retries, back-off and
    /// deadlines are ours (the SDK default retries for about 80 s, beyond kubelet's budget).
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            transport: Some(azure_core::http::Transport::new(self.client.clone())),
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        }
    }
}

fn base_builder(options: &TransportOptions) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<reqwest::Certificate>, TransportError> {
    let certs = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|e| TransportError(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(TransportError(format!("{what} holds no certificate")));
    }
    Ok(certs)
}

fn reqwest_client(options: &TransportOptions) -> Result<reqwest::Client, TransportError> {
    let mut builder = base_builder(options);
    if let Some(pem) = &options.extra_ca_pem {
        builder = builder.tls_certs_merge(parse_certs(pem, "extra CA bundle")?);
    }
    builder.build().map_err(|e| TransportError(e.to_string()))
}

/// An `https` connection target: host (IPv6 without brackets) and port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    /// `host`, or `host:port` when the port is not 443, as a `Host` header.
    authority: String,
}

fn target_of(scope: &Scope, url: &Url) -> Result<Target, TransportError> {
    let (target, loopback) = parse_target(url)?;
    if matches!(scope, Scope::LoopbackOnly) && !loopback {
        return Err(TransportError(format!(
            "this transport (tests, tools) connects to loopback hosts only, not {}",
            target.host
        )));
    }
    Ok(target)
}

/// The target of an `https` URL and whether it is a loopback host.
fn parse_target(url: &Url) -> Result<(Target, bool), TransportError> {
    if url.scheme() != "https" {
        return Err(TransportError(format!("{url} is not an https URL")));
    }
    let (host, loopback) = match url.host() {
        Some(url::Host::Domain(d)) => (d.to_ascii_lowercase(), d.eq_ignore_ascii_case("localhost")),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), ip.is_loopback()),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), ip.is_loopback()),
        None => return Err(TransportError(format!("{url} has no host"))),
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    Ok((
        Target {
            host,
            port,
            authority,
        },
        loopback,
    ))
}

/// Resolves every name to one host's addresses (the server-name client's connection target).
#[derive(Debug)]
struct FixedTarget {
    host: String,
    port: u16,
}

impl reqwest::dns::Resolve for FixedTarget {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (host, port) = (self.host.clone(), self.port);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// See [`Transport::server_name_client`].
#[derive(Debug)]
pub struct ServerNameClient {
    connect: Target,
    server_name: String,
    inner: reqwest::Client,
}

impl ServerNameClient {
    /// The TLS server name.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }
}

#[async_trait::async_trait]
impl HttpClient for ServerNameClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let other_target = |what: &str| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                format!(
                    "the server-name client for {} cannot send {what}",
                    self.connect.authority
                ),
            )
        };
        let addressed = parse_target(request.url())
            .is_ok_and(|(t, _)| t.host == self.connect.host && t.port == self.connect.port);
        if !addressed {
            return Err(other_target("a request addressed elsewhere"));
        }
        let mut named = request.clone();
        let rewritten = named.url_mut().set_host(Some(&self.server_name));
        if rewritten.is_err() {
            return Err(other_target("to this server name"));
        }
        named.insert_header(
            HeaderName::from_static("host"),
            self.connect.authority.clone(),
        );
        HttpClient::execute_request(&self.inner, &named).await
    }
}

/// See [`Transport::certificate_probe`].
#[derive(Debug)]
pub struct CertificateProbe {
    scope: Scope,
    inner: reqwest::Client,
}

impl CertificateProbe {
    /// The DER leaf certificate `url`'s server presents (after a verified handshake). Sends one
    /// `GET` of `url` and ignores the answer.
    /// Errors are the innermost cause (a refused connection, an untrusted certificate).
    pub async fn leaf_certificate(&self, url: &Url) -> Result<Vec<u8>, String> {
        target_of(&self.scope, url).map_err(|e| e.0)?;
        let response = self
            .inner
            .get(url.clone())
            .send()
            .await
            .map_err(|e| crate::text::root_cause(&e))?;
        response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "the server presented no certificate".to_string())
    }
}

#[derive(Debug)]
struct RedirectAll {
    target: Url,
    inner: reqwest::Client,
}

#[async_trait::async_trait]
impl HttpClient for RedirectAll {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let mut redirected = request.clone();
        let original_host = request.url().host_str().unwrap_or_default().to_string();
        let url = redirected.url_mut();
        let rewrite = url
            .set_scheme(self.target.scheme())
            .and_then(|_| url.set_host(self.target.host_str()).map_err(|_| ()))
            .and_then(|_| url.set_port(self.target.port()));
        if rewrite.is_err() {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "redirecting transport could not rewrite the request URL",
            ));
        }
        redirected.insert_header(ORIGINAL_HOST_HEADER, original_host);
        HttpClient::execute_request(&self.inner, &redirected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_host_port_and_host_header() {
        let t = |u: &str| parse_target(&Url::parse(u).unwrap()).unwrap();
        let (def, loopback) = t("https://kubernetes.default.svc.cluster.local/x");
        assert_eq!(
            (
                def.host.as_str(),
                def.port,
                def.authority.as_str(),
                loopback
            ),
            (
                "kubernetes.default.svc.cluster.local",
                443,
                "kubernetes.default.svc.cluster.local",
                false
            )
        );
        let (ip, loopback) = t("https://127.0.0.1:8443");
        assert_eq!(
            (ip.authority.as_str(), ip.port, loopback),
            ("127.0.0.1:8443", 8443, true)
        );
        let (v6, loopback) = t("https://[::1]:9443/");
        assert_eq!(
            (v6.host.as_str(), v6.authority.as_str(), loopback),
            ("::1", "[::1]:9443", true)
        );
        assert!(parse_target(&Url::parse("http://127.0.0.1/").unwrap()).is_err());
    }

    #[test]
    fn test_transports_build_proxy_clients_for_loopback_only() {
        let transport =
            Transport::redirect_all(Url::parse("http://127.0.0.1:1/").unwrap(), None).unwrap();
        let far = Url::parse("https://kubernetes.default.svc.cluster.local").unwrap();
        let e = transport
            .server_name_client(&far, "a.ests.aks", &Roots::System)
            .unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        let near = Url::parse("https://127.0.0.1:8443").unwrap();
        let client = transport
            .server_name_client(&near, "A.ests.aks", &Roots::System)
            .unwrap();
        assert_eq!(client.server_name(), "a.ests.aks");
        assert!(
            transport
                .server_name_client(&near, "10.0.0.1", &Roots::System)
                .is_err()
        );
        assert!(
            transport
                .server_name_client(&near, "a.ests.aks", &Roots::Only(b"not pem".to_vec()))
                .is_err()
        );
    }
}
