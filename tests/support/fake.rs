//! A fake of the Azure endpoints the provider talks to, speaking their real REST shapes, so that
//! integration tests and the benchmark run the real SDK and the real provider over real HTTP on
//! loopback, with no packet leaving the machine.
//!
//! Routing: the provider's redirecting transport (`Transport::redirect_all`) keeps the production
//! URL's path and query and sets `x-original-host`; the fake routes on that host, falling back to
//! the path shape:
//! - `<vault>.vault.azure.net` (or any `<vault>.<suffix>`): Key Vault data plane, API 2025-07-01.
//! - `login.microsoftonline.com` (or any host with `/<tenant>/oauth2/v2.0/token`): Entra ID.
//! - `169.254.169.254`: IMDS `/metadata/identity/oauth2/token`.
//! - `127.0.0.1:2579` / `localhost:2579`: NMI `/host/token/`.
//!
//! Conventions other tests rely on:
//! - Key Vault challenges unauthenticated requests with
//!   `Bearer authorization="https://login.microsoftonline.com/<CHALLENGE_TENANT_ID>", resource="https://<suffix>"`
//!   where `<suffix>` is the original host without its first label (`vault.azure.net`). The login
//!   host follows the cloud of the vault suffix (`.cn` → `login.chinacloudapi.cn`, `.us` →
//!   `login.microsoftonline.us`).
//! - Tokens are opaque random strings bound to an identity (client id, or [`SYSTEM_IDENTITY`] for
//!   the system-assigned managed identity), a resource (`https://vault.azure.net`, no trailing
//!   slash, no `/.default`) and an expiry.
//! - Key Vault faults apply to every Key Vault request in arrival order, challenge round trips
//!   included, before authentication is checked; they are consumed in injection order.
//! - Key Vault and IMDS require the `api-version` query parameter (any value), as the real ones do.
//! - Key Vault 403 (identity not granted) uses code `Forbidden` with inner error `AccessDenied`;
//!   missing objects/versions 404 with `SecretNotFound`/`KeyNotFound`/`CertificateNotFound`.
//! - Entra ID errors: unknown client `AADSTS700016` (400 `unauthorized_client`), bad secret
//!   `AADSTS7000215` (401 `invalid_client`), no matching federated credential `AADSTS70021`
//!   (400 `invalid_request`), expired assertion `AADSTS700024` (400 `invalid_client`), malformed
//!   assertion `AADSTS50027`, missing parameter `AADSTS900144`. Bodies never echo secrets.
//! - Certificate credentials: an assertion with an `x5t` header for a client with registered
//!   certificates must name one of them by SHA-1 thumbprint and verify (RS256) with its key, else
//!   `AADSTS700027` (401 `invalid_client`); `aud` must be `https://<login host>/<tenant>/oauth2/v2.0/token`
//!   and `iss` = `sub` = the client id (`AADSTS700023`/`AADSTS700021`, 400).
//! - IMDS needs `Metadata: true` (else 400) and issues for the system-assigned identity (no id
//!   parameter) or the user-assigned one named by `client_id` (`object_id`/`msi_res_id` values are
//!   looked up the same way); unknown → 400 `Identity not found`. Token fields are strings, as
//!   real IMDS sends them. Note that the SDK's managed identity credential retries IMDS 404/429/5xx
//!   itself (1.34 s initial delay), whatever the transport's retry options say.
//! - NMI: bound pod → 200 `{"token":{..},"clientid":..}`; unbound → 403 text; missing `podns` or
//!   `podname` → 400 text.

mod identity;
mod keyvault;
mod server;
mod tls;
pub mod token_proxy;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

/// The tenant named in Key Vault's `WWW-Authenticate` challenge. Credentials use their own tenant;
/// the SDK does not read this one.
pub const CHALLENGE_TENANT_ID: &str = "fa4e0000-0000-4000-8000-00000000cafe";

/// The identity name of the system-assigned managed identity in [`FakeAzure::grant`].
pub const SYSTEM_IDENTITY: &str = "system";

/// The client id IMDS reports for the system-assigned managed identity.
pub const SYSTEM_ASSIGNED_CLIENT_ID: &str = "5a1b7c3d-0000-4000-8000-000000000515";

/// A running fake. Dropping it stops the server and closes its connections.
pub struct FakeAzure {
    shared: Arc<Shared>,
    url: String,
    ca_pem: Option<Vec<u8>>,
    /// Built on first use and shared: building a reqwest client loads the trust store.
    transport: std::sync::OnceLock<akv_csi_provider::transport::Transport>,
    server: tokio::task::JoinHandle<()>,
}

/// A request the fake received (for assertions).
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `keyvault`, `entra`, `imds`, `nmi` (`unknown` for anything else).
    pub service: &'static str,
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `x-original-host` header.
    pub host: String,
    /// Status the fake answered (0 when the connection was reset without an answer).
    pub status: u16,
    /// Whether an `Authorization: Bearer` header was present.
    pub authorized: bool,
}

/// Counters since start (or the last `reset_counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every Key Vault request, including 401 challenges and throttled ones.
    pub keyvault: u64,
    /// Key Vault requests answered 401 because they carried no token (challenge round trips).
    pub challenges: u64,
    /// Token requests to Entra ID (`/oauth2/v2.0/token`).
    pub entra_tokens: u64,
    pub imds: u64,
    pub nmi: u64,
}

/// A fault to inject; each applies to the next `count` matching requests.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Key Vault answers 429 with `Retry-After: <retry_after_secs>`.
    KeyVaultThrottle { count: u32, retry_after_secs: u64 },
    /// Key Vault answers this status with an error body.
    KeyVaultStatus { count: u32, status: u16 },
    /// Entra ID answers this status with an `AADSTS` error body.
    EntraStatus {
        count: u32,
        status: u16,
        aadsts: &'static str,
    },
    /// IMDS answers this status.
    ImdsStatus { count: u32, status: u16 },
    /// NMI answers this status.
    NmiStatus { count: u32, status: u16 },
    /// The connection is closed without a response (Key Vault).
    KeyVaultReset { count: u32 },
    /// Entra ID answers this status with an error body and `Retry-After: <retry_after_secs>`.
    EntraRetryAfter {
        count: u32,
        status: u16,
        retry_after_secs: u64,
    },
    /// IMDS answers this status with `Retry-After: <retry_after_secs>`.
    ImdsRetryAfter {
        count: u32,
        status: u16,
        retry_after_secs: u64,
    },
    /// The connection to Entra ID's token endpoint is closed without a response.
    EntraReset { count: u32 },
    /// The connection to IMDS is closed without a response.
    ImdsReset { count: u32 },
    /// The connection to NMI is closed without a response.
    NmiReset { count: u32 },
}

impl Fault {
    fn service(&self) -> Service {
        match self {
            Fault::KeyVaultThrottle { .. }
            | Fault::KeyVaultStatus { .. }
            | Fault::KeyVaultReset { .. } => Service::KeyVault,
            Fault::EntraStatus { .. }
            | Fault::EntraRetryAfter { .. }
            | Fault::EntraReset { .. } => Service::Entra,
            Fault::ImdsStatus { .. } | Fault::ImdsRetryAfter { .. } | Fault::ImdsReset { .. } => {
                Service::Imds
            }
            Fault::NmiStatus { .. } | Fault::NmiReset { .. } => Service::Nmi,
        }
    }

    fn count_mut(&mut self) -> &mut u32 {
        match self {
            Fault::KeyVaultThrottle { count, .. }
            | Fault::KeyVaultStatus { count, .. }
            | Fault::EntraStatus { count, .. }
            | Fault::ImdsStatus { count, .. }
            | Fault::NmiStatus { count, .. }
            | Fault::EntraRetryAfter { count, .. }
            | Fault::ImdsRetryAfter { count, .. }
            | Fault::KeyVaultReset { count }
            | Fault::EntraReset { count }
            | Fault::ImdsReset { count }
            | Fault::NmiReset { count } => count,
        }
    }
}

/// The endpoint family a request is addressed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    KeyVault,
    Entra,
    Imds,
    Nmi,
    Unknown,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::KeyVault => "keyvault",
            Service::Entra => "entra",
            Service::Imds => "imds",
            Service::Nmi => "nmi",
            Service::Unknown => "unknown",
        }
    }
}

/// Kinds of Key Vault objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Secret,
    Key,
    Certificate,
}

/// What a stored object version holds.
#[derive(Clone, Debug)]
enum Payload {
    Secret {
        value: String,
        content_type: Option<String>,
        kid: Option<String>,
    },
    Key {
        jwk: serde_json::Value,
    },
    Certificate {
        cer: Vec<u8>,
    },
}

#[derive(Clone, Debug)]
struct ObjectVersion {
    version: String,
    created: i64,
    enabled: bool,
    payload: Payload,
}

/// A stored object: its name as first added, and its versions in insertion order.
#[derive(Clone, Debug, Default)]
struct StoredObject {
    name: String,
    versions: Vec<ObjectVersion>,
}

/// An app registration (service principal) in one tenant.
#[derive(Clone, Debug, Default)]
struct AppRegistration {
    secrets: Vec<String>,
    federated: Vec<FederatedCredential>,
    /// DER certificates whose keys may sign client assertions.
    certificates: Vec<Vec<u8>>,
}

#[derive(Clone, Debug)]
struct FederatedCredential {
    issuer: String,
    subject: String,
    audience: String,
}

/// An injected fault and how many more requests it applies to (always > 0 while stored).
struct PendingFault {
    fault: Fault,
    left: u32,
}

/// What an access token the fake issued is bound to.
#[derive(Clone, Debug)]
struct IssuedToken {
    identity: String,
    resource: String,
    expires: Instant,
    revoked: bool,
}

/// Mutable state behind the server.
struct State {
    objects: HashMap<(String, Kind, String), StoredObject>,
    page_size: usize,
    apps: HashMap<(String, String), AppRegistration>,
    managed_identities: HashSet<String>,
    pods: HashMap<(String, String), String>,
    grants: HashMap<String, HashSet<String>>,
    /// Token audience a vault (by name) demands and names in its challenge, when not
    /// `https://<its DNS suffix>`.
    vault_resources: HashMap<String, String>,
    token_lifetime: Duration,
    tokens: HashMap<String, IssuedToken>,
    faults: Vec<PendingFault>,
    /// Every Nth Key Vault request meets a fault (0 = off), cycling 503, 429, reset.
    keyvault_fault_every: u64,
    keyvault_seen: u64,
    /// Key Vault's service limit, if set: requests per window, 429 with `Retry-After` beyond.
    rate_limit: Option<RateLimit>,
    keyvault_latency: Duration,
    token_latency: Duration,
    counts: Counts,
    requests: Vec<Recorded>,
    sensitive: Vec<String>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            objects: HashMap::new(),
            page_size: 25,
            apps: HashMap::new(),
            managed_identities: HashSet::new(),
            pods: HashMap::new(),
            grants: HashMap::new(),
            vault_resources: HashMap::new(),
            token_lifetime: Duration::from_secs(3600),
            tokens: HashMap::new(),
            faults: Vec::new(),
            keyvault_fault_every: 0,
            keyvault_seen: 0,
            rate_limit: None,
            keyvault_latency: Duration::ZERO,
            token_latency: Duration::ZERO,
            counts: Counts::default(),
            requests: Vec::new(),
            sensitive: Vec::new(),
        }
    }
}

impl State {
    /// Takes one use of the first pending fault for `service`, if any.
    fn take_fault(&mut self, service: Service) -> Option<Fault> {
        if service == Service::KeyVault && self.keyvault_fault_every > 0 {
            self.keyvault_seen += 1;
            if self.keyvault_seen.is_multiple_of(self.keyvault_fault_every) {
                return Some(match (self.keyvault_seen / self.keyvault_fault_every) % 3 {
                    0 => Fault::KeyVaultStatus {
                        count: 1,
                        status: 503,
                    },
                    1 => Fault::KeyVaultThrottle {
                        count: 1,
                        retry_after_secs: 1,
                    },
                    _ => Fault::KeyVaultReset { count: 1 },
                });
            }
        }
        let index = self
            .faults
            .iter()
            .position(|p| p.fault.service() == service)?;
        let pending = &mut self.faults[index];
        let taken = pending.fault.clone();
        pending.left -= 1;
        if pending.left == 0 {
            self.faults.remove(index);
        }
        Some(taken)
    }

    fn remember_sensitive(&mut self, value: &str) {
        if !value.is_empty() && !self.sensitive.iter().any(|s| s == value) {
            self.sensitive.push(value.to_string());
        }
    }

    /// Issues an opaque random token for `identity` and `resource` with the configured lifetime.
    fn issue_token(&mut self, identity: &str, resource: &str) -> (String, Duration) {
        let token = random_token();
        let lifetime = self.token_lifetime;
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                identity: identity.to_string(),
                resource: normalize_resource(resource),
                expires: Instant::now() + lifetime,
                revoked: false,
            },
        );
        self.remember_sensitive(&token);
        (token, lifetime)
    }
}

/// A Key Vault-style service limit: at most `capacity` requests per fixed window; beyond it, 429
/// with `Retry-After` to the end of the window (whole seconds, at least 1).
#[derive(Debug)]
pub(crate) struct RateLimit {
    capacity: u64,
    window: Duration,
    started: Instant,
    /// Requests received in each window so far (the last one is the current window).
    per_window: Vec<u64>,
    throttled: u64,
}

impl RateLimit {
    /// `Some(retry_after_secs)` when this request is over the limit.
    pub(crate) fn admit(&mut self) -> Option<u64> {
        let elapsed = self.started.elapsed();
        let index = (elapsed.as_nanos() / self.window.as_nanos().max(1)) as usize;
        if self.per_window.len() <= index {
            self.per_window.resize(index + 1, 0);
        }
        self.per_window[index] += 1;
        if self.per_window[index] <= self.capacity {
            return None;
        }
        self.throttled += 1;
        let end = self.window * (index as u32 + 1);
        Some(end.saturating_sub(elapsed).as_secs_f64().ceil().max(1.0) as u64)
    }
}

/// What the rate limit saw: requests per window and 429s answered.
#[derive(Clone, Debug, Default)]
pub struct RateStats {
    pub per_window: Vec<u64>,
    pub throttled: u64,
}

/// State shared between the handle and the server tasks.
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge the fake for the others.
        akv_csi_provider::sync::lock(&self.state)
    }
}

impl FakeAzure {
    /// Plain HTTP on 127.0.0.1, random port.
    pub async fn start() -> FakeAzure {
        Self::launch(None).await
    }

    /// HTTPS on 127.0.0.1 with a throwaway CA (certificate for `localhost` and `127.0.0.1`).
    pub async fn start_tls() -> FakeAzure {
        let material = tls::mint();
        Self::launch(Some(material)).await
    }

    async fn launch(tls: Option<tls::TlsMaterial>) -> FakeAzure {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Azure: cannot bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("fake Azure: bound listener has an address")
            .port();
        let (url, ca_pem, acceptor) = match tls {
            Some(material) => (
                format!("https://localhost:{port}/"),
                Some(material.ca_pem),
                Some(material.acceptor),
            ),
            None => (format!("http://127.0.0.1:{port}/"), None, None),
        };
        let server = tokio::spawn(server::serve(listener, acceptor, shared.clone()));
        FakeAzure {
            shared,
            url,
            ca_pem,
            transport: std::sync::OnceLock::new(),
            server,
        }
    }

    /// `http://127.0.0.1:<port>/` or `https://localhost:<port>/`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The throwaway CA in PEM (TLS fakes only).
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        self.ca_pem.clone()
    }

    /// The provider's redirecting transport pointed at this fake (trusting its CA when TLS).
    /// Every call returns a handle on the same client (and connection pool).
    pub fn transport(&self) -> akv_csi_provider::transport::Transport {
        self.transport
            .get_or_init(|| {
                let target = url::Url::parse(&self.url).expect("fake Azure: own URL parses");
                akv_csi_provider::transport::Transport::redirect_all(target, self.ca_pem.clone())
                    .expect("fake Azure: redirecting transport builds")
            })
            .clone()
    }

    /// Latency added before every Key Vault / token (Entra, IMDS, NMI) response.
    pub fn set_latency(&self, keyvault: Duration, token: Duration) {
        let mut state = self.shared.lock();
        state.keyvault_latency = keyvault;
        state.token_latency = token;
    }

    // ---- Key Vault content (vault = the vault name, e.g. "myvault") ----

    /// A secret version. `created` is Unix seconds; versions are 32 hex chars in real Key Vault
    /// but any string works here.
    #[allow(clippy::too_many_arguments)]
    pub fn add_secret(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        value: &str,
        content_type: Option<&str>,
        kid: Option<&str>,
        created: i64,
        enabled: bool,
    ) {
        let payload = Payload::Secret {
            value: value.to_string(),
            content_type: content_type.map(str::to_string),
            kid: kid.map(str::to_string),
        };
        self.add_object(
            vault,
            Kind::Secret,
            name,
            version,
            payload,
            created,
            enabled,
        );
    }

    /// A key version; `jwk` is the JSON Web Key as Key Vault returns it (base64url fields).
    pub fn add_key(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        jwk: serde_json::Value,
        created: i64,
        enabled: bool,
    ) {
        self.add_object(
            vault,
            Kind::Key,
            name,
            version,
            Payload::Key { jwk },
            created,
            enabled,
        );
    }

    /// A certificate version; `cer` is the DER certificate.
    pub fn add_certificate(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        cer: &[u8],
        created: i64,
        enabled: bool,
    ) {
        self.add_object(
            vault,
            Kind::Certificate,
            name,
            version,
            Payload::Certificate { cer: cer.to_vec() },
            created,
            enabled,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn add_object(
        &self,
        vault: &str,
        kind: Kind,
        name: &str,
        version: &str,
        payload: Payload,
        created: i64,
        enabled: bool,
    ) {
        let mut state = self.shared.lock();
        let object = state
            .objects
            .entry((vault.to_ascii_lowercase(), kind, name.to_ascii_lowercase()))
            .or_insert_with(|| StoredObject {
                name: name.to_string(),
                versions: Vec::new(),
            });
        object.versions.retain(|v| v.version != version);
        object.versions.push(ObjectVersion {
            version: version.to_string(),
            created,
            enabled,
            payload,
        });
    }

    /// Versions per page of `/versions` listings (default 25); `nextLink` points back at the fake.
    pub fn set_page_size(&self, n: usize) {
        self.shared.lock().page_size = n.max(1);
    }

    // ---- identities ----

    /// A service principal with a client secret.
    pub fn add_client_secret(&self, tenant: &str, client_id: &str, secret: &str) {
        let mut state = self.shared.lock();
        state.remember_sensitive(secret);
        state
            .apps
            .entry((tenant.to_string(), client_id.to_string()))
            .or_default()
            .secrets
            .push(secret.to_string());
    }

    /// A federated credential: an assertion JWT with this issuer, subject and audience is
    /// accepted for the client id.
    pub fn add_federated_credential(
        &self,
        tenant: &str,
        client_id: &str,
        issuer: &str,
        subject: &str,
        audience: &str,
    ) {
        let credential = FederatedCredential {
            issuer: issuer.to_string(),
            subject: subject.to_string(),
            audience: audience.to_string(),
        };
        let mut state = self.shared.lock();
        state
            .apps
            .entry((tenant.to_string(), client_id.to_string()))
            .or_default()
            .federated
            .push(credential);
    }

    /// A certificate credential: an RS256 client assertion whose `x5t` is this certificate's
    /// SHA-1 thumbprint and whose signature verifies with its public key is accepted.
    pub fn add_client_certificate(&self, tenant: &str, client_id: &str, cert_der: &[u8]) {
        self.shared
            .lock()
            .apps
            .entry((tenant.to_string(), client_id.to_string()))
            .or_default()
            .certificates
            .push(cert_der.to_vec());
    }

    /// A managed identity on the node: `None` is the system-assigned one.
    pub fn add_managed_identity(&self, client_id: Option<&str>) {
        self.shared
            .lock()
            .managed_identities
            .insert(client_id.unwrap_or(SYSTEM_IDENTITY).to_string());
    }

    /// aad-pod-identity: the pod `namespace/name` is bound to this client id.
    pub fn add_pod_identity(&self, namespace: &str, pod: &str, client_id: &str) {
        self.shared.lock().pods.insert(
            (namespace.to_string(), pod.to_string()),
            client_id.to_string(),
        );
    }

    /// Grants an identity (client id; `"system"` for the system-assigned MI) access to a vault.
    /// Tokens of identities without access get 403 from Key Vault.
    pub fn grant(&self, vault: &str, client_id: &str) {
        self.shared
            .lock()
            .grants
            .entry(vault.to_ascii_lowercase())
            .or_default()
            .insert(client_id.to_string());
    }

    /// The vault demands tokens for `resource` (e.g. `https://azure.net`) and names it in its
    /// challenge, instead of `https://<its DNS suffix>`.
    pub fn set_vault_resource(&self, vault: &str, resource: &str) {
        self.shared.lock().vault_resources.insert(
            vault.to_ascii_lowercase(),
            resource.trim_end_matches('/').to_string(),
        );
    }

    /// Key Vault admits at most `capacity` requests per `window` (counted from now); beyond it, it
    /// answers 429 with `Retry-After` to the end of the window. `None` lifts the limit.
    pub fn set_rate_limit(&self, limit: Option<(u64, Duration)>) {
        self.shared.lock().rate_limit = limit.map(|(capacity, window)| RateLimit {
            capacity,
            window,
            started: Instant::now(),
            per_window: Vec::new(),
            throttled: 0,
        });
    }

    /// Requests per window and 429s since [`Self::set_rate_limit`].
    pub fn rate_stats(&self) -> RateStats {
        self.shared
            .lock()
            .rate_limit
            .as_ref()
            .map(|r| RateStats {
                per_window: r.per_window.clone(),
                throttled: r.throttled,
            })
            .unwrap_or_default()
    }

    /// Access-token lifetime the fake issues (default 1 h).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().token_lifetime = lifetime;
    }

    /// Key Vault rejects every token issued so far with 401 (as for a revoked token).
    pub fn revoke_tokens(&self) {
        self.shared
            .lock()
            .tokens
            .values_mut()
            .for_each(|t| t.revoked = true);
    }

    // ---- faults and observation ----

    pub fn inject(&self, mut fault: Fault) {
        let left = *fault.count_mut();
        if left > 0 {
            self.shared.lock().faults.push(PendingFault { fault, left });
        }
    }

    /// Drops every fault not yet consumed and stops the fault rate (the outage is over).
    pub fn clear_faults(&self) {
        let mut state = self.shared.lock();
        state.faults.clear();
        state.keyvault_fault_every = 0;
    }

    /// From now on every `n`th Key Vault request meets a fault, in turn a 503, a 429 with
    /// `Retry-After: 1` and a connection reset (`n = 10` is a 10 % fault rate; 0 turns it off).
    pub fn set_keyvault_fault_every(&self, n: u64) {
        let mut state = self.shared.lock();
        state.keyvault_fault_every = n;
        state.keyvault_seen = 0;
    }

    pub fn counts(&self) -> Counts {
        self.shared.lock().counts
    }

    pub fn reset_counts(&self) {
        self.shared.lock().counts = Counts::default();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the recorded requests (long benchmark runs would otherwise keep every one).
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Every access token, client assertion and client secret the fake has seen or issued, for
    /// tests that check logs and errors never contain them.
    pub fn sensitive_strings(&self) -> Vec<String> {
        self.shared.lock().sensitive.clone()
    }
}

impl Drop for FakeAzure {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.server.abort();
    }
}

/// An unsigned service-account JWT (`alg: none`) with these claims, as kubelet would mint for the
/// CSI driver's `tokenRequests`; `exp` is Unix seconds.
pub fn service_account_token(
    issuer: &str,
    namespace: &str,
    service_account: &str,
    audience: &str,
    exp: i64,
) -> String {
    let header = serde_json::json!({ "alg": "none", "typ": "JWT" });
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
        "aud": audience,
        "exp": exp,
        "iat": unix_now(),
        "nbf": unix_now(),
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": { "name": service_account, "uid": "00000000-0000-4000-8000-00000000000a" },
        },
    });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The `csi.storage.k8s.io/serviceAccount.tokens` attribute value for these (audience, token) pairs.
/// `expirationTimestamp` is the token's `exp` claim when it has one, else one hour from now.
pub fn service_account_tokens_attribute(tokens: &[(&str, &str)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .map(|(audience, token)| {
            let exp = identity::jwt_claims(token)
                .and_then(|c| c.get("exp").and_then(serde_json::Value::as_i64));
            let expiration = rfc3339(exp.unwrap_or_else(|| unix_now() + 3600));
            (
                audience.to_string(),
                serde_json::json!({ "token": token, "expirationTimestamp": expiration }),
            )
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// 32 random bytes, base64url: opaque like an Entra access token.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("fake.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `https://vault.azure.net/.default` and `https://vault.azure.net/` → `https://vault.azure.net`.
fn normalize_resource(resource: &str) -> String {
    resource
        .strip_suffix("/.default")
        .unwrap_or(resource)
        .trim_end_matches('/')
        .to_string()
}
