//! Key Vault access: clients reused across mounts, explicit deadlines, and throttling handled
//! with `Retry-After` and a per-vault back-off.
//!
//! One [`VaultClient`] per (identity, vault) keeps the SDK's secret/key/certificate clients, with
//! their cached token and pooled connections, alive between mounts. A vault's token scope is
//! known before its first request when its URL comes from the trusted cloud configuration, and
//! is shared across identities once any of them met the vault's challenge (`scope`).
//! [`VaultClients`] holds them in a bounded LRU cache. Every call ends by its deadline; transient
//! failures are retried with jittered back-off, throttling honours `Retry-After` and slows every
//! caller of the throttled vault down together; identical concurrent fetches share one request.
//!
//! Every response body is bounded as it is read ([`MAX_RESPONSE_BODY_BYTES`]).
//!
//! Submodules: `client` (SDK clients and the retry loop), `errors` (classifying SDK errors),
//! `exchange_metrics` (a per-request metrics policy), `body_limit` (the response-body cap),
//! `scope` (pre-authorised first requests), `throttle` (per-vault back-off), `coalesce` (single-flight, TTL
//! cache).

mod body_limit;
mod client;
pub mod coalesce;
mod errors;
mod exchange_metrics;

mod scope;
mod throttle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::{IdentityKey, ResolvedIdentity};
use crate::request::CloudEnvironment;
use crate::transport::Transport;

pub use body_limit::MAX_RESPONSE_BODY_BYTES;
pub use client::VaultClient;

/// A fetched value with the Key Vault version id it came from (last segment of `id`/`kid`).
#[derive(Clone, Debug)]
pub struct Fetched<T> {
    pub value: T,
    pub version: String,
}

/// One entry of a version listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: String,
    /// Unix seconds; `None` sorts as the epoch (upstream).
    pub created: Option<i64>,
    pub enabled: bool,
}

/// Limits from flags.
#[derive(Clone, Debug)]
pub struct KeyVaultOptions {
    /// Most attempts per Key Vault call (first try included).
    pub max_attempts: u32,
    /// Cached (identity, vault) clients; least recently used go first.
    pub max_clients: usize,
    /// How long a fetched object is served again without asking Key Vault (per identity and
    /// vault); zero turns the cache off.
    pub cache_ttl: Duration,
    /// Largest response body read per HTTP exchange ([`MAX_RESPONSE_BODY_BYTES`] by default).
    pub max_response_body_bytes: usize,
    /// Most Key Vault requests in flight across all clients, i.e. all mounts
    /// ([`DEFAULT_MAX_CONCURRENT_REQUESTS`] by default); shared first come, first served.
    pub max_concurrent_requests: usize,
    /// Learn every client's scope from the vault's own challenge, as upstream and the SDK do: no
    /// pre-authorised first request, no scope shared between identities. For the benchmarks'
    /// upstream-like strategy; not a flag. Default false.
    pub challenge_first: bool,
}

/// Default of `--max-total-concurrent-fetches`: Key Vault requests in flight across all mounts.
/// Twice one mount's own default cap (`--max-concurrent-fetches` 64), so one large mount leaves
/// room for others, while a node's in-flight response bodies stay bounded (each at most
/// [`MAX_RESPONSE_BODY_BYTES`]).
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 128;

impl Default for KeyVaultOptions {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_clients: 1024,
            cache_ttl: Duration::ZERO,
            max_response_body_bytes: MAX_RESPONSE_BODY_BYTES,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            challenge_first: false,
        }
    }
}

/// Why a Key Vault call failed. `kind` is a bounded class for metrics; `message` is for humans
/// and never carries secret values or tokens.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KvError {
    pub kind: KvErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvErrorKind {
    NotFound,
    Forbidden,
    Unauthenticated,
    Throttled,
    DeadlineExceeded,
    Unavailable,
    InvalidResponse,
    Other,
}

/// The cross-mount client cache.
#[derive(Debug)]
pub struct VaultClients {
    shared: client::Shared,
    max_clients: usize,
    clients: Mutex<Lru>,
}

type ClientKey = (IdentityKey, String);

/// Clients with the tick of their last use; the smallest tick is evicted first.
#[derive(Debug, Default)]
struct Lru {
    tick: u64,
    entries: HashMap<ClientKey, (u64, Arc<VaultClient>)>,
}

impl VaultClients {
    pub fn new(transport: Transport, options: KeyVaultOptions) -> Self {
        let shared = client::Shared {
            transport,
            max_attempts: options.max_attempts,
            cache_ttl: options.cache_ttl,
            max_body_bytes: options.max_response_body_bytes.max(1),
            backoff: Arc::default(),
            requests: Arc::new(client::RequestSlots::new(options.max_concurrent_requests)),
            // As many vault hosts as cached clients: the same bound, the same flag.
            scopes: Arc::new(scope::ScopeBook::new(options.max_clients)),
            challenge_first: options.challenge_first,
        };
        Self {
            shared,
            max_clients: options.max_clients.max(1),
            clients: Mutex::default(),
        }
    }

    /// The client for this identity and vault URL, created on first use, and again when the
    /// identity comes with a different credential than the cached client holds. Its first
    /// request is authorised at once only if another identity's client met the vault's challenge.
    pub fn client(
        &self,
        identity: &ResolvedIdentity,
        vault_url: &str,
    ) -> Result<Arc<VaultClient>, KvError> {
        self.client_in(identity, vault_url, None)
    }

    /// As [`Self::client`] for a vault URL built from `cloud` (`https://<keyvaultName>.<Key
    /// Vault DNS suffix>/`): the first request goes out already authorised for the cloud's Key
    /// Vault endpoint, with no challenge round trip, if the host really is one label under the
    /// cloud's DNS suffix. Key Vault's challenge still decides when it names another resource.
    pub fn client_in(
        &self,
        identity: &ResolvedIdentity,
        vault_url: &str,
        cloud: Option<&CloudEnvironment>,
    ) -> Result<Arc<VaultClient>, KvError> {
        let (url, host) = normalize(vault_url)?;
        let trusted = cloud
            .filter(|_| !self.shared.challenge_first)
            .and_then(|cloud| {
                scope::trusted_scope(
                    &host,
                    &cloud.key_vault_endpoint,
                    &cloud.key_vault_dns_suffix,
                )
            });
        if !identity.is_proven() {
            // Not cached until the identity has obtained a token: failing mounts must neither
            // keep their credentials alive here nor evict other identities' clients.
            return Ok(Arc::new(VaultClient::new(
                identity,
                &url,
                host,
                trusted,
                self.shared.clone(),
            )?));
        }
        let key = (identity.key.clone(), url);
        // A panic while holding the lock cannot leave the map inconsistent; keep using it.
        let mut lru = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((used, client)) = lru.entries.get_mut(&key) {
            // A credential the auth module replaced (evicted, failed) is not used any more.
            if client.uses(identity) {
                *used = tick;
                return Ok(client.clone());
            }
        }
        let client = Arc::new(VaultClient::new(
            identity,
            &key.1,
            host,
            trusted,
            self.shared.clone(),
        )?);
        if lru.entries.len() >= self.max_clients && !lru.entries.contains_key(&key) {
            let oldest = lru
                .entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                lru.entries.remove(&oldest);
            }
        }
        lru.entries.insert(key, (tick, client.clone()));
        Ok(client)
    }

    /// Cached clients (for tests and metrics).
    pub fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The vault URL with one trailing slash, and its host.
fn normalize(vault_url: &str) -> Result<(String, String), KvError> {
    let invalid = |why: &str| KvError {
        kind: KvErrorKind::Other,
        message: format!(
            "invalid vault URL {:?}: {}",
            crate::text::echo(vault_url),
            crate::text::echo(why)
        ),
    };
    let url = url::Url::parse(vault_url).map_err(|e| invalid(&e.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| invalid("no host"))?
        .to_ascii_lowercase();
    Ok((format!("{}/", vault_url.trim_end_matches('/')), host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_urls_are_normalized() {
        let (url, host) = normalize("https://MyVault.vault.azure.net").unwrap();
        assert_eq!(
            (url.as_str(), host.as_str()),
            (
                "https://MyVault.vault.azure.net/",
                "myvault.vault.azure.net"
            )
        );
        assert_eq!(normalize("not a url").unwrap_err().kind, KvErrorKind::Other);
    }
}
