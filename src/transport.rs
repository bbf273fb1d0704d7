//! The one HTTP seam.
//!
//! Every credential, every Key Vault client and every hand-written identity call (NMI) is built
//! from a [`Transport`]. In production it is a pooled `reqwest` client trusting the system store
//! (which honours `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus an optional extra CA bundle. Tests build it
//! with [`Transport::redirect_all`], which keeps production URLs (`https://myvault.vault.azure.net/`,
//! `https://login.microsoftonline.com/`, `http://169.254.169.254/`) in the request, so the SDK's
//! https and challenge-resource checks stay on, and rewrites only the connection target to a local
//! fake. Nothing built through a redirecting transport can reach a real Azure host or IMDS.

use std::{sync::Arc, time::Duration};

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
}

impl Transport {
    /// The production client: system trust store plus `options.extra_ca_pem`.
    pub fn production(options: &TransportOptions) -> Result<Self, TransportError> {
        let client = reqwest_client(options)?;
        Ok(Self {
            client: Arc::new(client),
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
        })
    }

    /// Wraps any HTTP client (used by tests that count or fault requests).
    pub fn from_client(client: Arc<dyn HttpClient>) -> Self {
        Self { client }
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

fn reqwest_client(options: &TransportOptions) -> Result<reqwest::Client, TransportError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = &options.extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| TransportError(format!("extra CA bundle: {e}")))?;
        if certs.is_empty() {
            return Err(TransportError(
                "extra CA bundle holds no certificate".into(),
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| TransportError(e.to_string()))
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
