//! Identity: from a mount's [`IdentityRequest`] to a reusable Entra ID credential.
//!
//! Credentials (and the access tokens they cache) live across mounts in a bounded cache keyed by an
//! [`IdentityKey`] that names the workload whose identity was proven: cloud, tenant, mode and client
//! id, plus the service account from the presented token's `sub` (workload identity, identity
//! binding), the pod (pod identity) or a digest of the credential (service principals). No mount
//! can obtain a token cached for another workload: for workload identity a mount must also present
//! a token Entra ID has accepted for the entry (see [`workload`]), since claims are not verified here.
//!
//! Modes: workload identity and service principal with a secret or a client certificate (Entra
//! ID; certificate assertions are signed here, without OpenSSL), VM managed identity (IMDS), pod
//! identity (NMI). Identity binding (`useAzureTokenProxy`) is refused with a clear error:
//! azure_identity 1.0 has no AKS token-proxy support. Every credential is built from the
//! [`Transport`]'s client options with the cloud's authority host, and wrapped in a
//! [`cache::CachingCredential`].

use std::sync::{Arc, Mutex, PoisonError};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::ClientOptions;
use azure_core::time::OffsetDateTime;

use crate::request::{CloudEnvironment, IdentityRequest, MountRequest};
use crate::sensitive::Sensitive;
use crate::transport::Transport;

mod cache;
mod certificate;
mod errors;
mod key;
mod managed;
mod pod_identity;
mod service_principal;
mod store;
mod workload;

use cache::{CachingCredential, CredentialFactory};
use errors::{auth_error, scrub};
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
    /// Who proved the identity: `system:serviceaccount:<ns>:<name>`, `pod:<ns>/<name>`,
    /// `sha256:<hex>` of a service-principal credential, or empty for node identities.
    pub subject: String,
}

/// `<mode> client=<id> tenant=<id> subject=<subject>`, for logs (the subject is never a secret).
impl std::fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} client={} tenant={} subject={}",
            self.mode, self.client_id, self.tenant_id, self.subject
        )
    }
}

/// Options from flags.
#[derive(Clone, Debug)]
pub struct AuthOptions {
    /// `--token-proxy-url` (identity binding).
    pub token_proxy_url: Option<String>,
    /// `--sni-name` (identity binding).
    pub sni_name: Option<String>,
    /// Most cached identities; least recently used go first.
    pub max_identities: usize,
    /// Identities unused this long are dropped.
    pub idle_ttl: std::time::Duration,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            token_proxy_url: None,
            sni_name: None,
            max_identities: 1024,
            idle_ttl: std::time::Duration::from_secs(3600),
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
}

impl std::fmt::Debug for ResolvedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedIdentity")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ResolvedIdentity {
    pub fn new(key: IdentityKey, credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            key,
            credential,
            invalidator: None,
        }
    }

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
}

/// Why no credential could be built. Names the mode and the problem, never secret material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// The cross-mount credential cache.
pub struct Identities {
    transport: Transport,
    options: AuthOptions,
    entries: Mutex<LruStore<IdentityKey, Entry>>,
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
        let entries = Mutex::new(LruStore::new(options.max_identities, options.idle_ttl));
        Self {
            transport,
            options,
            entries,
        }
    }

    /// Number of identities cached now (idle ones already dropped).
    pub fn cached(&self) -> usize {
        self.store().len()
    }

    /// The credential for this mount's identity, reused when the same workload mounts again.
    /// Async because a presented service-account token not yet accepted by Entra ID is exchanged
    /// (proven) before this mount may share the identity's cached access token.
    pub async fn resolve(&self, request: &MountRequest) -> Result<ResolvedIdentity, AuthError> {
        let mode = request.identity.mode_name();
        let client_options = entra_client_options(&self.transport, &request.cloud);
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
                self.plain(key, || Ok(factory), vec![client_secret.clone()])
            }
            IdentityRequest::VmManagedIdentity {
                user_assigned_identity_id,
            } => {
                let id = user_assigned_identity_id.as_deref();
                let key = identity_key(request, id.unwrap_or_default(), String::new());
                let factory = managed::managed_identity_factory(&self.transport, id);
                self.plain(key, || Ok(factory), vec![])
            }
            IdentityRequest::PodIdentity => {
                let pod = &request.pod;
                if pod.name.is_empty() || pod.namespace.is_empty() {
                    return Err(auth_error(
                        mode,
                        "pod information is not available; deploy a CSIDriver object to set podInfoOnMount: true",
                    ));
                }
                let key = identity_key(request, "", key::pod_subject(&pod.namespace, &pod.name));
                let resource = request.cloud.key_vault_resource();
                let factory =
                    pod_identity::nmi_factory(&self.transport, &pod.namespace, &pod.name, resource);
                self.plain(key, || Ok(factory), vec![])
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
                // Parsed (and the key checked) only when the identity is not cached yet.
                let build = || {
                    let parsed = service_principal::parse_certificate(certificate)?;
                    let audience = service_principal::token_endpoint(
                        &request.cloud.active_directory_endpoint,
                        &request.tenant_id,
                    )?;
                    Ok(service_principal::client_certificate_factory(
                        client_options,
                        &request.tenant_id,
                        client_id,
                        audience,
                        parsed,
                    ))
                };
                self.plain(key, build, vec![certificate.clone()])
            }
            IdentityRequest::AzureTokenProxy {
                client_id,
                service_account_token,
            } => Err(identity_binding_unsupported(
                mode,
                client_id,
                service_account_token,
            )),
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, LruStore<IdentityKey, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached entry for `key`, or a new one from `build`.
    fn entry(
        &self,
        key: &IdentityKey,
        build: impl FnOnce() -> Result<Entry, AuthError>,
    ) -> Result<Entry, AuthError> {
        let mut store = self.store();
        if let Some(entry) = store.get(key) {
            return Ok(entry);
        }
        let entry = build()?;
        store.insert(key.clone(), entry.clone());
        tracing::debug!(identity = %key, "identity cached");
        Ok(entry)
    }

    /// Modes whose key alone proves the identity (the secret is in it, or the node vouches).
    /// `factory` runs only when the identity is not cached yet.
    fn plain(
        &self,
        key: IdentityKey,
        factory: impl FnOnce() -> Result<CredentialFactory, AuthError>,
        sensitive: Vec<Sensitive>,
    ) -> Result<ResolvedIdentity, AuthError> {
        let entry = self.entry(&key, || {
            let credential = validated(key.mode, factory()?, sensitive)?;
            Ok(Entry {
                credential: Arc::new(credential),
                workload: None,
            })
        })?;
        Ok(resolved(key, &entry))
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
            return Err(auth_error(
                mode,
                "clientID and the service account token for api://AzureADTokenExchange are required",
            ));
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = workload::check_presented_token(token, &request.pod, now)?;
        let key = identity_key(request, client_id, claims.subject.clone());
        let entry = self.entry(&key, || {
            let state = Arc::new(WorkloadState::default());
            let factory = workload::entry_factory(
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
        })?;
        let state = entry
            .workload
            .clone()
            .ok_or_else(|| auth_error(mode, "internal: cache entry without token record"))?;
        let presented = workload::Presented {
            client_options: &client_options,
            tenant_id: &request.tenant_id,
            client_id,
            token,
            claims: &claims,
            scope: workload::proving_scope(&request.cloud),
        };
        if let Err(error) = workload::prove(&state, &entry.credential, &presented, now).await {
            // An identity no token was ever accepted for is not worth a cache slot.
            if state.is_unproven(now) {
                self.store()
                    .remove_if(&key, |e| Arc::ptr_eq(&e.credential, &entry.credential));
            }
            return Err(error);
        }
        Ok(resolved(key, &entry))
    }
}

/// SDK client options for Entra ID: our transport, no SDK retries, the cloud's authority host.
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
        return Err(auth_error(
            mode,
            format!("invalid identity parameters: {}", scrub(&first, &held)),
        ));
    }
    Ok(CachingCredential::new(mode, factory, sensitive))
}

fn resolved(key: IdentityKey, entry: &Entry) -> ResolvedIdentity {
    let credential = entry.credential.clone();
    let invalidate = credential.clone();
    ResolvedIdentity::new(key, credential)
        .with_invalidator(Arc::new(move || invalidate.invalidate()))
}

/// Identity binding needs the AKS token proxy (custom SNI and CA), which azure_identity offers only
/// in its 1.1 betas; those require a different azure_core and cannot be mixed with this build.
fn identity_binding_unsupported(mode: &str, client_id: &str, token: &Sensitive) -> AuthError {
    if client_id.is_empty() {
        return auth_error(mode, "clientID is required for identity binding");
    }
    if token.is_empty() {
        return auth_error(
            mode,
            "service account tokens are required for identity binding",
        );
    }
    auth_error(
        mode,
        "identity binding (useAzureTokenProxy) is not supported by this build; use workload identity \
         (clientID with the api://AzureADTokenExchange service account token)",
    )
}
