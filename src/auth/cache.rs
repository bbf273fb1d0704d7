//! [`CachingCredential`]: the access-token cache in front of every identity.
//!
//! Tokens are cached per scope set and refreshed ahead of expiry; concurrent callers of one scope
//! set share a single acquisition (the others wait for it, or keep using the still-valid token it
//! replaces). The SDK credentials cache tokens too, so the inner credential is built afresh for
//! every acquisition from a [`CredentialFactory`]: [`CachingCredential::invalidate`] then really
//! means "ask Entra ID again", with no hidden cache serving the rejected token.
//!
//! A credential knows whether it was ever *proven* (a token was acquired or seeded); the first
//! proof runs a hook once, which is how the identity cache admits an entry only after a success.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::{Duration, OffsetDateTime};

use super::AuthError;
use super::errors::{describe_token_error, to_core_error};
use crate::sensitive::Sensitive;
use crate::telemetry;

/// Runs once, on the first token a credential obtains.
pub(crate) type ProofHook = Box<dyn FnOnce() + Send>;

/// Builds the credential that performs one real acquisition.
pub(crate) type CredentialFactory =
    Arc<dyn Fn() -> azure_core::Result<Arc<dyn TokenCredential>> + Send + Sync>;

/// Refresh when less than this much of the lifetime is left (also at least [`REFRESH_FRACTION`]).
const REFRESH_AHEAD: Duration = Duration::minutes(5);
/// Refresh when less than 1/10 of the lifetime is left.
const REFRESH_FRACTION: i32 = 10;
/// A cached token closer than this to expiry is never handed out.
const MIN_REMAINING: Duration = Duration::seconds(30);

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    acquired: OffsetDateTime,
}

impl Cached {
    /// Fresh: no refresh needed yet. The margin is a tenth of the lifetime, or five minutes when
    /// that is more, but never more than half the lifetime (short-lived tokens stay cacheable).
    fn is_fresh(&self, now: OffsetDateTime) -> bool {
        let lifetime = self.token.expires_on - self.acquired;
        let tenth = lifetime / REFRESH_FRACTION;
        let margin = tenth.max(REFRESH_AHEAD.min(lifetime / 2));
        self.token.expires_on - now > margin
    }

    /// Usable: not fresh perhaps, but still valid for a request.
    fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.token.expires_on - now > MIN_REMAINING
    }
}

/// One scope set: its token, and the gate that keeps one acquisition in flight.
#[derive(Default)]
struct Slot {
    cached: Mutex<Option<Cached>>,
    gate: tokio::sync::Mutex<()>,
    /// Completed acquisitions, and the error of the last one if it failed: a caller that waited
    /// for a failed acquisition gets its error instead of trying again at once.
    outcome: Mutex<(u64, Option<AuthError>)>,
}

impl Slot {
    fn get(&self) -> Option<Cached> {
        self.cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn put(&self, cached: Option<Cached>) {
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = cached;
    }

    fn outcome(&self) -> (u64, Option<AuthError>) {
        self.outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, error: Option<AuthError>) {
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        *outcome = (outcome.0 + 1, error);
    }
}

/// A `TokenCredential` that caches, refreshes ahead, coalesces and can be invalidated.
pub(crate) struct CachingCredential {
    mode: &'static str,
    factory: CredentialFactory,
    /// Strings scrubbed from error messages (the secrets this identity holds).
    sensitive: Vec<Sensitive>,
    slots: Mutex<HashMap<Vec<String>, Arc<Slot>>>,
    /// Set once a token was obtained; the hook is taken (and run) under the same lock.
    proven: AtomicBool,
    on_proof: Mutex<Option<ProofHook>>,
}

impl fmt::Debug for CachingCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingCredential")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl CachingCredential {
    pub(crate) fn new(
        mode: &'static str,
        factory: CredentialFactory,
        sensitive: Vec<Sensitive>,
    ) -> Self {
        Self {
            mode,
            factory,
            sensitive,
            slots: Mutex::new(HashMap::new()),
            proven: AtomicBool::new(false),
            on_proof: Mutex::new(None),
        }
    }

    /// Whether a token was ever obtained with this credential.
    pub(crate) fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Acquire)
    }

    /// Runs `hook` on the first token obtained, or now if one already was. A second hook
    /// replaces a first one that has not run yet.
    pub(crate) fn on_first_token(&self, hook: ProofHook) {
        let mut slot = self.on_proof.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_proven() {
            drop(slot);
            hook();
        } else {
            *slot = Some(hook);
        }
    }

    /// Records a token obtained; runs the proof hook the first time (outside every lock).
    fn mark_proven(&self) {
        let hook = {
            let mut slot = self.on_proof.lock().unwrap_or_else(PoisonError::into_inner);
            self.proven.store(true, Ordering::Release);
            slot.take()
        };
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Drops every cached token; the next `get_token` acquires a new one.
    pub(crate) fn invalidate(&self) {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in slots.values() {
            slot.put(None);
        }
        tracing::debug!(mode = self.mode, "cached access tokens invalidated");
    }

    /// Stores a token obtained elsewhere (the exchange that proved a service-account token),
    /// unless the cache already holds one that lives longer.
    pub(crate) fn seed(&self, scopes: &[&str], token: AccessToken, acquired: OffsetDateTime) {
        let slot = self.slot(scopes);
        let mut cached = slot.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if cached
            .as_ref()
            .is_none_or(|c| c.token.expires_on < token.expires_on)
        {
            *cached = Some(Cached { token, acquired });
        }
        drop(cached);
        self.mark_proven();
    }

    fn slot(&self, scopes: &[&str]) -> Arc<Slot> {
        let key: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone()
    }

    /// One real acquisition through a freshly built inner credential.
    async fn acquire(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> Result<Cached, AuthError> {
        let acquired = OffsetDateTime::now_utc();
        let sensitive: Vec<&Sensitive> = self.sensitive.iter().collect();
        let result = match (self.factory)() {
            Ok(credential) => credential.get_token(scopes, options).await,
            Err(e) => Err(e),
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        telemetry::metrics().token_request(self.mode, outcome);
        match result {
            Ok(token) => {
                tracing::debug!(mode = self.mode, expires_on = %token.expires_on, "access token acquired");
                Ok(Cached { token, acquired })
            }
            Err(e) => Err(describe_token_error(self.mode, &e, &sensitive)),
        }
    }
}

#[async_trait::async_trait]
impl TokenCredential for CachingCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let slot = self.slot(scopes);
        let now = OffsetDateTime::now_utc();
        let current = slot.get();
        if let Some(cached) = current.as_ref().filter(|c| c.is_fresh(now)) {
            return Ok(cached.token.clone());
        }
        let (seen, _) = slot.outcome();
        let _gate = match slot.gate.try_lock() {
            Ok(gate) => gate,
            Err(_) => {
                // Someone is refreshing: keep using the current token while it is valid.
                if let Some(cached) = current.filter(|c| c.is_usable(now)) {
                    return Ok(cached.token.clone());
                }
                slot.gate.lock().await
            }
        };
        let now = OffsetDateTime::now_utc();
        if let Some(cached) = slot.get().filter(|c| c.is_fresh(now)) {
            return Ok(cached.token);
        }
        if let (done, Some(error)) = slot.outcome()
            && done != seen
        {
            return Err(to_core_error(error));
        }
        match self.acquire(scopes, options).await {
            Ok(cached) => {
                slot.put(Some(cached.clone()));
                slot.record(None);
                self.mark_proven();
                Ok(cached.token)
            }
            Err(error) => {
                slot.record(Some(error.clone()));
                // Entra ID unavailable: a token that is still valid is better than a failed mount.
                if let Some(cached) = slot
                    .get()
                    .filter(|c| c.is_usable(OffsetDateTime::now_utc()))
                {
                    tracing::warn!(mode = self.mode, %error, "token refresh failed; using the cached token until it expires");
                    return Ok(cached.token);
                }
                Err(to_core_error(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::Secret;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A credential counting its calls and issuing tokens of a fixed lifetime, slowly.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicU32>,
        lifetime: Duration,
        fail: bool,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            if self.fail {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Io,
                    "boom",
                ));
            }
            Ok(AccessToken::new(
                Secret::new(format!("token-{n}")),
                OffsetDateTime::now_utc() + self.lifetime,
            ))
        }
    }

    fn caching(lifetime_secs: i64, fail: bool) -> (Arc<CachingCredential>, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let factory: CredentialFactory = Arc::new(move || {
            Ok(Arc::new(Counting {
                calls: c.clone(),
                lifetime: Duration::seconds(lifetime_secs),
                fail,
            }) as Arc<dyn TokenCredential>)
        });
        (
            Arc::new(CachingCredential::new("test_mode", factory, vec![])),
            calls,
        )
    }

    const SCOPES: &[&str] = &["https://vault.azure.net/.default"];

    #[tokio::test]
    async fn caches_and_coalesces() {
        let (cred, calls) = caching(3600, false);
        let results = futures::future::join_all((0..8).map(|_| cred.get_token(SCOPES, None))).await;
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().unwrap().token.secret() == "token-1")
        );
        cred.get_token(SCOPES, None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cred.get_token(&["other/.default"], None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn invalidate_forces_a_new_acquisition() {
        let (cred, calls) = caching(3600, false);
        cred.get_token(SCOPES, None).await.unwrap();
        cred.invalidate();
        let token = cred.get_token(SCOPES, None).await.unwrap();
        assert_eq!(token.token.secret(), "token-2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refreshes_ahead_of_expiry() {
        // A 1 h token stays fresh until 6 min (a tenth) before expiry; a 100 s token until
        // half of its lifetime is left.
        let now = OffsetDateTime::now_utc();
        let lifetime = |secs| Cached {
            token: AccessToken::new(Secret::new("t"), now + Duration::seconds(secs)),
            acquired: now,
        };
        assert!(lifetime(3600).is_fresh(now + Duration::seconds(3600 - 361)));
        assert!(!lifetime(3600).is_fresh(now + Duration::seconds(3600 - 359)));
        assert!(lifetime(100).is_fresh(now + Duration::seconds(49)));
        assert!(!lifetime(100).is_fresh(now + Duration::seconds(51)));
        let (cred, calls) = caching(20, false);
        cred.get_token(SCOPES, None).await.unwrap();
        cred.get_token(SCOPES, None).await.unwrap();
        // Even a 20 s token is reused while more than half of it is left.
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn concurrent_failures_are_shared_and_named() {
        let (cred, calls) = caching(3600, true);
        let results = futures::future::join_all((0..4).map(|_| cred.get_token(SCOPES, None))).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for r in results {
            let msg = r.unwrap_err().to_string();
            assert_eq!(msg, "test_mode: token request failed: boom");
        }
        // A later call tries again.
        assert!(cred.get_token(SCOPES, None).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_serving_a_still_valid_token() {
        let (cred, calls) = caching(3600, true);
        let now = OffsetDateTime::now_utc();
        // 200 s left of a 1 h token: due for refresh, still valid.
        let old = AccessToken::new(Secret::new("old"), now + Duration::seconds(200));
        cred.seed(SCOPES, old, now - Duration::seconds(3400));
        assert_eq!(
            cred.get_token(SCOPES, None).await.unwrap().token.secret(),
            "old"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_proof_hook_runs_once_on_the_first_token_only() {
        let (cred, _) = caching(3600, true);
        let runs = Arc::new(AtomicU32::new(0));
        let hook = |runs: &Arc<AtomicU32>| -> ProofHook {
            let runs = runs.clone();
            Box::new(move || {
                runs.fetch_add(1, Ordering::SeqCst);
            })
        };
        cred.on_first_token(hook(&runs));
        assert!(cred.get_token(SCOPES, None).await.is_err());
        assert!(!cred.is_proven());
        assert_eq!(runs.load(Ordering::SeqCst), 0, "a failure proves nothing");
        let now = OffsetDateTime::now_utc();
        cred.seed(
            SCOPES,
            AccessToken::new(Secret::new("t"), now + Duration::hours(1)),
            now,
        );
        assert!(cred.is_proven());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        cred.seed(
            SCOPES,
            AccessToken::new(Secret::new("u"), now + Duration::hours(2)),
            now,
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // A hook set after the proof runs at once.
        cred.on_first_token(hook(&runs));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let (ok, _) = caching(3600, false);
        ok.on_first_token(hook(&runs));
        ok.get_token(SCOPES, None).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn seed_keeps_the_longer_lived_token() {
        let (cred, calls) = caching(3600, false);
        let now = OffsetDateTime::now_utc();
        cred.seed(
            SCOPES,
            AccessToken::new(Secret::new("seeded"), now + Duration::hours(1)),
            now,
        );
        cred.seed(
            SCOPES,
            AccessToken::new(Secret::new("shorter"), now + Duration::minutes(30)),
            now,
        );
        assert_eq!(
            cred.get_token(SCOPES, None).await.unwrap().token.secret(),
            "seeded"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
