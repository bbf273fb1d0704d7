//! Key Vault access: clients reused across mounts, explicit deadlines, and throttling handled
//! with `Retry-After` and a per-vault back-off.
//!
//! One [`VaultClient`] per (identity, vault) keeps the SDK's secret/key/certificate clients, with
//! their learned challenge scope, cached token and pooled connections, alive between mounts.
//!
//! TODO(keyvault helper): implement.

use std::sync::Arc;

use tokio::time::Instant;

use crate::auth::ResolvedIdentity;
use crate::content::{JsonWebKey, SecretBundle};
use crate::request::ObjectType;
use crate::transport::Transport;

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
}

impl Default for KeyVaultOptions {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_clients: 1024,
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
    #[allow(dead_code)]
    transport: Transport,
    #[allow(dead_code)]
    options: KeyVaultOptions,
}

impl VaultClients {
    pub fn new(transport: Transport, options: KeyVaultOptions) -> Self {
        Self { transport, options }
    }

    /// The client for this identity and vault URL, created on first use.
    pub fn client(
        &self,
        _identity: &ResolvedIdentity,
        _vault_url: &str,
    ) -> Result<Arc<VaultClient>, KvError> {
        Err(KvError {
            kind: KvErrorKind::Other,
            message: "Key Vault access is not built yet".into(),
        })
    }
}

/// Secrets, keys and certificates of one vault under one identity.
#[derive(Debug)]
pub struct VaultClient {}

impl VaultClient {
    /// `version == ""` means the current version. Every call ends by `deadline`.
    pub async fn get_secret(
        &self,
        _name: &str,
        _version: &str,
        _deadline: Instant,
    ) -> Result<Fetched<SecretBundle>, KvError> {
        unimplemented!()
    }

    pub async fn get_key(
        &self,
        _name: &str,
        _version: &str,
        _deadline: Instant,
    ) -> Result<Fetched<JsonWebKey>, KvError> {
        unimplemented!()
    }

    /// The certificate's `cer` (DER).
    pub async fn get_certificate(
        &self,
        _name: &str,
        _version: &str,
        _deadline: Instant,
    ) -> Result<Fetched<Vec<u8>>, KvError> {
        unimplemented!()
    }

    /// All versions (all pages), in service order.
    pub async fn list_versions(
        &self,
        _object_type: ObjectType,
        _name: &str,
        _deadline: Instant,
    ) -> Result<Vec<VersionInfo>, KvError> {
        unimplemented!()
    }
}
