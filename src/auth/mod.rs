//! Identity: from a mount's [`IdentityRequest`] to a reusable Entra ID credential.
//!
//! Credentials (and the access tokens they cache) live across mounts in a bounded cache keyed by an
//! [`IdentityKey`] that names the workload whose identity was proven: cloud, tenant, mode and client
//! id, plus the service account from the presented token's `sub` (workload identity, identity
//! binding), the pod (pod identity) or a digest of the credential (service principals). No mount
//! can obtain a token cached for another workload.
//!
//! TODO(auth helper): implement.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;

use crate::request::MountRequest;
use crate::transport::Transport;

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
        f.debug_struct("ResolvedIdentity").field("key", &self.key).finish_non_exhaustive()
    }
}

impl ResolvedIdentity {
    pub fn new(key: IdentityKey, credential: Arc<dyn TokenCredential>) -> Self {
        Self { key, credential, invalidator: None }
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
#[derive(Debug)]
pub struct Identities {
    #[allow(dead_code)]
    transport: Transport,
    #[allow(dead_code)]
    options: AuthOptions,
}

impl Identities {
    pub fn new(transport: Transport, options: AuthOptions) -> Self {
        Self { transport, options }
    }

    /// The credential for this mount's identity, reused when the same workload mounts again.
    /// Async because a presented service-account token not yet accepted by Entra ID is exchanged
    /// (proven) before this mount may share the identity's cached access token.
    pub async fn resolve(&self, _request: &MountRequest) -> Result<ResolvedIdentity, AuthError> {
        Err(AuthError("identity is not built yet".into()))
    }
}
