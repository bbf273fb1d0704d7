//! One vault under one identity: the three SDK clients, the retry loop around every call, and
//! coalescing of identical fetches.
//!
//! The SDK clients are kept between mounts, so the bearer token and pooled connections are
//! reused: a warm mount costs one GET per object. The vault's token scope comes from the trusted
//! cloud configuration or from a challenge any identity met (`scope`), so a cold client sends
//! its first request already authorised where it can.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use azure_core::credentials::TokenCredential;
use azure_core::time::OffsetDateTime;
use azure_security_keyvault_certificates::models::CertificateClientGetCertificateOptions;
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::models::KeyClientGetKeyOptions;
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use futures::{Stream, TryStreamExt};
use tokio::time::Instant;

use super::body_limit::BodyLimit;
use super::coalesce::{Role, SingleFlight, TtlCache};
use super::errors::{Failure, deadline_exceeded, missing};
use super::exchange_metrics::ExchangeMetrics;
use super::scope::{ScopeBook, ScopeSeed};
use super::throttle::VaultBackoff;
use super::{Fetched, KvError, KvErrorKind, VersionInfo};
use crate::auth::ResolvedIdentity;
use crate::backoff::{backoff, spread_retry, with_jitter};
use crate::content::{JsonWebKey, SecretBundle};
use crate::request::{ObjectType, validate_key_vault_id};
use crate::sensitive::Sensitive;
use crate::telemetry::{CacheOutcome, Outcome, metrics};
use crate::transport::Transport;

/// What a [`VaultClient`] needs besides its identity, shared by every client of a [`super::VaultClients`].
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub transport: Transport,
    pub max_attempts: u32,
    pub cache_ttl: std::time::Duration,
    /// Largest response body read per exchange.
    pub max_body_bytes: usize,
    pub backoff: Arc<VaultBackoff>,
    /// Key Vault requests in flight across every client (all mounts).
    pub requests: Arc<RequestSlots>,
    /// Challenge scopes learned per vault host, shared by every identity.
    pub scopes: Arc<ScopeBook>,
    /// Each client learns its scope from its own challenge only ([`super::KeyVaultOptions`]).
    pub challenge_first: bool,
}

/// The provider-wide bound on Key Vault requests in flight. Waiters are served in arrival order
/// (tokio's semaphore is fair), so a mount with many objects queues behind, not ahead of, a
/// mount that asked earlier. Only the request actually sent takes a slot: callers coalesced onto
/// a fetch in flight wait for it without one.
#[derive(Debug)]
pub(crate) struct RequestSlots {
    limit: usize,
    slots: tokio::sync::Semaphore,
}

impl RequestSlots {
    pub(crate) fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            limit,
            slots: tokio::sync::Semaphore::new(limit),
        }
    }

    /// A slot, or an `Unavailable` error once `deadline` passes without one.
    async fn acquire(
        &self,
        deadline: Instant,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, KvError> {
        match tokio::time::timeout_at(deadline, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(KvError {
                kind: KvErrorKind::Other,
                message: "the Key Vault request limiter is closed".into(),
            }),
            Err(_) => Err(KvError {
                kind: KvErrorKind::Unavailable,
                message: format!(
                    "no Key Vault request slot became free before the mount deadline: the provider is at its limit of {} concurrent Key Vault requests across all mounts (--max-total-concurrent-fetches)",
                    self.limit
                ),
            }),
        }
    }
}

/// Secrets, keys and certificates of one vault under one identity.
#[derive(Debug)]
pub struct VaultClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    vault_url: String,
    /// Vault host: the per-vault back-off key and metric label.
    host: String,
    identity: ResolvedIdentity,
    shared: Shared,
    /// Knows the vault's scope before its first challenge, when it can be known.
    seed: Arc<ScopeSeed>,
    /// Replaced, never mutated, when Key Vault rejects the token the old clients hold.
    sdk: RwLock<Arc<SdkClients>>,
    secrets: Fetcher<SecretBundle>,
    keys: Fetcher<JsonWebKey>,
    certificates: Fetcher<Vec<u8>>,
}

/// The SDK clients of one vault; each keeps its challenge scope and token.
struct SdkClients {
    secrets: SecretClient,
    keys: KeyClient,
    certificates: CertificateClient,
    /// One per object type, in [`ObjectType`] order.
    primers: [Primer; 3],
}

impl SdkClients {
    fn primer(&self, object_type: ObjectType) -> &Primer {
        &self.primers[match object_type {
            ObjectType::Secret => 0,
            ObjectType::Key => 1,
            ObjectType::Cert => 2,
        }]
    }
}

/// A fresh SDK client whose vault scope is not known yet (see [`ScopeSeed`]) learns it from Key
/// Vault's 401 challenge on its first request. Concurrent first requests would each pay that
/// round trip, so the first request of such a client goes alone and the others wait for it
/// (once per client, not per mount). With the scope known, all go at once.
#[derive(Default)]
struct Primer {
    primed: AtomicBool,
    first: tokio::sync::Mutex<()>,
}

impl Primer {
    /// `Some` for the caller that makes the client's first request; release it (after
    /// [`Primer::done`]) when that request is over.
    async fn first_use(
        &self,
        scope_known: impl FnOnce() -> bool,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.primed.load(Ordering::Acquire) || scope_known() {
            return None;
        }
        let guard = self.first.lock().await;
        (!self.primed.load(Ordering::Acquire)).then_some(guard)
    }

    fn done(&self) {
        self.primed.store(true, Ordering::Release);
    }
}

impl std::fmt::Debug for SdkClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SdkClients")
    }
}

impl SdkClients {
    /// Challenge-resource verification stays on (the SDK default); SDK retries are off in
    /// `client_options()`, the loop in [`Inner::call`] owns them. `seed` answers the first,
    /// token-less request locally when the scope is known; each client records its HTTP
    /// exchanges under its object type.
    fn new(
        vault_url: &str,
        credential: Arc<dyn TokenCredential>,
        transport: &Transport,
        max_body_bytes: usize,
        seed: &Arc<ScopeSeed>,
    ) -> Result<Self, KvError> {
        let build_error = |e: azure_core::Error| KvError {
            kind: KvErrorKind::Other,
            message: format!("cannot build a Key Vault client for {vault_url}: {e}"),
        };
        let client_options = |object_type| {
            let mut options = transport.client_options();
            // First after the SDK's auth policy: a local challenge is no exchange.
            options.per_try_policies.push(seed.clone());
            options
                .per_try_policies
                .push(ExchangeMetrics::policy(object_type));
            options
                .per_try_policies
                .push(BodyLimit::policy(max_body_bytes));
            options
        };
        let secrets = SecretClient::new(
            vault_url,
            credential.clone(),
            Some(SecretClientOptions {
                client_options: client_options(ObjectType::Secret),
                ..Default::default()
            }),
        )
        .map_err(build_error)?;
        let keys = KeyClient::new(
            vault_url,
            credential.clone(),
            Some(KeyClientOptions {
                client_options: client_options(ObjectType::Key),
                ..Default::default()
            }),
        )
        .map_err(build_error)?;
        let certificates = CertificateClient::new(
            vault_url,
            credential,
            Some(CertificateClientOptions {
                client_options: client_options(ObjectType::Cert),
                ..Default::default()
            }),
        )
        .map_err(build_error)?;
        Ok(Self {
            secrets,
            keys,
            certificates,
            primers: Default::default(),
        })
    }
}

/// Coalescing and caching of one object type, keyed by (name, version).
struct Fetcher<T> {
    flights: SingleFlight<(String, String), Result<Fetched<T>, KvError>>,
    cache: Arc<TtlCache<(String, String), Fetched<T>>>,
}

impl<T> std::fmt::Debug for Fetcher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("flights", &self.flights)
            .field("cache", &self.cache)
            .finish()
    }
}

impl<T: Clone + Send + Sync + 'static> Fetcher<T> {
    fn new(ttl: std::time::Duration) -> Self {
        Self {
            flights: SingleFlight::default(),
            cache: Arc::new(TtlCache::new(ttl)),
        }
    }

    /// A cached value, the result of an identical fetch in flight, or a new fetch.
    /// A joined fetch that ran out of its starter's (shorter) deadline is started again while
    /// this caller still has time.
    async fn get<Fut>(
        &self,
        name: &str,
        version: &str,
        deadline: Instant,
        fetch: impl Fn(String, String) -> Fut,
    ) -> Result<Fetched<T>, KvError>
    where
        Fut: Future<Output = Result<Fetched<T>, KvError>> + Send + 'static,
    {
        let key = (name.to_string(), version.to_string());
        if let Some(hit) = self.cache.get(&key) {
            metrics().cache(CacheOutcome::Hit);
            return Ok(hit);
        }
        loop {
            let (result, role) = tokio::time::timeout_at(deadline, self.run(&key, &fetch))
                .await
                .map_err(|_| deadline_exceeded("while waiting for Key Vault"))?;
            metrics().cache(match role {
                Role::Joined => CacheOutcome::Coalesced,
                Role::Leader => CacheOutcome::Miss,
            });
            let result = result.unwrap_or_else(|| {
                Err(KvError {
                    kind: KvErrorKind::Other,
                    message: "Key Vault fetch task failed".into(),
                })
            });
            match result {
                Err(e)
                    if role == Role::Joined
                        && e.kind == KvErrorKind::DeadlineExceeded
                        && Instant::now() < deadline => {}
                result => return result,
            }
        }
    }

    /// Joins or starts the fetch of `key`; a successful result is cached.
    async fn run<Fut>(
        &self,
        key: &(String, String),
        fetch: &impl Fn(String, String) -> Fut,
    ) -> (Option<Result<Fetched<T>, KvError>>, Role)
    where
        Fut: Future<Output = Result<Fetched<T>, KvError>> + Send + 'static,
    {
        self.flights
            .run(key.clone(), || {
                let (cache, key) = (self.cache.clone(), key.clone());
                let fetched = fetch(key.0.clone(), key.1.clone());
                async move {
                    let result = fetched.await;
                    // No copy of the value unless the cache keeps it.
                    if let Ok(value) = &result
                        && cache.enabled()
                    {
                        cache.put(key, value.clone());
                    }
                    result
                }
            })
            .await
    }
}

impl VaultClient {
    /// `trusted_scope`: the scope the vault URL's cloud configuration gives (see
    /// [`super::scope::trusted_scope`]), if the URL was built from it.
    pub(crate) fn new(
        identity: &ResolvedIdentity,
        vault_url: &str,
        host: String,
        trusted_scope: Option<String>,
        shared: Shared,
    ) -> Result<Self, KvError> {
        let book = if shared.challenge_first {
            Arc::new(ScopeBook::new(1))
        } else {
            shared.scopes.clone()
        };
        let seed = ScopeSeed::new(host.clone(), trusted_scope, book);
        let sdk = SdkClients::new(
            vault_url,
            identity.credential.clone(),
            &shared.transport,
            shared.max_body_bytes,
            &seed,
        )?;
        let ttl = shared.cache_ttl;
        Ok(Self {
            inner: Arc::new(Inner {
                vault_url: vault_url.to_string(),
                host,
                identity: identity.clone(),
                shared,
                seed,
                sdk: RwLock::new(Arc::new(sdk)),
                secrets: Fetcher::new(ttl),
                keys: Fetcher::new(ttl),
                certificates: Fetcher::new(ttl),
            }),
        })
    }

    /// Whether this client authenticates with `identity`'s credential.
    pub(crate) fn uses(&self, identity: &ResolvedIdentity) -> bool {
        Arc::ptr_eq(&self.inner.identity.credential, &identity.credential)
    }

    /// The vault URL this client talks to.
    pub fn vault_url(&self) -> &str {
        &self.inner.vault_url
    }

    /// `version == ""` means the current version. Every call ends by `deadline`.
    pub async fn get_secret(
        &self,
        name: &str,
        version: &str,
        deadline: Instant,
    ) -> Result<Fetched<SecretBundle>, KvError> {
        check_path(name, version)?;
        let inner = self.inner.clone();
        let fetch = move |n, v| inner.clone().fetch_secret(n, v, deadline);
        self.inner.secrets.get(name, version, deadline, fetch).await
    }

    pub async fn get_key(
        &self,
        name: &str,
        version: &str,
        deadline: Instant,
    ) -> Result<Fetched<JsonWebKey>, KvError> {
        check_path(name, version)?;
        let inner = self.inner.clone();
        let fetch = move |n, v| inner.clone().fetch_key(n, v, deadline);
        self.inner.keys.get(name, version, deadline, fetch).await
    }

    /// The certificate's `cer` (DER).
    pub async fn get_certificate(
        &self,
        name: &str,
        version: &str,
        deadline: Instant,
    ) -> Result<Fetched<Vec<u8>>, KvError> {
        check_path(name, version)?;
        let inner = self.inner.clone();
        let fetch = move |n, v| inner.clone().fetch_certificate(n, v, deadline);
        self.inner
            .certificates
            .get(name, version, deadline, fetch)
            .await
    }

    /// All versions (all pages), in service order. Versions without attributes are reported
    /// disabled (upstream skips them).
    pub async fn list_versions(
        &self,
        object_type: ObjectType,
        name: &str,
        deadline: Instant,
    ) -> Result<Vec<VersionInfo>, KvError> {
        check_path(name, "")?;
        let record = ObjectCall::start(object_type, name);
        let raw = self
            .inner
            .call(object_type, deadline, |sdk| async move {
                match object_type {
                    ObjectType::Secret => {
                        let pager = sdk.secrets.list_secret_properties_versions(name, None)?;
                        collect(pager, |p| {
                            RawVersion::new(p.id, p.attributes.map(|a| (a.created, a.enabled)))
                        })
                        .await
                    }
                    ObjectType::Key => {
                        let pager = sdk.keys.list_key_properties_versions(name, None)?;
                        collect(pager, |p| {
                            RawVersion::new(p.kid, p.attributes.map(|a| (a.created, a.enabled)))
                        })
                        .await
                    }
                    ObjectType::Cert => {
                        let pager = sdk
                            .certificates
                            .list_certificate_properties_versions(name, None)?;
                        collect(pager, |p| {
                            RawVersion::new(p.id, p.attributes.map(|a| (a.created, a.enabled)))
                        })
                        .await
                    }
                }
            })
            .await;
        record.finish(raw.and_then(|raw| raw.into_iter().map(RawVersion::into_info).collect()))
    }
}

/// One Key Vault call for an object, recorded in upstream's `keyvault_request` when dropped:
/// with its outcome, or as abandoned when the caller stopped waiting first.
struct ObjectCall<'a> {
    object_type: ObjectType,
    name: &'a str,
    started: Instant,
    outcome: Outcome,
}

impl<'a> ObjectCall<'a> {
    fn start(object_type: ObjectType, name: &'a str) -> Self {
        Self {
            object_type,
            name,
            started: Instant::now(),
            outcome: Outcome::Abandoned,
        }
    }

    fn finish<T>(mut self, result: Result<T, KvError>) -> Result<T, KvError> {
        self.outcome = Outcome::KeyVault(result.as_ref().err().map(|e| e.kind));
        result
    }
}

impl Drop for ObjectCall<'_> {
    fn drop(&mut self) {
        metrics().keyvault_request(
            self.object_type.as_str(),
            self.name,
            self.outcome,
            self.started.elapsed().as_secs_f64(),
        );
    }
}

impl Inner {
    /// One object GET, recorded in `keyvault_request` (retries included).
    async fn fetch_secret(
        self: Arc<Self>,
        name: String,
        version: String,
        deadline: Instant,
    ) -> Result<Fetched<SecretBundle>, KvError> {
        let record = ObjectCall::start(ObjectType::Secret, &name);
        let result = self
            .clone()
            .fetch_secret_unrecorded(name.clone(), version, deadline)
            .await;
        record.finish(result)
    }

    async fn fetch_secret_unrecorded(
        self: Arc<Self>,
        name: String,
        version: String,
        deadline: Instant,
    ) -> Result<Fetched<SecretBundle>, KvError> {
        let secret = self
            .call(ObjectType::Secret, deadline, |sdk| {
                let options = SecretClientGetSecretOptions {
                    secret_version: pinned(&version),
                    ..Default::default()
                };
                let name = name.clone();
                async move {
                    sdk.secrets
                        .get_secret(&name, Some(options))
                        .await?
                        .into_model()
                }
            })
            .await?;
        let version = version_of(secret.id.as_deref(), "secret id")?;
        let value = secret.value.ok_or_else(|| missing("secret value"))?;
        let bundle = SecretBundle {
            value: Some(Sensitive::new(value)),
            content_type: secret.content_type,
            kid: secret.kid,
        };
        Ok(Fetched {
            value: bundle,
            version,
        })
    }

    /// One object GET, recorded in `keyvault_request` (retries included).
    async fn fetch_key(
        self: Arc<Self>,
        name: String,
        version: String,
        deadline: Instant,
    ) -> Result<Fetched<JsonWebKey>, KvError> {
        let record = ObjectCall::start(ObjectType::Key, &name);
        let result = self
            .clone()
            .fetch_key_unrecorded(name.clone(), version, deadline)
            .await;
        record.finish(result)
    }

    async fn fetch_key_unrecorded(
        self: Arc<Self>,
        name: String,
        version: String,
        deadline: Instant,
    ) -> Result<Fetched<JsonWebKey>, KvError> {
        let key = self
            .call(ObjectType::Key, deadline, |sdk| {
                let options = KeyClientGetKeyOptions {
                    key_version: pinned(&version),
                    ..Default::default()
                };
                let name = name.clone();
                async move { sdk.keys.get_key(&name, Some(options)).await?.into_model() }
            })
            .await?;
        let jwk = key.key.ok_or_else(|| missing("key"))?;
        let version = version_of(jwk.kid.as_deref(), "key kid")?;
        let value = JsonWebKey {
            kty: jwk.kty.map(|k| k.to_string()),
            crv: jwk.crv.map(|c| c.to_string()),
            n: jwk.n,
            e: jwk.e,
            x: jwk.x,
            y: jwk.y,
        };
        Ok(Fetched { value, version })
    }

    /// One object GET, recorded in `keyvault_request` (retries included).
    async fn fetch_certificate(
        self: Arc<Self>,
        name: String,
        version: String,
        deadline: Instant,
    ) -> Result<Fetched<Vec<u8>>, KvError> {
        let record = ObjectCall::start(ObjectType::Cert, &name);
        let result = self
            .clone()
            .fetch_certificate_unrecorded(name.clone(), version, deadline)
            .await;
        record.finish(result)
    }

    async fn fetch_certificate_unrecorded(
        self: Arc<Self>,
        name: String,
        version: String,
        deadline: Instant,
    ) -> Result<Fetched<Vec<u8>>, KvError> {
        let cert = self
            .call(ObjectType::Cert, deadline, |sdk| {
                let options = CertificateClientGetCertificateOptions {
                    certificate_version: pinned(&version),
                    ..Default::default()
                };
                let name = name.clone();
                async move {
                    sdk.certificates
                        .get_certificate(&name, Some(options))
                        .await?
                        .into_model()
                }
            })
            .await?;
        let version = version_of(cert.id.as_deref(), "certificate id")?;
        let value = cert.cer.ok_or_else(|| missing("certificate cer"))?;
        Ok(Fetched { value, version })
    }

    /// Runs `op` until it succeeds, fails for good, runs out of attempts or reaches `deadline`.
    /// Waits out the vault's back-off first; a rejected token is replaced once.
    async fn call<T, Fut>(
        &self,
        object_type: ObjectType,
        deadline: Instant,
        op: impl Fn(Arc<SdkClients>) -> Fut,
    ) -> Result<T, KvError>
    where
        Fut: Future<Output = azure_core::Result<T>>,
    {
        let max_attempts = self.shared.max_attempts.max(1);
        let mut attempt = 0;
        let mut token_replaced = false;
        let mut last: Option<Failure> = None;
        loop {
            self.shared.backoff.wait(&self.host, deadline).await?;
            // One of the provider-wide request slots for this attempt (not for the back-off).
            let slot = self.shared.requests.acquire(deadline).await?;
            attempt += 1;
            let sdk = self.sdk();
            let primer = sdk.primer(object_type);
            // A token refreshed during the attempt retries its own faults until `deadline` too.
            let attempt_run = crate::auth::within_deadline(deadline, async {
                let first = primer.first_use(|| self.seed.known().is_some()).await;
                let outcome = op(sdk.clone()).await;
                if first.is_some() {
                    primer.done();
                }
                outcome
            });
            let outcome = tokio::time::timeout_at(deadline, attempt_run).await;
            drop(slot);
            let err = match outcome {
                Err(_) => return Err(timed_out(last.as_ref())),
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) => err,
            };
            let failure = Failure::classify(&err);
            if failure.unauthorized {
                if token_replaced {
                    return Err(failure.rejected_again());
                }
                token_replaced = true;
                attempt -= 1;
                self.replace_token(&sdk)?;
                continue;
            }
            if !failure.retryable || attempt >= max_attempts {
                return Err(failure.exhausted(attempt));
            }
            self.pause(&failure, attempt, deadline).await?;
            last = Some(failure);
        }
    }

    /// Sleeps before the next attempt; throttling also holds back every other caller of the vault.
    async fn pause(
        &self,
        failure: &Failure,
        attempt: u32,
        deadline: Instant,
    ) -> Result<(), KvError> {
        let now = Instant::now();
        let wait = match failure.retry_after {
            // Throttled callers spread over the window after the one that turned them away.
            Some(asked) if failure.throttled => {
                spread_retry(asked, deadline.saturating_duration_since(now))
            }
            Some(asked) => with_jitter(asked),
            None => backoff(attempt),
        };
        let resume = now + wait;
        if failure.throttled {
            metrics().throttled(&self.host);
            // Every other caller of the vault waits for what Key Vault asked, then spreads too.
            let quiet = failure.retry_after.map_or(resume, |asked| now + asked);
            self.shared.backoff.throttle(&self.host, quiet);
        }
        if resume >= deadline {
            return Err(failure.out_of_time());
        }
        metrics().backoff(wait.as_secs_f64());
        tokio::time::sleep_until(resume).await;
        Ok(())
    }

    fn sdk(&self) -> Arc<SdkClients> {
        // Only replaced whole under the lock, so a poisoned lock still holds usable clients.
        self.sdk
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Key Vault rejected the token `used` carried: drop it from the identity's caches and
    /// replace the SDK clients (their auth policy holds it too). Concurrent callers that saw the
    /// same rejection replace them only once.
    fn replace_token(&self, used: &Arc<SdkClients>) -> Result<(), KvError> {
        let mut sdk = self
            .sdk
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if Arc::ptr_eq(&sdk, used) {
            self.identity.invalidate_token();
            *sdk = Arc::new(SdkClients::new(
                &self.vault_url,
                self.identity.credential.clone(),
                &self.shared.transport,
                self.shared.max_body_bytes,
                &self.seed,
            )?);
        }
        Ok(())
    }
}

/// The deadline passed during an attempt; the previous attempt's failure says why it took so long.
fn timed_out(last: Option<&Failure>) -> KvError {
    match last {
        Some(failure) => failure.timed_out(),
        None => deadline_exceeded("while waiting for a Key Vault answer"),
    }
}

/// A version listing entry as the SDK gives it.
struct RawVersion {
    id: Option<String>,
    /// `None` when the entry has no attributes.
    attributes: Option<(Option<OffsetDateTime>, Option<bool>)>,
}

impl RawVersion {
    fn new(id: Option<String>, attributes: Option<(Option<OffsetDateTime>, Option<bool>)>) -> Self {
        Self { id, attributes }
    }

    fn into_info(self) -> Result<VersionInfo, KvError> {
        let version = version_of(self.id.as_deref(), "version id")?;
        let (created, enabled) = match self.attributes {
            Some((created, enabled)) => (
                created.map(OffsetDateTime::unix_timestamp),
                enabled != Some(false),
            ),
            None => (None, false),
        };
        Ok(VersionInfo {
            version,
            created,
            enabled,
        })
    }
}

/// Most versions of one object read from a listing: far above what objectVersionHistory can
/// ask for, low enough that an object with an endless history cannot hold unbounded memory.
pub(super) const MAX_LISTED_VERSIONS: usize = 25_000;

/// Every item of every page, at most [`MAX_LISTED_VERSIONS`].
async fn collect<I>(
    pager: impl Stream<Item = azure_core::Result<I>>,
    to_raw: impl Fn(I) -> RawVersion,
) -> azure_core::Result<Vec<RawVersion>> {
    let mut items = Vec::new();
    let mut pager = std::pin::pin!(pager);
    while let Some(item) = pager.try_next().await? {
        if items.len() >= MAX_LISTED_VERSIONS {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::DataConversion,
                format!("the object has more than {MAX_LISTED_VERSIONS} versions"),
            ));
        }
        items.push(to_raw(item));
    }
    Ok(items)
}

/// The SDK pastes names and versions into the URL path unescaped: only Key Vault's own
/// alphabet (letters, digits, dashes; the rule `request` validates objects with) may pass.
fn check_path(name: &str, version: &str) -> Result<(), KvError> {
    validate_key_vault_id("Key Vault object name", name, false)
        .and_then(|()| validate_key_vault_id("Key Vault object version", version, true))
        .map_err(|message| KvError {
            kind: KvErrorKind::Other,
            message,
        })
}

/// `None` for the current version.
fn pinned(version: &str) -> Option<String> {
    (!version.is_empty()).then(|| version.to_string())
}

/// The version id: last segment of `https://<vault>/<collection>/<name>/<version>`.
fn version_of(id: Option<&str>, field: &str) -> Result<String, KvError> {
    let id = id.ok_or_else(|| missing(field))?;
    let url = url::Url::parse(id).map_err(|_| invalid(field, id))?;
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    match segments.as_slice() {
        [_, _, version, ..] => Ok((*version).to_string()),
        _ => Err(invalid(field, id)),
    }
}

fn invalid(field: &str, id: &str) -> KvError {
    KvError {
        kind: KvErrorKind::InvalidResponse,
        message: format!(
            "Key Vault answer has a malformed {field} {:?}",
            crate::text::echo(id)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_last_segment_of_the_id() {
        let v = version_of(
            Some("https://v.vault.azure.net/secrets/db/0123abc"),
            "secret id",
        )
        .unwrap();
        assert_eq!(v, "0123abc");
        let v = version_of(Some("https://v.vault.azure.net/keys/k/v2/"), "key kid").unwrap();
        assert_eq!(v, "v2");
        for bad in ["https://v.vault.azure.net/secrets/db", "not a url"] {
            let e = version_of(Some(bad), "secret id").unwrap_err();
            assert_eq!(e.kind, KvErrorKind::InvalidResponse);
        }
        assert_eq!(
            version_of(None, "secret id").unwrap_err().message,
            "Key Vault answer has no secret id"
        );
    }

    #[test]
    fn names_and_versions_cannot_escape_the_path() {
        assert!(check_path("db-password", "0123abcd").is_ok());
        assert!(check_path("db", "").is_ok());
        for (name, version) in [
            ("", ""),
            ("a/../keys/b", ""),
            ("a?x=1", ""),
            ("a", "v/1"),
            ("a", "../x"),
        ] {
            let err = check_path(name, version).unwrap_err();
            assert!(
                err.message.starts_with("invalid Key Vault object"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn versions_without_attributes_are_disabled() {
        let info = RawVersion::new(Some("https://v/secrets/s/1".into()), None)
            .into_info()
            .unwrap();
        assert_eq!(
            info,
            VersionInfo {
                version: "1".into(),
                created: None,
                enabled: false
            }
        );
        let created = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let info = RawVersion::new(
            Some("https://v/secrets/s/2".into()),
            Some((Some(created), None)),
        )
        .into_info()
        .unwrap();
        assert_eq!(
            info,
            VersionInfo {
                version: "2".into(),
                created: Some(1_700_000_000),
                enabled: true
            }
        );
        let info = RawVersion::new(
            Some("https://v/secrets/s/3".into()),
            Some((None, Some(false))),
        )
        .into_info()
        .unwrap();
        assert!(!info.enabled);
    }
}
