//! Key Vault access against the in-repo fake over real HTTP: fetches and versions, reuse of
//! clients across calls, retries and throttling, token rejection, coalescing and the TTL cache.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akv_csi_provider::auth::{IdentityKey, ResolvedIdentity};
use akv_csi_provider::keyvault::{
    KeyVaultOptions, KvError, KvErrorKind, VaultClient, VaultClients,
};
use akv_csi_provider::request::ObjectType;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::ClientOptions;
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use support::fake::{FakeAzure, Fault};
use tokio::time::Instant;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const OTHER_CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const CLIENT_SECRET: &str = "sp-secret-value";
const VAULT: &str = "myvault";
const VAULT_URL: &str = "https://myvault.vault.azure.net/";

/// A client-secret credential whose token cache can be dropped, as the auth module's invalidator
/// does: the inner credential (and its cached tokens) is replaced.
#[derive(Debug)]
struct Replaceable {
    client_id: String,
    options: ClientOptions,
    inner: Mutex<Arc<ClientSecretCredential>>,
}

impl Replaceable {
    fn new(fake: &FakeAzure, client_id: &str) -> Arc<Self> {
        let options = fake.transport().client_options();
        let inner = Mutex::new(Self::build(client_id, &options));
        Arc::new(Self {
            client_id: client_id.to_string(),
            options,
            inner,
        })
    }

    fn build(client_id: &str, options: &ClientOptions) -> Arc<ClientSecretCredential> {
        let options = ClientSecretCredentialOptions {
            client_options: options.clone(),
        };
        ClientSecretCredential::new(
            TENANT,
            client_id.to_string(),
            Secret::new(CLIENT_SECRET),
            Some(options),
        )
        .expect("valid test credential")
    }

    fn replace(&self) {
        *self.inner.lock().unwrap() = Self::build(&self.client_id, &self.options);
    }
}

#[async_trait::async_trait]
impl TokenCredential for Replaceable {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let inner = self.inner.lock().unwrap().clone();
        inner.get_token(scopes, options).await
    }
}

fn identity(fake: &FakeAzure, client_id: &str) -> ResolvedIdentity {
    let credential = Replaceable::new(fake, client_id);
    let key = IdentityKey {
        cloud: "AzurePublicCloud".into(),
        tenant_id: TENANT.into(),
        mode: "service-principal",
        client_id: client_id.into(),
        subject: format!("sha256:{client_id}"),
    };
    let invalidate = credential.clone();
    ResolvedIdentity::new(key, credential).with_invalidator(Arc::new(move || invalidate.replace()))
}

fn jwk() -> serde_json::Value {
    serde_json::json!({ "kty": "RSA", "n": "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw", "e": "AQAB" })
}

struct Setup {
    fake: FakeAzure,
    clients: VaultClients,
    /// One identity per client id, as the auth module's cache hands out.
    identities: Mutex<HashMap<String, ResolvedIdentity>>,
}

impl Setup {
    async fn new(options: KeyVaultOptions) -> Self {
        Self::on(FakeAzure::start().await, options)
    }

    fn on(fake: FakeAzure, options: KeyVaultOptions) -> Self {
        fake.add_client_secret(TENANT, CLIENT, CLIENT_SECRET);
        fake.add_client_secret(TENANT, OTHER_CLIENT, CLIENT_SECRET);
        fake.grant(VAULT, CLIENT);
        fake.grant(VAULT, OTHER_CLIENT);
        fake.add_secret(
            VAULT,
            "db",
            "v1",
            "hunter1",
            None,
            None,
            1_700_000_000,
            true,
        );
        fake.add_secret(
            VAULT,
            "db",
            "v2",
            "hunter2",
            Some("text/plain"),
            None,
            1_700_000_100,
            true,
        );
        fake.add_secret(
            VAULT,
            "db",
            "v3",
            "hunter3",
            None,
            None,
            1_700_000_200,
            false,
        );
        for i in 0..5 {
            fake.add_secret(
                VAULT,
                &format!("s{i}"),
                "v1",
                &format!("value-{i}"),
                None,
                None,
                1_700_000_000,
                true,
            );
        }
        fake.add_key(VAULT, "k", "k1", jwk(), 1_700_000_000, true);
        fake.add_key(VAULT, "k", "k2", jwk(), 1_700_000_100, true);
        fake.add_certificate(VAULT, "c", "c1", b"der-one", 1_700_000_000, true);
        fake.add_certificate(VAULT, "c", "c2", b"der-two", 1_700_000_100, true);
        let clients = VaultClients::new(fake.transport(), options);
        Self {
            fake,
            clients,
            identities: Mutex::default(),
        }
    }

    async fn default() -> Self {
        Self::new(KeyVaultOptions::default()).await
    }

    fn identity(&self, client_id: &str) -> ResolvedIdentity {
        let mut identities = self.identities.lock().unwrap();
        let identity = identities
            .entry(client_id.to_string())
            .or_insert_with(|| identity(&self.fake, client_id));
        identity.clone()
    }

    fn client(&self, client_id: &str) -> Arc<VaultClient> {
        self.clients
            .client(&self.identity(client_id), VAULT_URL)
            .expect("client")
    }

    /// A client that already went through the challenge and holds a token.
    async fn warm(&self, client_id: &str) -> Arc<VaultClient> {
        let client = self.client(client_id);
        client
            .get_secret("db", "", in_secs(10))
            .await
            .expect("warm-up fetch");
        self.fake.reset_counts();
        client
    }

    fn assert_no_sensitive(&self, errors: &[KvError]) {
        let sensitive = self.fake.sensitive_strings();
        for error in errors {
            for s in &sensitive {
                assert!(
                    !error.message.contains(s.as_str()),
                    "error leaks a sensitive string: {}",
                    error.message
                );
            }
            for value in ["hunter1", "hunter2", "hunter3", CLIENT_SECRET] {
                assert!(
                    !error.message.contains(value),
                    "error leaks {value}: {}",
                    error.message
                );
            }
        }
    }
}

fn in_secs(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[tokio::test]
async fn fetches_current_and_pinned_versions_of_every_object_type() {
    let s = Setup::default().await;
    let client = s.client(CLIENT);

    let current = client.get_secret("db", "", in_secs(10)).await.unwrap();
    assert_eq!(
        current.version, "v2",
        "the newest enabled version is current"
    );
    assert_eq!(current.value.value.as_ref().unwrap().expose(), "hunter2");
    assert_eq!(current.value.content_type.as_deref(), Some("text/plain"));
    assert_eq!(current.value.kid, None);
    let pinned = client.get_secret("db", "v1", in_secs(10)).await.unwrap();
    assert_eq!(
        (
            pinned.version.as_str(),
            pinned.value.value.unwrap().expose()
        ),
        ("v1", "hunter1")
    );

    let key = client.get_key("k", "", in_secs(10)).await.unwrap();
    assert_eq!(key.version, "k2");
    assert_eq!(key.value.kty.as_deref(), Some("RSA"));
    assert_eq!(key.value.e.as_deref(), Some(&[1u8, 0, 1][..]));
    assert_eq!(key.value.n.as_ref().map(Vec::len), Some(256));
    assert_eq!(
        client
            .get_key("k", "k1", in_secs(10))
            .await
            .unwrap()
            .version,
        "k1"
    );

    let cert = client.get_certificate("c", "", in_secs(10)).await.unwrap();
    assert_eq!(
        (cert.version.as_str(), cert.value.as_slice()),
        ("c2", &b"der-two"[..])
    );
    let cert = client
        .get_certificate("c", "c1", in_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (cert.version.as_str(), cert.value.as_slice()),
        ("c1", &b"der-one"[..])
    );
}

#[tokio::test]
async fn lists_versions_across_pages_and_flags_disabled_ones() {
    let s = Setup::default().await;
    s.fake.set_page_size(1);
    let client = s.warm(CLIENT).await;
    let mut versions = client
        .list_versions(ObjectType::Secret, "db", in_secs(10))
        .await
        .unwrap();
    versions.sort_by(|a, b| a.version.cmp(&b.version));
    let summary: Vec<_> = versions
        .iter()
        .map(|v| (v.version.as_str(), v.created, v.enabled))
        .collect();
    assert_eq!(
        summary,
        [
            ("v1", Some(1_700_000_000), true),
            ("v2", Some(1_700_000_100), true),
            ("v3", Some(1_700_000_200), false)
        ]
    );
    assert_eq!(s.fake.counts().keyvault, 3, "one request per page");

    let keys = client
        .list_versions(ObjectType::Key, "k", in_secs(10))
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    let certs = client
        .list_versions(ObjectType::Cert, "c", in_secs(10))
        .await
        .unwrap();
    assert_eq!(certs.len(), 2);
}

#[tokio::test]
async fn not_found_and_forbidden_are_clear() {
    let s = Setup::default().await;
    let client = s.client(CLIENT);
    let missing = client
        .get_secret("nope", "", in_secs(10))
        .await
        .unwrap_err();
    assert_eq!(missing.kind, KvErrorKind::NotFound);
    assert!(
        missing.message.starts_with(
            "Key Vault returned 404 SecretNotFound: A secret with (name/id) nope was not found"
        ),
        "{}",
        missing.message
    );
    let disabled = client
        .get_secret("db", "v3", in_secs(10))
        .await
        .unwrap_err();
    assert_eq!(disabled.kind, KvErrorKind::Forbidden);
    assert!(disabled.message.contains("403"), "{}", disabled.message);

    s.fake.add_client_secret(
        TENANT,
        "cccccccc-0000-4000-8000-000000000003",
        CLIENT_SECRET,
    );
    let stranger = s.client("cccccccc-0000-4000-8000-000000000003");
    let denied = stranger
        .get_secret("db", "", in_secs(10))
        .await
        .unwrap_err();
    assert_eq!(denied.kind, KvErrorKind::Forbidden);
    assert!(
        denied.message.starts_with("Key Vault returned 403"),
        "{}",
        denied.message
    );
    s.assert_no_sensitive(&[missing, disabled, denied]);
}

#[tokio::test]
async fn warm_calls_need_no_token_and_no_challenge() {
    let s = Setup::default().await;
    let client = s.client(CLIENT);
    client.get_secret("db", "", in_secs(10)).await.unwrap();
    let cold = s.fake.counts();
    assert_eq!(
        (cold.entra_tokens, cold.challenges, cold.keyvault),
        (1, 1, 2)
    );

    s.fake.reset_counts();
    let again = s.client(CLIENT);
    assert!(
        Arc::ptr_eq(&client, &again),
        "same identity and vault share one client"
    );
    again.get_secret("s1", "", in_secs(10)).await.unwrap();
    again.get_secret("db", "v1", in_secs(10)).await.unwrap();
    let warm = s.fake.counts();
    assert_eq!(
        (warm.entra_tokens, warm.challenges, warm.keyvault),
        (0, 0, 2)
    );
}

#[tokio::test]
async fn client_cache_is_bounded_lru() {
    let s = Setup::new(KeyVaultOptions {
        max_clients: 1,
        ..KeyVaultOptions::default()
    })
    .await;
    let a = s.client(CLIENT);
    assert!(Arc::ptr_eq(&a, &s.client(CLIENT)));
    let _b = s.client(OTHER_CLIENT);
    assert_eq!(s.clients.len(), 1);
    assert!(
        !Arc::ptr_eq(&a, &s.client(CLIENT)),
        "the least recently used client was evicted"
    );
}

#[tokio::test]
async fn honours_short_retry_after() {
    let s = Setup::default().await;
    let client = s.warm(CLIENT).await;
    s.fake.inject(Fault::KeyVaultThrottle {
        count: 1,
        retry_after_secs: 1,
    });
    let started = Instant::now();
    let fetched = client.get_secret("s1", "", in_secs(5)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(fetched.version, "v1");
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(s.fake.counts().keyvault, 2);
}

#[tokio::test]
async fn retry_after_past_the_deadline_fails_fast_and_clearly() {
    let s = Setup::default().await;
    let client = s.warm(CLIENT).await;
    s.fake.inject(Fault::KeyVaultThrottle {
        count: 1,
        retry_after_secs: 30,
    });
    let started = Instant::now();
    let err = client.get_secret("s1", "", in_secs(5)).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "failed after {elapsed:?}, deadline was 5 s"
    );
    assert_eq!(err.kind, KvErrorKind::Throttled);
    assert!(
        err.message.contains("throttled") && err.message.contains("30."),
        "{}",
        err.message
    );

    // The vault stays throttled for everyone: the next call fails fast without a request.
    s.fake.reset_counts();
    let err = client.get_secret("s2", "", in_secs(5)).await.unwrap_err();
    assert_eq!(err.kind, KvErrorKind::Throttled);
    assert_eq!(s.fake.counts().keyvault, 0);
    s.assert_no_sensitive(&[err]);
}

#[tokio::test]
async fn server_errors_and_resets_are_retried() {
    let s = Setup::default().await;
    let client = s.warm(CLIENT).await;
    for fault in [
        Fault::KeyVaultStatus {
            count: 2,
            status: 503,
        },
        Fault::KeyVaultStatus {
            count: 2,
            status: 500,
        },
        Fault::KeyVaultStatus {
            count: 1,
            status: 502,
        },
        Fault::KeyVaultReset { count: 2 },
    ] {
        s.fake.reset_counts();
        s.fake.inject(fault.clone());
        let fetched = client.get_secret("s1", "v1", in_secs(10)).await;
        assert!(fetched.is_ok(), "{fault:?}: {fetched:?}");
    }
}

#[tokio::test]
async fn persistent_failure_stops_after_max_attempts() {
    let s = Setup::new(KeyVaultOptions {
        max_attempts: 3,
        ..KeyVaultOptions::default()
    })
    .await;
    let client = s.warm(CLIENT).await;
    s.fake.inject(Fault::KeyVaultStatus {
        count: 10,
        status: 500,
    });
    let err = client.get_secret("s1", "", in_secs(20)).await.unwrap_err();
    assert_eq!(err.kind, KvErrorKind::Unavailable);
    assert!(
        err.message.contains("500") && err.message.contains("3 attempts"),
        "{}",
        err.message
    );
    assert_eq!(s.fake.counts().keyvault, 3);
}

#[tokio::test]
async fn a_throttled_vault_slows_down_every_client() {
    let s = Setup::default().await;
    let first = s.warm(CLIENT).await;
    let second = s.warm(OTHER_CLIENT).await;
    s.fake.inject(Fault::KeyVaultThrottle {
        count: 1,
        retry_after_secs: 1,
    });
    let started = Instant::now();
    let a = tokio::spawn(async move { first.get_secret("s1", "", in_secs(5)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b_started = Instant::now();
    let b = second.get_secret("s2", "", in_secs(5)).await;
    let b_elapsed = b_started.elapsed();
    assert!(b.is_ok() && a.await.unwrap().is_ok());
    assert!(
        b_elapsed >= Duration::from_millis(700),
        "the second client waited for the vault's back-off ({b_elapsed:?} after {:?})",
        b_started - started
    );
    assert_eq!(
        s.fake.counts().keyvault,
        3,
        "429, then one request per client"
    );
}

#[tokio::test]
async fn rejected_token_is_replaced_and_never_sent_again() {
    let s = Setup::default().await;
    let client = s.warm(CLIENT).await;
    s.fake.revoke_tokens();
    let before = s.fake.requests().len();
    let fetched = client.get_secret("s1", "", in_secs(10)).await.unwrap();
    assert_eq!(fetched.version, "v1");
    assert_eq!(s.fake.counts().entra_tokens, 1, "one new token");
    let recovery: Vec<_> = s.fake.requests()[before..]
        .iter()
        .map(|r| (r.authorized, r.status))
        .collect();
    // The SDK's challenge policy resends the rejected token once (its credential still caches
    // it); then we drop the token and rebuild the clients, which challenge and succeed.
    assert_eq!(
        recovery
            .iter()
            .filter(|(authorized, status)| *authorized && *status == 401)
            .count(),
        2,
        "{recovery:?}"
    );
    assert_eq!(recovery.last(), Some(&(true, 200)), "{recovery:?}");

    // Every later request carries the new token: none is rejected, no new token is needed.
    s.fake.reset_counts();
    let before = s.fake.requests().len();
    for name in ["s2", "s3", "db"] {
        client.get_secret(name, "", in_secs(10)).await.unwrap();
    }
    let later = &s.fake.requests()[before..];
    assert!(
        later.iter().all(|r| r.authorized && r.status == 200),
        "{later:?}"
    );
    assert_eq!(s.fake.counts().entra_tokens, 0);
}

#[tokio::test]
async fn unauthenticated_after_the_retry_names_the_problem() {
    let s = Setup::default().await;
    // An identity whose credential cannot get tokens at all.
    let key = IdentityKey {
        cloud: "AzurePublicCloud".into(),
        tenant_id: TENANT.into(),
        mode: "service-principal",
        client_id: "dddddddd-0000-4000-8000-000000000004".into(),
        subject: "sha256:unknown".into(),
    };
    let options = ClientSecretCredentialOptions {
        client_options: s.fake.transport().client_options(),
    };
    let credential = ClientSecretCredential::new(
        TENANT,
        key.client_id.clone(),
        Secret::new("wrong-secret"),
        Some(options),
    )
    .unwrap();
    let client = s
        .clients
        .client(&ResolvedIdentity::new(key, credential), VAULT_URL)
        .unwrap();
    let err = client.get_secret("s1", "", in_secs(10)).await.unwrap_err();
    assert_eq!(err.kind, KvErrorKind::Unauthenticated);
    assert!(err.message.contains("access token"), "{}", err.message);
    assert!(!err.message.contains("wrong-secret"));
    s.assert_no_sensitive(&[err]);
}

#[tokio::test]
async fn concurrent_identical_fetches_share_requests() {
    let s = Setup::default().await;
    let client = s.warm(CLIENT).await;
    s.fake
        .set_latency(Duration::from_millis(200), Duration::ZERO);
    let calls = (0..100).map(|i| {
        let client = client.clone();
        async move {
            client
                .get_secret(&format!("s{}", i % 5), "", in_secs(10))
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.iter().enumerate() {
        let fetched = r.as_ref().expect("fetch");
        assert_eq!(
            fetched.value.value.as_ref().unwrap().expose(),
            format!("value-{}", i % 5)
        );
    }
    let requests = s.fake.counts().keyvault;
    assert!(
        requests <= 10,
        "{requests} Key Vault requests for 100 fetches of 5 secrets"
    );
}

#[tokio::test]
async fn ttl_cache_serves_repeats_then_expires() {
    let s = Setup::new(KeyVaultOptions {
        cache_ttl: Duration::from_millis(500),
        ..KeyVaultOptions::default()
    })
    .await;
    let client = s.warm(CLIENT).await;
    client.get_secret("s1", "", in_secs(10)).await.unwrap();
    assert_eq!(s.fake.counts().keyvault, 1);
    let cached = client.get_secret("s1", "", in_secs(10)).await.unwrap();
    assert_eq!(cached.value.value.unwrap().expose(), "value-1");
    assert_eq!(s.fake.counts().keyvault, 1, "served from the cache");
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.get_secret("s1", "", in_secs(10)).await.unwrap();
    assert_eq!(
        s.fake.counts().keyvault,
        2,
        "expired entries are fetched again"
    );
}

#[tokio::test]
async fn deadline_bounds_a_slow_vault() {
    let s = Setup::default().await;
    let client = s.warm(CLIENT).await;
    s.fake.set_latency(Duration::from_secs(5), Duration::ZERO);
    let started = Instant::now();
    let err = client
        .get_secret("s1", "", Instant::now() + Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.kind, KvErrorKind::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn works_over_tls() {
    let s = Setup::on(FakeAzure::start_tls().await, KeyVaultOptions::default());
    let client = s.client(CLIENT);
    let fetched = client.get_secret("db", "v1", in_secs(10)).await.unwrap();
    assert_eq!(fetched.value.value.unwrap().expose(), "hunter1");
}

#[tokio::test]
async fn a_token_rejected_twice_is_unauthenticated() {
    let s = Setup::default().await;
    // No invalidator: the credential keeps handing out the revoked token.
    let key = IdentityKey {
        cloud: "AzurePublicCloud".into(),
        tenant_id: TENANT.into(),
        mode: "service-principal",
        client_id: CLIENT.into(),
        subject: "sha256:no-invalidator".into(),
    };
    let options = ClientSecretCredentialOptions {
        client_options: s.fake.transport().client_options(),
    };
    let credential = ClientSecretCredential::new(
        TENANT,
        CLIENT.into(),
        Secret::new(CLIENT_SECRET),
        Some(options),
    )
    .unwrap();
    let client = s
        .clients
        .client(&ResolvedIdentity::new(key, credential), VAULT_URL)
        .unwrap();
    client.get_secret("s1", "", in_secs(10)).await.unwrap();
    s.fake.revoke_tokens();
    let err = client.get_secret("s2", "", in_secs(10)).await.unwrap_err();
    assert_eq!(err.kind, KvErrorKind::Unauthenticated);
    assert!(
        err.message.contains("401") && err.message.contains("newly acquired"),
        "{}",
        err.message
    );
    s.assert_no_sensitive(&[err]);
}

#[tokio::test]
async fn names_that_would_escape_the_url_path_are_refused() {
    let s = Setup::default().await;
    let client = s.client(CLIENT);
    let err = client
        .get_secret("db/../../keys/k", "", in_secs(10))
        .await
        .unwrap_err();
    assert!(
        err.message.contains("invalid Key Vault object name"),
        "{}",
        err.message
    );
    assert_eq!(s.fake.counts().keyvault, 0);
}

#[tokio::test]
async fn a_joined_fetch_outlives_its_starters_short_deadline() {
    let s = Setup::default().await;
    let client = s.warm(CLIENT).await;
    s.fake
        .set_latency(Duration::from_millis(400), Duration::ZERO);
    let short = client.get_secret("s1", "", Instant::now() + Duration::from_millis(150));
    let long = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.get_secret("s1", "", in_secs(5)).await
    };
    let (short, long) = tokio::join!(short, long);
    assert_eq!(short.unwrap_err().kind, KvErrorKind::DeadlineExceeded);
    assert_eq!(
        long.expect("the joined caller starts its own fetch")
            .version,
        "v1"
    );
}

#[tokio::test]
async fn a_replaced_credential_gets_a_new_client() {
    let s = Setup::default().await;
    let first = s.client(CLIENT);
    // Same identity key, new credential (the auth module evicted and rebuilt it).
    let rebuilt = identity(&s.fake, CLIENT);
    let second = s.clients.client(&rebuilt, VAULT_URL).unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(Arc::ptr_eq(
        &second,
        &s.clients.client(&rebuilt, VAULT_URL).unwrap()
    ));
    assert_eq!(s.clients.len(), 1, "the new client replaced the old one");
    second.get_secret("s1", "", in_secs(10)).await.unwrap();
}
