//! AKS identity binding (`useAzureTokenProxy: "true"`): workload identity's client-assertion token
//! request, sent to the cluster's token proxy instead of Entra ID.
//!
//! The pod's service-account token for audience `api://AKSIdentityBinding` is the client
//! assertion of the same jwt-bearer request workload identity makes
//! (`POST /<tenant>/oauth2/v2.0/token`). The proxy (served behind the API server's address) checks
//! that the service account is bound to the managed identity named by `client_id`, and answers as
//! Entra ID would. Tokens are proven and cached exactly as for workload identity (see
//! [`super::workload`]), under their own mode in the identity key.
//!
//! Protocol (facts from the Azure SDK for Go, `sdk/azidentity/internal/customtokenproxy`, and
//! `Azure/secrets-store-csi-driver-provider-azure` v1.8.2, `internal/identitybinding`):
//! - the request URL is `--token-proxy-url`'s scheme, host and port, its path, then the original
//!   request's path and query (default proxy `https://kubernetes.default.svc.cluster.local`);
//! - TCP goes to the proxy URL's host, the `Host` header names it, while TLS uses `--sni-name` for
//!   SNI and certificate verification;
//! - without `--sni-name`, the name is `"a"` + lowercase unpadded base32hex (RFC 4648 §7) of
//!   SHA-256(`"identity-binding"` + cluster id) + `".ests.aks"`, the cluster id being `<id>` of the
//!   `hcp-kubernetes.<id>.svc.cluster.local` DNS SAN of the certificate the proxy URL's host (the API
//!   server) presents. It is computed once (on the first identity-binding mount, bounded by the
//!   connect timeout) and kept; a failure is answered for 5 s, then the next mount tries again;
//! - trust: the service-account CA file (`--token-proxy-ca-file`) when it exists, else the system
//!   store. The file is re-read on every token request (on the bounded blocking pool) and the client
//!   rebuilt when its content changes; an empty file (mid-rotation) keeps the previous client.
//!
//! Every connection is built through [`Transport`] ([`Transport::server_name_client`],
//! [`Transport::certificate_probe`]), so a test transport reaches loopback only.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::http::{AsyncRawResponse, ClientOptions, HttpClient, Request, Url};
use sha2::{Digest as _, Sha256};

use super::errors::{auth_error_of, misconfigured, to_core_error, unavailable};
use super::{AuthError, AuthErrorKind};
use crate::request::IDENTITY_BINDING_AUDIENCE;
use crate::sensitive::Sensitive;
use crate::text::echo;
use crate::transport::{Roots, ServerNameClient, Transport, TransportOptions};

/// The mode's name ([`crate::request::IdentityRequest::mode_name`]).
pub(crate) const MODE: &str = "azure_token_proxy";

/// Default of `--token-proxy-url`: the API server's in-cluster name.
pub const DEFAULT_TOKEN_PROXY_URL: &str = "https://kubernetes.default.svc.cluster.local";
/// Default of `--token-proxy-ca-file`: the service-account CA kubelet projects into pods.
pub const DEFAULT_TOKEN_PROXY_CA_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// Largest CA file read (a cluster CA bundle is a few kilobytes).
pub const MAX_CA_FILE_BYTES: u64 = 1 << 20;
/// How long a failure to compute the server name is answered without trying again, so mounts
/// queued behind a probe that timed out do not each wait for one of their own.
const PROBE_RETRY_AFTER: Duration = Duration::from_secs(5);

const SNI_SALT: &str = "identity-binding";
const SNI_PREFIX: &str = "a";
const SNI_SUFFIX: &str = ".ests.aks";
const SAN_PREFIX: &str = "hcp-kubernetes.";
const SAN_SUFFIX: &str = ".svc.cluster.local";

/// `--token-proxy-url`: `https`, a host, no user info, query or fragment (an empty path is `/`).
pub fn parse_proxy_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("--token-proxy-url {value:?}: {e}"))?;
    let problem = if url.scheme() != "https" {
        Some("must be an https URL")
    } else if url.host_str().is_none_or(str::is_empty) {
        Some("has no host")
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("must not contain user info")
    } else if url.query().is_some() {
        Some("must not contain a query")
    } else if url.fragment().is_some() {
        Some("must not contain a fragment")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!("--token-proxy-url {}: {problem}", echo(value))),
        None => Ok(url),
    }
}

/// `--sni-name`: a DNS name (letters, digits, inner hyphens; at most 253 characters).
pub fn check_sni_name(value: &str) -> Result<String, String> {
    let name = value.trim_end_matches('.').to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(name)
    } else {
        Err(format!("--sni-name {}: not a DNS name", echo(value)))
    }
}

/// The TLS server name of a cluster's token proxy, computed from its cluster id.
pub fn server_name_for_cluster(cluster_id: &str) -> String {
    let digest = Sha256::digest(format!("{SNI_SALT}{cluster_id}").as_bytes());
    let encoded = data_encoding::BASE32HEX_NOPAD.encode(&digest);
    format!("{SNI_PREFIX}{}{SNI_SUFFIX}", encoded.to_ascii_lowercase())
}

/// The cluster id of an API server certificate (DER): `<id>` of its first
/// `hcp-kubernetes.<id>.svc.cluster.local` DNS SAN.
pub fn cluster_id_from_certificate(der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| "the API server's certificate does not parse as X.509".to_string())?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|_| "the API server's certificate has a malformed subjectAltName".to_string())?;
    let found = sans
        .into_iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => dns
                .strip_prefix(SAN_PREFIX)
                .and_then(|rest| rest.strip_suffix(SAN_SUFFIX))
                .map(str::to_string),
            _ => None,
        });
    match found {
        Some(id) if !id.is_empty() => Ok(id),
        Some(_) => Err(format!(
            "the API server's certificate has an empty cluster id in its {SAN_PREFIX}<id>{SAN_SUFFIX} SAN; set --sni-name"
        )),
        None => Err(format!(
            "the API server's certificate has no {SAN_PREFIX}<id>{SAN_SUFFIX} SAN to compute the token proxy's TLS name from; set --sni-name"
        )),
    }
}

/// Where a request for `original` goes: the proxy's scheme, host and port, the proxy's path
/// followed by the original path, and the original query.
pub fn forward_url(proxy: &Url, original: &Url) -> Url {
    let mut url = proxy.clone();
    let base = proxy.path().trim_end_matches('/');
    let rest = original.path();
    let rest = if rest.starts_with('/') {
        rest.to_string()
    } else {
        format!("/{rest}")
    };
    url.set_path(&format!("{base}{rest}"));
    url.set_query(original.query());
    url
}

/// Checks the presented token's `aud` claim names `api://AKSIdentityBinding` (a string or an
/// array), so a token for another audience gets a clear error before any request. The error
/// names the audience, never the token.
pub(crate) fn check_audience(token: &Sensitive) -> Result<(), AuthError> {
    use base64::Engine as _;
    let claims = token
        .expose()
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    let Some(claims) = claims else {
        // Shape problems are reported by the token check that follows, with their own words.
        return Ok(());
    };
    let names = |aud: &serde_json::Value| match aud {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    let audiences = claims.get("aud").map(names).unwrap_or_default();
    if audiences.iter().any(|a| a == IDENTITY_BINDING_AUDIENCE) {
        return Ok(());
    }
    let shown = audiences
        .iter()
        .map(|a| format!("{:?}", echo(a)))
        .collect::<Vec<_>>()
        .join(", ");
    Err(misconfigured(
        MODE,
        format!(
            "the service account token's audience is [{shown}], not {IDENTITY_BINDING_AUDIENCE}; set tokenRequests with audience {IDENTITY_BINDING_AUDIENCE:?} on the secrets-store.csi.k8s.io CSIDriver"
        ),
    ))
}

/// Options of the token proxy, from flags.
#[derive(Clone, Debug)]
pub struct TokenProxyOptions {
    /// `--token-proxy-url` (parsed), default [`DEFAULT_TOKEN_PROXY_URL`].
    pub url: Url,
    /// `--sni-name` (checked); computed from the cluster id when absent.
    pub sni_name: Option<String>,
    /// `--token-proxy-ca-file`.
    pub ca_file: PathBuf,
    /// Bound on computing the server name (TLS handshake with the API server).
    pub probe_timeout: Duration,
}

/// The token proxy of this cluster: its server name (configured or computed once) and the
/// client for the current CA.
pub(crate) struct TokenProxy {
    options: TokenProxyOptions,
    transport: Transport,
    computed_name: tokio::sync::OnceCell<String>,
    /// The last failure to compute the name, and when.
    probe_failure: Mutex<Option<(std::time::Instant, AuthError)>>,
    current: Mutex<Option<Current>>,
}

/// The client built for a CA file content (`None`: the file is absent, system store).
struct Current {
    ca: Option<Vec<u8>>,
    client: Arc<ServerNameClient>,
}

/// What the CA file holds now.
enum CaFile {
    Absent,
    Empty,
    Pem(Vec<u8>),
}

impl std::fmt::Debug for TokenProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProxy")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl TokenProxy {
    pub(crate) fn new(transport: Transport, options: TokenProxyOptions) -> Self {
        Self {
            options,
            transport,
            computed_name: tokio::sync::OnceCell::new(),
            probe_failure: Mutex::new(None),
            current: Mutex::new(None),
        }
    }

    fn proxy(&self) -> String {
        echo(self.options.url.as_str()).into_owned()
    }

    /// SDK client options sending Entra ID token requests through this proxy, with the proxy's
    /// transient faults retried as Entra ID's are (`--auth-max-retries`).
    pub(crate) fn client_options(
        self: &Arc<Self>,
        base: ClientOptions,
        max_retries: u32,
    ) -> ClientOptions {
        let client = super::retry::retrying_client(
            Arc::new(ProxyHttpClient {
                proxy: self.clone(),
            }),
            super::retry::Endpoint::Entra,
            max_retries,
        );
        ClientOptions {
            transport: Some(azure_core::http::Transport::new(client)),
            ..base
        }
    }

    /// `--sni-name`, else the name computed from the API server's certificate (once).
    async fn server_name(&self) -> Result<String, AuthError> {
        if let Some(name) = &self.options.sni_name {
            return Ok(name.clone());
        }
        let timeout = self.options.probe_timeout;
        let recent_failure = || {
            crate::sync::lock(&self.probe_failure)
                .as_ref()
                .filter(|(at, _)| at.elapsed() < PROBE_RETRY_AFTER)
                .map(|(_, e)| e.clone())
        };
        self.computed_name
            .get_or_try_init(|| async {
                if let Some(error) = recent_failure() {
                    return Err(error);
                }
                let result = match tokio::time::timeout(timeout, self.compute_server_name()).await
                {
                    Ok(result) => result,
                    Err(_) => Err(unavailable(
                        MODE,
                        format!(
                            "the token proxy {} did not complete a TLS handshake within {timeout:?} (reading the API server's certificate to compute the TLS server name; --sni-name skips this)",
                            self.proxy()
                        ),
                    )),
                };
                if let Err(error) = &result {
                    *crate::sync::lock(&self.probe_failure) =
                        Some((std::time::Instant::now(), error.clone()));
                }
                result
            })
            .await
            .cloned()
    }

    async fn compute_server_name(&self) -> Result<String, AuthError> {
        let roots = match self.read_ca().await? {
            CaFile::Absent => Roots::System,
            CaFile::Empty => return Err(self.empty_ca()),
            CaFile::Pem(pem) => Roots::Only(pem),
        };
        let transport = self.transport.clone();
        let probe = crate::blocking::run(move || transport.certificate_probe(&roots))
            .await
            .map_err(|e| unavailable(MODE, format!("building the TLS client {e}")))?
            .map_err(|e| misconfigured(MODE, e))?;
        let der = probe.leaf_certificate(&self.options.url).await.map_err(|e| {
            unavailable(
                MODE,
                format!(
                    "the token proxy {} is unreachable (reading the API server's certificate to compute the TLS server name): {}",
                    self.proxy(),
                    echo(&e)
                ),
            )
        })?;
        let cluster_id = cluster_id_from_certificate(&der).map_err(|e| misconfigured(MODE, e))?;
        let name = server_name_for_cluster(&cluster_id);
        tracing::info!(token_proxy = %self.proxy(), sni_name = %name, "identity binding: computed the token proxy's TLS server name");
        Ok(name)
    }

    fn empty_ca(&self) -> AuthError {
        misconfigured(
            MODE,
            format!(
                "the token proxy CA file {} is empty",
                echo(&self.options.ca_file.display().to_string())
            ),
        )
    }

    /// Reads the CA file on the bounded blocking pool.
    async fn read_ca(&self) -> Result<CaFile, AuthError> {
        let path = self.options.ca_file.clone();
        let shown = echo(&path.display().to_string()).into_owned();
        let read = crate::blocking::run(move || read_capped(&path))
            .await
            .map_err(|e| {
                unavailable(MODE, format!("reading the token proxy CA file {shown} {e}"))
            })?;
        read.map_err(|e| misconfigured(MODE, e))
    }

    /// The client for the CA file's current content (rebuilt when it changed).
    async fn client(&self, server_name: &str) -> Result<Arc<ServerNameClient>, AuthError> {
        let ca = self.read_ca().await?;
        {
            let current = crate::sync::lock(&self.current);
            if let Some(current) = current.as_ref() {
                let same = match &ca {
                    CaFile::Absent => current.ca.is_none(),
                    // Mid-rotation: keep what worked.
                    CaFile::Empty => true,
                    CaFile::Pem(pem) => current.ca.as_ref() == Some(pem),
                };
                if same {
                    return Ok(current.client.clone());
                }
            }
        }
        let (ca, roots) = match ca {
            CaFile::Absent => (None, Roots::System),
            CaFile::Empty => return Err(self.empty_ca()),
            CaFile::Pem(pem) => (Some(pem.clone()), Roots::Only(pem)),
        };
        let transport = self.transport.clone();
        let url = self.options.url.clone();
        let name = server_name.to_string();
        let client =
            crate::blocking::run(move || transport.server_name_client(&url, &name, &roots))
                .await
                .map_err(|e| unavailable(MODE, format!("building the token proxy client {e}")))?
                .map_err(|e| {
                    misconfigured(
                        MODE,
                        format!(
                            "the token proxy client for {}: {}",
                            self.proxy(),
                            echo(&e.to_string())
                        ),
                    )
                })?;
        let client = Arc::new(client);
        *crate::sync::lock(&self.current) = Some(Current {
            ca,
            client: client.clone(),
        });
        Ok(client)
    }
}

/// The CA file: absent, empty, or its bytes (at most [`MAX_CA_FILE_BYTES`]).
fn read_capped(path: &std::path::Path) -> Result<CaFile, String> {
    use std::io::Read as _;
    let shown = || echo(&path.display().to_string()).into_owned();
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CaFile::Absent),
        Err(e) => {
            return Err(format!(
                "cannot read the token proxy CA file {}: {e}",
                shown()
            ));
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the token proxy CA file {}: {e}", shown()))?;
    if bytes.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!(
            "the token proxy CA file {} is larger than {MAX_CA_FILE_BYTES} bytes",
            shown()
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(CaFile::Empty);
    }
    Ok(CaFile::Pem(bytes))
}

/// The HTTP client the SDK's token requests go through: forwards them to the proxy.
#[derive(Debug)]
struct ProxyHttpClient {
    proxy: Arc<TokenProxy>,
}

#[async_trait::async_trait]
impl HttpClient for ProxyHttpClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let proxy = &self.proxy;
        let name = proxy.server_name().await.map_err(to_core_error)?;
        let client = proxy.client(&name).await.map_err(to_core_error)?;
        let mut forwarded = request.clone();
        *forwarded.url_mut() = forward_url(&proxy.options.url, request.url());
        HttpClient::execute_request(client.as_ref(), &forwarded)
            .await
            .map_err(|e| {
                let cause = crate::text::root_cause(&e);
                // A certificate the CA does not vouch for, or not for this name, is a setting to
                // fix (--sni-name, --token-proxy-ca-file), not an outage.
                let (kind, problem) = if cause.contains("certificate") {
                    (AuthErrorKind::Misconfigured, "presented a certificate not valid for that name under the trusted CA (check --sni-name and --token-proxy-ca-file)")
                } else {
                    (AuthErrorKind::Unavailable, "is unreachable")
                };
                to_core_error(auth_error_of(
                    kind,
                    MODE,
                    format!(
                        "the token proxy {} (TLS name {}) {problem}: {}",
                        proxy.proxy(),
                        echo(&name),
                        echo(&cause)
                    ),
                ))
            })
    }
}

/// The proxy options from flags: `--token-proxy-url` (default [`DEFAULT_TOKEN_PROXY_URL`]),
/// `--sni-name`, `--token-proxy-ca-file`.
pub fn token_proxy_options(
    url: Option<&str>,
    sni_name: Option<&str>,
    ca_file: Option<&std::path::Path>,
) -> Result<TokenProxyOptions, String> {
    let url = parse_proxy_url(url.unwrap_or(DEFAULT_TOKEN_PROXY_URL))?;
    let sni_name = sni_name.map(check_sni_name).transpose()?;
    Ok(TokenProxyOptions {
        url,
        sni_name,
        ca_file: ca_file
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_TOKEN_PROXY_CA_FILE)),
        probe_timeout: TransportOptions::default().connect_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_matches_an_independent_computation() {
        // Python 3 stdlib:
        //   h = hashlib.sha256(b"identity-binding" + cid.encode()).digest()
        //   "a" + base64.b32hexencode(h).decode().rstrip("=").lower() + ".ests.aks"
        assert_eq!(
            server_name_for_cluster("0123456789abcdef0123456789abcdef"),
            "af17kjq0adhpn7fa35gd5hqll5ij3jgramt04f1nbln2vg8nlff5g.ests.aks"
        );
        assert_eq!(
            server_name_for_cluster("test-cluster"),
            "a15sgp3ukhn9hn1k176jo4hooktnm4siom454bfhr83jf95veh9cg.ests.aks"
        );
        // 32 bytes → 52 base32 characters; a DNS label of at most 63.
        let name = server_name_for_cluster("x");
        assert_eq!(name.split('.').next().unwrap().len(), 53);
        check_sni_name(&name).unwrap();
    }

    #[test]
    fn forwarded_url_keeps_the_proxy_path_then_the_request_path_and_query() {
        let original =
            Url::parse("https://login.microsoftonline.com/tid/oauth2/v2.0/token?x=1").unwrap();
        for (proxy, want) in [
            (
                "https://kubernetes.default.svc.cluster.local",
                "https://kubernetes.default.svc.cluster.local/tid/oauth2/v2.0/token?x=1",
            ),
            (
                "https://10.0.0.1:8443/",
                "https://10.0.0.1:8443/tid/oauth2/v2.0/token?x=1",
            ),
            (
                "https://proxy.local/base",
                "https://proxy.local/base/tid/oauth2/v2.0/token?x=1",
            ),
            (
                "https://proxy.local/base/",
                "https://proxy.local/base/tid/oauth2/v2.0/token?x=1",
            ),
        ] {
            let proxy = parse_proxy_url(proxy).unwrap();
            assert_eq!(forward_url(&proxy, &original).as_str(), want);
        }
        let plain = Url::parse("https://login.microsoftonline.com/tid/oauth2/v2.0/token").unwrap();
        let proxy = parse_proxy_url(DEFAULT_TOKEN_PROXY_URL).unwrap();
        assert_eq!(forward_url(&proxy, &plain).query(), None);
    }

    #[test]
    fn proxy_url_and_sni_name_are_checked() {
        for bad in [
            "http://kubernetes.default.svc",
            "https://u:p@proxy.local",
            "https://proxy.local/?a=b",
            "https://proxy.local/#f",
            "not a url",
        ] {
            assert!(parse_proxy_url(bad).is_err(), "{bad}");
        }
        assert_eq!(check_sni_name("A.ests.aks.").unwrap(), "a.ests.aks");
        for bad in ["", "10.0.0.1", "a..b", "-a.b", "a b", &"a".repeat(64)] {
            assert!(check_sni_name(bad).is_err(), "{bad}");
        }
        let defaults = token_proxy_options(None, None, None).unwrap();
        assert_eq!(
            defaults.url.as_str(),
            "https://kubernetes.default.svc.cluster.local/"
        );
        assert_eq!(defaults.ca_file, PathBuf::from(DEFAULT_TOKEN_PROXY_CA_FILE));
        assert!(defaults.sni_name.is_none());
    }

    #[test]
    fn cluster_id_comes_from_the_hcp_kubernetes_san() {
        let cert = |sans: Vec<String>| {
            let key = rcgen_free_key();
            let params = x509_params(sans);
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let der = cert(vec![
            "kubernetes.default.svc.cluster.local".into(),
            "hcp-kubernetes.64f0c0ffee.svc.cluster.local".into(),
        ]);
        assert_eq!(cluster_id_from_certificate(&der).unwrap(), "64f0c0ffee");
        let none = cert(vec!["kubernetes".into()]);
        assert!(
            cluster_id_from_certificate(&none)
                .unwrap_err()
                .contains("--sni-name")
        );
        let empty = cert(vec!["hcp-kubernetes..svc.cluster.local".into()]);
        assert!(cluster_id_from_certificate(&empty).is_err());
        assert!(cluster_id_from_certificate(b"junk").is_err());
    }

    fn rcgen_free_key() -> rcgen::KeyPair {
        rcgen::KeyPair::generate().unwrap()
    }

    fn x509_params(sans: Vec<String>) -> rcgen::CertificateParams {
        rcgen::CertificateParams::new(sans).unwrap()
    }

    #[test]
    fn audience_is_checked_and_named() {
        use base64::Engine as _;
        let jwt = |claims: serde_json::Value| {
            let b64 = |v: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
            Sensitive::new(format!(
                "{}.{}.",
                b64(r#"{"alg":"none"}"#.into()),
                b64(claims.to_string())
            ))
        };
        check_audience(&jwt(serde_json::json!({"aud": "api://AKSIdentityBinding"}))).unwrap();
        check_audience(&jwt(
            serde_json::json!({"aud": ["x", "api://AKSIdentityBinding"]}),
        ))
        .unwrap();
        let e = check_audience(&jwt(
            serde_json::json!({"aud": "api://AzureADTokenExchange"}),
        ))
        .unwrap_err()
        .0;
        assert!(
            e.contains("api://AzureADTokenExchange") && e.contains("not api://AKSIdentityBinding"),
            "{e}"
        );
        assert!(check_audience(&jwt(serde_json::json!({}))).is_err());
    }
}
