//! Identity: from a mount's [`IdentityRequest`] to a reusable Entra ID credential.
//!
//! Credentials (and the access tokens they cache) live across mounts in a bounded cache keyed by an
//! [`IdentityKey`] that names the workload whose identity was proven: cloud, tenant, mode and client
//! id, plus the service account from the presented token's `sub` (workload identity, identity
//! binding), the pod and its UID (pod identity) or a digest of the credential (service principals).
//! No mount can obtain a token cached for another workload: for workload identity a mount must also
//! present a token Entra ID has accepted for the entry (see [`workload`]), since claims are not
//! verified here.
//!
//! Tenant isolation: a credential is built (a `clientcert` parsed on the bounded blocking pool,
//! see [`crate::blocking`]) without holding the cache lock, in a per-identity once-cell, so one
//! identity's slow build never delays another's while concurrent mounts of the same identity share
//! one build. A built credential is *pending* (held only by the mounts using it) until it obtains
//! its first token; only then is it admitted to the bounded cache. Failing mounts therefore leave
//! nothing cached and cannot evict proven identities. [`ResolvedIdentity::is_proven`] tells other
//! caches (Key Vault clients) the same.
//!
//! Modes: workload identity and service principal with a secret or a client certificate (Entra
//! ID; certificate assertions are signed here, without OpenSSL), VM managed identity (IMDS), pod
//! identity (NMI), AKS identity binding (`useAzureTokenProxy`: workload identity's exchange sent
//! through the cluster's token proxy, see [`identity_binding`]). Every credential is built from the
//! [`Transport`]'s client options with the cloud's authority host, and wrapped in a
//! [`cache::CachingCredential`]. Transient faults of Entra ID, IMDS and NMI are retried within
//! the mount's deadline, in one place ([`retry`]); every failure is an [`AuthError`] with an
//! [`AuthErrorKind`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::ClientOptions;
use azure_core::time::OffsetDateTime;

use crate::request::{CloudEnvironment, IdentityRequest, MountRequest};
use crate::sensitive::Sensitive;
use crate::text::echo;
use crate::transport::Transport;

mod cache;
mod certificate;
mod errors;
pub mod identity_binding;
mod key;
mod managed;
mod pod_identity;
mod retry;
mod service_principal;
mod store;
mod workload;

pub use certificate::MAX_CLIENTCERT_BYTES;
pub use errors::error_kind_in;
pub use retry::{DEFAULT_AUTH_MAX_RETRIES, within_deadline};

use cache::{CachingCredential, CredentialFactory};
use errors::{auth_error, misconfigured, scrub};
use identity_binding::TokenProxy;
use key::identity_key;
use store::LruStore;
use workload::WorkloadState;

/// Identity of a cached credential. Displays without secrets (digests only).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdentityKey {
    pub cloud: String,
    pub tenant_id: String,
    /// [`crate::request::IdentityRequest::mode_name`].
    pub mode: &'static str,
    pub client_id: String,
    /// Who proved the identity: `system:serviceaccount:<ns>:<name>`, `pod:<ns>/<name>/<uid>`,
    /// `sha256:<hex>` of a service-principal credential, or empty for node identities.
    pub subject: String,
}

/// `<mode> client=<id> tenant=<id> subject=<subject>`, for logs (the subject is never a secret;
/// every part is cut by [`crate::text::echo`]).
impl std::fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} client={} tenant={} subject={}",
            self.mode,
            echo(&self.client_id),
            echo(&self.tenant_id),
            echo(&self.subject)
        )
    }
}

/// Default of `--max-cached-identities`.
pub const DEFAULT_MAX_IDENTITIES: usize = 1024;

/// Options from flags.
#[derive(Clone, Debug)]
pub struct AuthOptions {
    /// `--token-proxy-url` (identity binding).
    pub token_proxy_url: Option<String>,
    /// `--sni-name` (identity binding).
    pub sni_name: Option<String>,
    /// `--token-proxy-ca-file` (identity binding).
    pub token_proxy_ca_file: Option<std::path::PathBuf>,
    /// Most cached (proven) identities; least recently used go first.
    pub max_identities: usize,
    /// Identities unused this long are dropped.
    pub idle_ttl: std::time::Duration,
    /// `--auth-max-retries`: retries of one token request after a transient fault (see
    /// [`retry`]), within the mount's deadline.
    pub max_retries: u32,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            token_proxy_url: None,
            sni_name: None,
            token_proxy_ca_file: None,
            max_identities: DEFAULT_MAX_IDENTITIES,
            idle_ttl: std::time::Duration::from_secs(3600),
            max_retries: DEFAULT_AUTH_MAX_RETRIES,
        }
    }
}

/// Drops the access tokens cached for an identity, so the next `get_token` fetches a new one.
pub type Invalidator = Arc<dyn Fn() + Send + Sync>;

/// A credential resolved for one mount.
#[derive(Clone)]
pub struct ResolvedIdentity {
    pub key: IdentityKey,
    pub credential: Arc<dyn TokenCredential>,
    invalidator: Option<Invalidator>,
    standing: Standing,
}

/// Whether a resolved identity may be kept by caches that outlive the mount.
#[derive(Clone)]
enum Standing {
    /// Built outside [`Identities`] (tests, tools): the caller vouches for it.
    External,
    /// From [`Identities`]: proven once its credential obtained a token. Holds the identity's
    /// build (shared with concurrent mounts) for as long as the mount uses it.
    Cached {
        credential: Arc<CachingCredential>,
        _build: Option<Arc<Build>>,
    },
    /// Never cached (pod identity without a pod UID).
    Uncached,
}

impl std::fmt::Debug for ResolvedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedIdentity")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ResolvedIdentity {
    /// An identity built by the caller (not by [`Identities`]); it counts as proven.
    pub fn new(key: IdentityKey, credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            key,
            credential,
            invalidator: None,
            standing: Standing::External,
        }
    }

    /// Adds what [`Self::invalidate_token`] calls.
    pub fn with_invalidator(mut self, invalidator: Invalidator) -> Self {
        self.invalidator = Some(invalidator);
        self
    }

    /// Called when Key Vault rejects a token (401 on an authenticated request): the token is
    /// dropped from every cache so it is never reused.
    pub fn invalidate_token(&self) {
        if let Some(invalidate) = &self.invalidator {
            invalidate();
        }
    }

    /// Whether caches that outlive the mount (Key Vault clients) may keep this identity: it has
    /// obtained a token at least once. An identity that never did (wrong secret, unknown tenant)
    /// must not occupy, or evict, cache slots.
    pub fn is_proven(&self) -> bool {
        match &self.standing {
            Standing::External => true,
            Standing::Cached { credential, .. } => credential.is_proven(),
            Standing::Uncached => false,
        }
    }
}

/// Why no credential or token could be had: the message (`.0`) names the mode and the problem,
/// never secret material; the kind (`.1`) says whose fault it is (see [`AuthErrorKind`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String, pub AuthErrorKind);

/// Whose fault an [`AuthError`] is; `crate::error` maps each to one gRPC code and result class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthErrorKind {
    /// The identity service refused the credential (wrong secret, unknown client, no federated
    /// credential, unbound pod), or what the mount presented is unusable (a bad token or
    /// certificate). `UNAUTHENTICATED`.
    Rejected,
    /// The identity service (Entra ID, IMDS, NMI, a token proxy) is unreachable, failing or
    /// throttling, after the retries the mount's deadline allowed. `UNAVAILABLE`.
    Unavailable,
    /// The request or the cluster is set up wrong (missing clientID, no pod info, bad authority
    /// host). `INVALID_ARGUMENT`, as the request parser answers the problems it catches first.
    Misconfigured,
    /// The identity mode is not supported by this build. `UNIMPLEMENTED`.
    Unsupported,
}

impl AuthError {
    pub fn new(kind: AuthErrorKind, message: impl Into<String>) -> Self {
        Self(message.into(), kind)
    }

    pub fn kind(&self) -> AuthErrorKind {
        self.1
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

/// The cross-mount credential cache.
pub struct Identities {
    /// Entra ID's token endpoint, IMDS and NMI, each with its transient faults retried.
    entra: Transport,
    imds: Transport,
    nmi: Transport,
    options: AuthOptions,
    store: Arc<Mutex<Store>>,
    /// Identity binding's proxy, or why the flags do not describe one.
    token_proxy: Result<Arc<TokenProxy>, AuthError>,
}

impl AuthOptions {
    /// Checks the identity-binding flags (`--token-proxy-url`, `--sni-name`), for start-up.
    pub fn check_token_proxy(&self) -> Result<(), String> {
        self.token_proxy_options().map(|_| ())
    }

    fn token_proxy_options(&self) -> Result<identity_binding::TokenProxyOptions, String> {
        identity_binding::token_proxy_options(
            self.token_proxy_url.as_deref(),
            self.sni_name.as_deref(),
            self.token_proxy_ca_file.as_deref(),
        )
    }
}

/// Proven entries, and the builds of identities not proven yet.
struct Store {
    admitted: LruStore<IdentityKey, Entry>,
    /// One build per identity while any mount holds it; dead references are pruned on insert.
    pending: HashMap<IdentityKey, Weak<Build>>,
}

/// One identity's credential build: run once, outside the cache lock, shared by the mounts that
/// ask for the identity while it runs or before it is proven. A failed build is shared by the
/// mounts waiting for it; the next mount after them builds again.
#[derive(Default)]
struct Build {
    outcome: tokio::sync::OnceCell<Result<Entry, AuthError>>,
}

/// A cached identity: its caching credential, plus the accepted-token record for workload identity.
#[derive(Clone)]
struct Entry {
    credential: Arc<CachingCredential>,
    workload: Option<Arc<WorkloadState>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No lock taken here: formatting must not wait on (or deadlock with) a resolve.
        f.debug_struct("Identities")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Identities {
    pub fn new(transport: Transport, options: AuthOptions) -> Self {
        let store = Store {
            admitted: LruStore::new(options.max_identities, options.idle_ttl),
            pending: HashMap::new(),
        };
        let token_proxy = options
            .token_proxy_options()
            .map(|o| Arc::new(TokenProxy::new(transport.clone(), o)))
            .map_err(|e| auth_error(identity_binding::MODE, e));
        let endpoint = |e| retry::retrying(&transport, e, options.max_retries);
        Self {
            entra: endpoint(retry::Endpoint::Entra),
            imds: endpoint(retry::Endpoint::Imds),
            nmi: endpoint(retry::Endpoint::Nmi),
            options,
            store: Arc::new(Mutex::new(store)),
            token_proxy,
        }
    }

    /// Number of (proven) identities cached now (idle ones already dropped).
    pub fn cached(&self) -> usize {
        self.store().admitted.len()
    }

    /// Number of identities built or being built and not proven yet, still held by a mount.
    pub fn pending(&self) -> usize {
        self.store()
            .pending
            .values()
            .filter(|b| b.strong_count() > 0)
            .count()
    }

    /// The credential for this mount's identity, reused when the same workload mounts again.
    /// Async because a `clientcert` is parsed on the blocking pool, and a presented
    /// service-account token not yet accepted by Entra ID is exchanged (proven) before this mount
    /// may share the identity's cached access token.
    pub async fn resolve(&self, request: &MountRequest) -> Result<ResolvedIdentity, AuthError> {
        let mode = request.identity.mode_name();
        let client_options = entra_client_options(&self.entra, &request.cloud);
        match &request.identity {
            IdentityRequest::WorkloadIdentity {
                client_id,
                service_account_token,
            } => {
                self.resolve_workload(request, client_options, client_id, service_account_token)
                    .await
            }
            IdentityRequest::ServicePrincipalSecret {
                client_id,
                client_secret,
            } => {
                let key = identity_key(
                    request,
                    client_id,
                    key::credential_subject(client_id, client_secret),
                );
                let factory = service_principal::client_secret_factory(
                    client_options,
                    &request.tenant_id,
                    client_id,
                    client_secret,
                );
                self.plain(key, async { Ok(factory) }, vec![client_secret.clone()])
                    .await
            }
            IdentityRequest::VmManagedIdentity {
                user_assigned_identity_id,
            } => {
                let id = user_assigned_identity_id.as_deref();
                let key = identity_key(request, id.unwrap_or_default(), String::new());
                let factory = managed::managed_identity_factory(&self.imds, id);
                self.plain(key, async { Ok(factory) }, vec![]).await
            }
            IdentityRequest::PodIdentity => {
                let pod = &request.pod;
                if pod.name.is_empty() || pod.namespace.is_empty() {
                    return Err(misconfigured(
                        mode,
                        "pod information is not available; deploy a CSIDriver object to set podInfoOnMount: true",
                    ));
                }
                let uid = pod.uid.as_deref().filter(|u| !u.is_empty());
                let key = identity_key(
                    request,
                    "",
                    key::pod_subject(&pod.namespace, &pod.name, uid),
                );
                let resource = request.cloud.key_vault_resource();
                let factory =
                    pod_identity::nmi_factory(&self.nmi, &pod.namespace, &pod.name, resource);
                if uid.is_none() {
                    // Without the UID a recreated pod of the same name cannot be told apart:
                    // its NMI token is not kept beyond this mount.
                    let credential = Arc::new(validated(mode, factory, vec![])?);
                    let entry = Entry {
                        credential,
                        workload: None,
                    };
                    return Ok(resolved(key, &entry, Standing::Uncached));
                }
                self.plain(key, async { Ok(factory) }, vec![]).await
            }
            IdentityRequest::ServicePrincipalCertificate {
                client_id,
                certificate,
            } => {
                let key = identity_key(
                    request,
                    client_id,
                    key::credential_subject(client_id, certificate),
                );
                // Parsed (and the key checked) only when the identity is not cached yet, on the
                // bounded blocking pool: a PFX's key derivation or a large PEM never runs on the
                // runtime, nor under a lock other identities need.
                let build = async {
                    let audience = service_principal::token_endpoint(
                        &request.cloud.active_directory_endpoint,
                        &request.tenant_id,
                    )?;
                    let parsed = service_principal::parse_certificate_blocking(certificate).await?;
                    Ok(service_principal::client_certificate_factory(
                        client_options,
                        &request.tenant_id,
                        client_id,
                        audience,
                        parsed,
                    ))
                };
                self.plain(key, build, vec![certificate.clone()]).await
            }
            IdentityRequest::AzureTokenProxy {
                client_id,
                service_account_token,
            } => {
                let proxy = self.token_proxy.as_ref().map_err(Clone::clone)?;
                if !client_id.is_empty() && !service_account_token.is_empty() {
                    identity_binding::check_audience(service_account_token)?;
                }
                let client_options = proxy.client_options(client_options, self.options.max_retries);
                self.resolve_workload(request, client_options, client_id, service_account_token)
                    .await
            }
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// The admitted entry for `key`, or the outcome of its (shared) build. The cache lock is held
    /// only to look up or register the build, never while it runs.
    async fn entry<F>(&self, key: &IdentityKey, build: F) -> Result<(Entry, Standing), AuthError>
    where
        F: Future<Output = Result<Entry, AuthError>>,
    {
        let flight = {
            let mut store = self.store();
            if let Some(entry) = store.admitted.get(key) {
                let standing = Standing::Cached {
                    credential: entry.credential.clone(),
                    _build: None,
                };
                return Ok((entry, standing));
            }
            match store.pending.get(key).and_then(Weak::upgrade) {
                Some(flight) => flight,
                None => {
                    let flight = Arc::new(Build::default());
                    store.pending.retain(|_, b| b.strong_count() > 0);
                    store.pending.insert(key.clone(), Arc::downgrade(&flight));
                    flight
                }
            }
        };
        let outcome = flight
            .outcome
            .get_or_init(|| async {
                let result = build.await;
                if let Ok(entry) = &result {
                    entry
                        .credential
                        .on_first_token(admission(&self.store, key, entry));
                }
                result
            })
            .await
            .clone();
        let entry = outcome?;
        let standing = Standing::Cached {
            credential: entry.credential.clone(),
            _build: Some(flight),
        };
        Ok((entry, standing))
    }

    /// Modes whose key alone proves the identity (the secret is in it, or the node vouches).
    /// `factory` runs only when the identity is neither cached nor being built.
    async fn plain(
        &self,
        key: IdentityKey,
        factory: impl Future<Output = Result<CredentialFactory, AuthError>>,
        sensitive: Vec<Sensitive>,
    ) -> Result<ResolvedIdentity, AuthError> {
        let mode = key.mode;
        let (entry, standing) = self
            .entry(&key, async move {
                let credential = validated(mode, factory.await?, sensitive)?;
                Ok(Entry {
                    credential: Arc::new(credential),
                    workload: None,
                })
            })
            .await?;
        Ok(resolved(key, &entry, standing))
    }

    async fn resolve_workload(
        &self,
        request: &MountRequest,
        client_options: ClientOptions,
        client_id: &str,
        token: &Sensitive,
    ) -> Result<ResolvedIdentity, AuthError> {
        let mode = request.identity.mode_name();
        if client_id.is_empty() || token.is_empty() {
            let audience = match &request.identity {
                IdentityRequest::AzureTokenProxy { .. } => {
                    crate::request::IDENTITY_BINDING_AUDIENCE
                }
                _ => crate::request::WORKLOAD_IDENTITY_AUDIENCE,
            };
            return Err(misconfigured(
                mode,
                format!("clientID and the service account token for {audience} are required"),
            ));
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = workload::check_presented_token(mode, token, &request.pod, now)?;
        let key = identity_key(request, client_id, claims.subject.clone());
        let build = async {
            let state = Arc::new(WorkloadState::default());
            let factory = workload::entry_factory(
                mode,
                client_options.clone(),
                &request.tenant_id,
                client_id,
                state.clone(),
                &claims.subject,
            );
            let credential = validated(mode, factory, vec![])?;
            Ok(Entry {
                credential: Arc::new(credential),
                workload: Some(state),
            })
        };
        let (entry, standing) = self.entry(&key, build).await?;
        let state = entry
            .workload
            .clone()
            .ok_or_else(|| auth_error(mode, "internal: cache entry without token record"))?;
        let presented = workload::Presented {
            mode,
            client_options: &client_options,
            tenant_id: &request.tenant_id,
            client_id,
            token,
            claims: &claims,
            scope: workload::proving_scope(&request.cloud),
        };
        if let Err(error) = workload::prove(&state, &entry.credential, &presented, now).await {
            // An identity no token is accepted for any more is not worth a cache slot.
            if state.is_unproven(now) {
                self.store()
                    .admitted
                    .remove_if(&key, |e| Arc::ptr_eq(&e.credential, &entry.credential));
            }
            return Err(error);
        }
        Ok(resolved(key, &entry, standing))
    }
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    crate::sync::lock(store)
}

/// The hook that admits a built entry to the cache on its first token. Holds the store and the
/// entry weakly: an entry nobody uses any more is not kept alive by its own hook.
fn admission(store: &Arc<Mutex<Store>>, key: &IdentityKey, entry: &Entry) -> cache::ProofHook {
    let store = Arc::downgrade(store);
    let key = key.clone();
    let credential = Arc::downgrade(&entry.credential);
    let workload = entry.workload.as_ref().map(Arc::downgrade);
    Box::new(move || {
        let (Some(store), Some(credential)) = (store.upgrade(), credential.upgrade()) else {
            return;
        };
        let workload = match workload {
            Some(weak) => match weak.upgrade() {
                Some(state) => Some(state),
                None => return,
            },
            None => None,
        };
        let mut store = lock(&store);
        store.admitted.insert(
            key.clone(),
            Entry {
                credential,
                workload,
            },
        );
        store.pending.remove(&key);
        tracing::debug!(identity = %key, "identity proven and cached");
    })
}

/// SDK client options for Entra ID: our (retrying) transport, no SDK retries, the cloud's
/// authority host.
fn entra_client_options(transport: &Transport, cloud: &CloudEnvironment) -> ClientOptions {
    let mut custom = CustomConfiguration::default();
    custom.authority_host = cloud.active_directory_endpoint.clone();
    ClientOptions {
        cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
        ..transport.client_options()
    }
}

/// Builds the credential once to surface bad parameters (tenant, authority host) at resolve time.
fn validated(
    mode: &'static str,
    factory: CredentialFactory,
    sensitive: Vec<Sensitive>,
) -> Result<CachingCredential, AuthError> {
    if let Err(e) = factory() {
        let held: Vec<&Sensitive> = sensitive.iter().collect();
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        return Err(misconfigured(
            mode,
            format!(
                "invalid identity parameters: {}",
                echo(&scrub(&first, &held))
            ),
        ));
    }
    Ok(CachingCredential::new(mode, factory, sensitive))
}

fn resolved(key: IdentityKey, entry: &Entry, standing: Standing) -> ResolvedIdentity {
    let credential = entry.credential.clone();
    let invalidate = credential.clone();
    let mut resolved = ResolvedIdentity::new(key, credential)
        .with_invalidator(Arc::new(move || invalidate.invalidate()));
    resolved.standing = standing;
    resolved
}
