//! The token scope of a vault, known before its first request where possible, so a cold mount
//! costs one token and one Key Vault round trip instead of an extra 401 challenge first.
//!
//! The SDK's Key Vault clients learn the scope from the `WWW-Authenticate` challenge of a first
//! request sent without a token (`KeyVaultAuthorizer` in the `azure_security_keyvault_*` crates,
//! 1.0): the learned scope is private to each client and cannot be seeded. [`ScopeSeed`] is a
//! per-try policy placed after the SDK's auth policy: when a request leaves without a token and
//! the scope is already known, it answers locally with a challenge naming that scope, so the
//! SDK authorises and sends the request at once, its challenge handling (resource verification
//! included) untouched. Requests that carry a token pass through; a real challenge Key Vault
//! answers (a 401 naming another resource, say) goes on to the SDK as before, which re-authorises
//! for that resource, and is remembered here for the next client.
//!
//! Where the scope comes from:
//! - the trusted cloud configuration, when the vault host is exactly `<keyvaultName>.<Key Vault
//!   DNS suffix>` of that cloud and the cloud's Key Vault endpoint covers the host (the scope is
//!   `<keyVaultEndpoint>/.default`, the audience Key Vault names in its challenge; see
//!   <https://learn.microsoft.com/azure/key-vault/general/authentication-requests-and-responses>);
//! - [`ScopeBook`]: the scope a vault host named in a real challenge, shared by every identity, so
//!   a new identity on a known vault makes no challenge request either.
//!
//! A token is never sent to a host the scope does not cover: the host must end with
//! `.<scope host>`, the rule the SDK applies to challenges (`verify_challenge_resource`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use azure_core::http::headers::{AUTHORIZATION, HeaderName, Headers, WWW_AUTHENTICATE};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{AsyncRawResponse, Context, Request, StatusCode};

/// Longest scope kept (a challenge is vault-controlled text).
const MAX_SCOPE_LEN: usize = 512;

/// Scopes learned from real challenges, per vault host, shared by every identity. Bounded: the
/// oldest host is forgotten first (it then pays one challenge again).
#[derive(Debug)]
pub(crate) struct ScopeBook {
    max_hosts: usize,
    entries: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    scopes: HashMap<String, String>,
    /// Hosts in the order they were first learned.
    order: VecDeque<String>,
}

impl ScopeBook {
    pub(crate) fn new(max_hosts: usize) -> Self {
        Self {
            max_hosts: max_hosts.max(1),
            entries: Mutex::default(),
        }
    }

    pub(crate) fn get(&self, host: &str) -> Option<String> {
        self.lock().scopes.get(host).cloned()
    }

    /// Remembers `scope` for `host` (replacing what was known).
    pub(crate) fn learn(&self, host: &str, scope: &str) {
        let mut book = self.lock();
        if let Some(known) = book.scopes.get_mut(host) {
            if known != scope {
                *known = scope.to_string();
            }
            return;
        }
        while book.scopes.len() >= self.max_hosts {
            let Some(oldest) = book.order.pop_front() else {
                break;
            };
            book.scopes.remove(&oldest);
        }
        book.order.push_back(host.to_string());
        book.scopes.insert(host.to_string(), scope.to_string());
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().scopes.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        // Every update leaves the map consistent; a panic elsewhere cannot break it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The scope a vault URL built from the trusted cloud configuration may be called with before
/// any challenge: `<keyVaultEndpoint>/.default` when `host` is `<one DNS label>.<dns_suffix>`
/// and the endpoint's host covers it; `None` otherwise (the challenge flow then decides).
pub(crate) fn trusted_scope(
    host: &str,
    key_vault_endpoint: &str,
    dns_suffix: &str,
) -> Option<String> {
    let suffix = dns_suffix.trim_matches('.').to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let label = host.strip_suffix(&suffix)?.strip_suffix('.')?;
    if label.is_empty() || label.contains('.') || suffix.is_empty() {
        return None;
    }
    let endpoint = url::Url::parse(key_vault_endpoint).ok()?;
    if endpoint.scheme() != "https" {
        return None;
    }
    let scope = format!("{}/.default", key_vault_endpoint.trim_end_matches('/'));
    covers(&host, &scope).then_some(scope)
}

/// Whether a token for `scope` may go to `host`: the host ends with `.<scope host>`.
pub(crate) fn covers(host: &str, scope: &str) -> bool {
    let Ok(url) = url::Url::parse(scope) else {
        return false;
    };
    match url.host_str() {
        Some(scope_host) if !scope_host.is_empty() => host
            .to_ascii_lowercase()
            .ends_with(&format!(".{}", scope_host.to_ascii_lowercase())),
        _ => false,
    }
}

/// The scope a Key Vault challenge names: `scope="…"` as is, `resource="…"` with `/.default`
/// (the SDK's reading of `WWW-Authenticate`).
pub(crate) fn challenge_scope(challenge: &str) -> Option<String> {
    let mut rest = challenge;
    while let Some(at) = rest.find("=\"") {
        let key = rest[..at]
            .rsplit([' ', ','])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let value_start = at + 2;
        let end = rest[value_start..].find('"')?;
        let value = &rest[value_start..value_start + end];
        match key.as_str() {
            "scope" => return Some(value.to_string()),
            "resource" => return Some(format!("{}/.default", value.trim_end_matches('/'))),
            _ => {}
        }
        rest = &rest[value_start + end + 1..];
    }
    None
}

/// Answers an SDK client's token-less first request with a local challenge when the vault's
/// scope is known, and records the scope of real challenges. One per [`super::VaultClient`].
#[derive(Debug)]
pub(crate) struct ScopeSeed {
    /// The vault host (lowercase).
    host: String,
    /// From the trusted cloud configuration, if the vault URL was built from it.
    trusted: Option<String>,
    book: Arc<ScopeBook>,
}

impl ScopeSeed {
    pub(super) fn new(host: String, trusted: Option<String>, book: Arc<ScopeBook>) -> Arc<Self> {
        Arc::new(Self {
            host,
            trusted,
            book,
        })
    }

    /// The scope to authorise the first request with, if known: a learned one wins over the
    /// configured one (the vault said so).
    pub(super) fn known(&self) -> Option<String> {
        self.book
            .get(&self.host)
            .or_else(|| self.trusted.clone())
            .filter(|scope| covers(&self.host, scope))
    }

    fn local_challenge(scope: &str) -> AsyncRawResponse {
        let mut headers = Headers::new();
        headers.insert(WWW_AUTHENTICATE, format!("Bearer scope=\"{scope}\""));
        headers.insert(HeaderName::from_static("x-akv-csi-local-challenge"), "1");
        AsyncRawResponse::from_bytes(StatusCode::Unauthorized, headers, Vec::<u8>::new())
    }
}

#[async_trait::async_trait]
impl Policy for ScopeSeed {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let tokenless = request.headers().get_optional_str(&AUTHORIZATION).is_none();
        let same_host = request
            .url()
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(&self.host));
        if tokenless
            && same_host
            && let Some(scope) = self.known()
        {
            return Ok(Self::local_challenge(&scope));
        }
        let response = next[0].send(ctx, request, &next[1..]).await?;
        if response.status() == StatusCode::Unauthorized
            && same_host
            && let Ok(challenge) = response.headers().get_str(&WWW_AUTHENTICATE)
            && let Some(scope) = challenge_scope(challenge)
            && scope.len() <= MAX_SCOPE_LEN
            && covers(&self.host, &scope)
        {
            self.book.learn(&self.host, &scope);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_scope_needs_one_label_under_the_suffix() {
        let public = ("https://vault.azure.net/", "vault.azure.net");
        assert_eq!(
            trusted_scope("myvault.vault.azure.net", public.0, public.1).as_deref(),
            Some("https://vault.azure.net/.default")
        );
        assert_eq!(
            trusted_scope("MyVault.Vault.Azure.Net", public.0, public.1).as_deref(),
            Some("https://vault.azure.net/.default")
        );
        for host in [
            "vault.azure.net",
            ".vault.azure.net",
            "a.b.vault.azure.net",
            "myvault.azure.net",
            "evilvault.azure.net",
            "myvault.vault.azure.net.evil.example",
        ] {
            assert_eq!(trusted_scope(host, public.0, public.1), None, "{host}");
        }
        // An endpoint that does not cover the host (an odd Azure Stack file): no pre-authorisation.
        assert_eq!(
            trusted_scope(
                "v.vault.stack.local",
                "https://other.example/",
                "vault.stack.local"
            ),
            None
        );
        assert_eq!(
            trusted_scope(
                "v.vault.stack.local",
                "http://vault.stack.local/",
                "vault.stack.local"
            ),
            None
        );
        assert_eq!(
            trusted_scope(
                "v.vault.stack.local",
                "https://vault.stack.local",
                "vault.stack.local"
            )
            .as_deref(),
            Some("https://vault.stack.local/.default")
        );
    }

    #[test]
    fn challenges_are_read_like_the_sdk_reads_them() {
        assert_eq!(
            challenge_scope(
                r#"Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net""#
            )
            .as_deref(),
            Some("https://vault.azure.net/.default")
        );
        assert_eq!(
            challenge_scope(
                r#"Bearer authorization="https://login.microsoftonline.com/t", scope="https://vault.azure.net/.default""#
            )
            .as_deref(),
            Some("https://vault.azure.net/.default")
        );
        assert_eq!(challenge_scope(r#"Bearer authorization="https://x""#), None);
        assert_eq!(challenge_scope(r#"Bearer resource="unterminated"#), None);
        assert_eq!(challenge_scope("Basic"), None);
    }

    #[test]
    fn scopes_cover_only_hosts_under_them() {
        assert!(covers(
            "v.vault.azure.net",
            "https://vault.azure.net/.default"
        ));
        assert!(!covers(
            "vault.azure.net",
            "https://vault.azure.net/.default"
        ));
        assert!(!covers(
            "v.evil.example",
            "https://vault.azure.net/.default"
        ));
        assert!(!covers("v.vault.azure.net", "not a url"));
    }

    #[test]
    fn the_book_is_bounded_and_forgets_the_oldest_host() {
        let book = ScopeBook::new(2);
        book.learn("a.vault.azure.net", "https://vault.azure.net/.default");
        book.learn("b.vault.azure.net", "https://vault.azure.net/.default");
        book.learn("a.vault.azure.net", "https://azure.net/.default");
        assert_eq!(
            book.get("a.vault.azure.net").as_deref(),
            Some("https://azure.net/.default")
        );
        book.learn("c.vault.azure.net", "https://vault.azure.net/.default");
        assert_eq!(book.len(), 2);
        assert_eq!(book.get("a.vault.azure.net"), None);
        assert!(book.get("b.vault.azure.net").is_some());
        assert!(book.get("c.vault.azure.net").is_some());
    }

    #[test]
    fn a_learned_scope_wins_over_the_configured_one() {
        let book = Arc::new(ScopeBook::new(4));
        let seed = ScopeSeed::new(
            "v.vault.azure.net".into(),
            Some("https://vault.azure.net/.default".into()),
            book.clone(),
        );
        assert_eq!(
            seed.known().as_deref(),
            Some("https://vault.azure.net/.default")
        );
        book.learn("v.vault.azure.net", "https://azure.net/.default");
        assert_eq!(seed.known().as_deref(), Some("https://azure.net/.default"));
        let untrusted = ScopeSeed::new("v.other.example".into(), None, book);
        assert_eq!(untrusted.known(), None);
    }
}
