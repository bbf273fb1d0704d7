//! Workload identity: the pod's service-account token (audience `api://AzureADTokenExchange`) is
//! the client assertion of a jwt-bearer client-credentials request to Entra ID.
//!
//! The token's claims name the cache entry (its `sub` is the service account), but the provider
//! cannot check its signature, so a claim alone must not unlock a cached access token: anyone
//! could mint an unsigned token claiming another namespace's service account. Each entry therefore
//! remembers the SHA-256 digests of the exact tokens Entra ID has accepted for it (bounded, each
//! until that token's `exp`). A mount presenting a token not yet accepted first exchanges THAT
//! token; only if Entra ID accepts it does the mount share the entry. Refreshes use the freshest
//! accepted token (latest `exp`).

use std::sync::{Arc, Mutex};

use azure_core::credentials::{AccessToken, TokenCredential};
use azure_core::http::{ClientMethodOptions, ClientOptions};
use azure_core::time::OffsetDateTime;
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
};

use super::AuthError;
use super::cache::{CachingCredential, CredentialFactory};
use super::errors::{auth_error, describe_token_error, to_core_error};
use super::key::{
    ServiceAccountClaims, TokenDigest, inspect_service_account_token, service_account_subject,
};
use crate::request::{CloudEnvironment, PodInfo};
use crate::sensitive::Sensitive;
use crate::telemetry;

/// Accepted tokens remembered per entry (one per pod mounting this identity, roughly; the
/// earliest-expiring is forgotten first, which costs at most one extra exchange).
const MAX_ACCEPTED: usize = 64;

/// What an entry knows about the service-account tokens Entra ID accepted for it.
#[derive(Debug, Default)]
pub(crate) struct WorkloadState {
    accepted: Mutex<Accepted>,
    /// One exchange at a time per entry, so concurrent mounts with the same new token make one.
    exchange_gate: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Accepted {
    digests: Vec<(TokenDigest, i64)>,
    /// The accepted token with the latest `exp`, the assertion for refreshes.
    freshest: Option<(Sensitive, i64)>,
}

impl WorkloadState {
    fn accepted(&self) -> std::sync::MutexGuard<'_, Accepted> {
        crate::sync::lock(&self.accepted)
    }

    /// Whether Entra ID accepted exactly this token (and it has not expired).
    pub(crate) fn is_accepted(&self, claims: &ServiceAccountClaims, now: i64) -> bool {
        self.accepted()
            .digests
            .iter()
            .any(|(d, exp)| *d == claims.digest && *exp > now)
    }

    /// Whether no unexpired token has been accepted.
    pub(crate) fn is_unproven(&self, now: i64) -> bool {
        !self.accepted().digests.iter().any(|(_, exp)| *exp > now)
    }

    /// Records a token Entra ID accepted.
    pub(crate) fn accept(&self, token: &Sensitive, claims: &ServiceAccountClaims, now: i64) {
        let mut accepted = self.accepted();
        accepted.digests.retain(|(_, exp)| *exp > now);
        if !accepted.digests.iter().any(|(d, _)| *d == claims.digest) {
            if accepted.digests.len() >= MAX_ACCEPTED
                && let Some(earliest) = accepted
                    .digests
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (_, exp))| *exp)
                    .map(|(i, _)| i)
            {
                accepted.digests.swap_remove(earliest);
            }
            accepted.digests.push((claims.digest, claims.expires_at));
        }
        if accepted
            .freshest
            .as_ref()
            .is_none_or(|(_, exp)| *exp < claims.expires_at)
        {
            accepted.freshest = Some((token.clone(), claims.expires_at));
        }
    }

    fn freshest(&self, now: i64) -> Option<Sensitive> {
        self.accepted()
            .freshest
            .as_ref()
            .filter(|(_, exp)| *exp > now)
            .map(|(t, _)| t.clone())
    }
}

/// The assertion: one presented token (the proving exchange) or the entry's freshest.
#[derive(Debug)]
enum Assertion {
    Presented(Sensitive),
    Freshest {
        state: Arc<WorkloadState>,
        subject: String,
        mode: &'static str,
    },
}

#[async_trait::async_trait]
impl ClientAssertion for Assertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        match self {
            Self::Presented(token) => Ok(token.expose().to_string()),
            Self::Freshest {
                state,
                subject,
                mode,
            } => state
                .freshest(OffsetDateTime::now_utc().unix_timestamp())
                .map(|t| t.expose().to_string())
                .ok_or_else(|| {
                    to_core_error(auth_error(
                        mode,
                        format!("every service account token presented for {} has expired; the next mount presents a fresh one", crate::text::echo(subject)),
                    ))
                }),
        }
    }
}

/// Validates the presented token: well-formed, unexpired, and naming the pod's service account
/// when the request says which one it is. Errors name both accounts, never the token. `mode` is
/// workload identity's or identity binding's (which proves its tokens the same way, through the
/// token proxy).
pub(crate) fn check_presented_token(
    mode: &'static str,
    token: &Sensitive,
    pod: &PodInfo,
    now: i64,
) -> Result<ServiceAccountClaims, AuthError> {
    let claims =
        inspect_service_account_token(token).map_err(|problem| auth_error(mode, problem))?;
    if claims.expires_at <= now {
        let when = OffsetDateTime::from_unix_timestamp(claims.expires_at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| claims.expires_at.to_string());
        return Err(auth_error(
            mode,
            format!(
                "the service account token for {} expired at {when}",
                crate::text::echo(&claims.subject)
            ),
        ));
    }
    if let Some(account) = pod
        .service_account
        .as_deref()
        .filter(|a| !a.is_empty() && !pod.namespace.is_empty())
    {
        let expected = service_account_subject(&pod.namespace, account);
        if claims.subject != expected {
            return Err(auth_error(
                mode,
                format!(
                    "the service account token is for {} but the pod runs as {}",
                    crate::text::echo(&claims.subject),
                    crate::text::echo(&expected)
                ),
            ));
        }
    }
    Ok(claims)
}

/// A presented token and where to prove it.
pub(crate) struct Presented<'a> {
    pub mode: &'static str,
    pub client_options: &'a ClientOptions,
    pub tenant_id: &'a str,
    pub client_id: &'a str,
    pub token: &'a Sensitive,
    pub claims: &'a ServiceAccountClaims,
    /// `<Key Vault resource>/.default`, the scope Key Vault's challenge will ask for.
    pub scope: String,
}

/// `<Key Vault resource>/.default` (`https://vault.azure.net/.default`), with or without a trailing
/// slash on the cloud's `keyVaultEndpoint`.
pub(crate) fn proving_scope(cloud: &CloudEnvironment) -> String {
    format!("{}/.default", cloud.key_vault_resource())
}

/// Makes sure Entra ID accepted exactly this token for the entry, exchanging it if not yet (one
/// exchange at a time per entry). On success the token is remembered and the access token it
/// bought is cached for the scope; on failure nothing of the entry is shared with the mount.
pub(crate) async fn prove(
    state: &WorkloadState,
    credential: &CachingCredential,
    presented: &Presented<'_>,
    now: i64,
) -> Result<(), AuthError> {
    if state.is_accepted(presented.claims, now) {
        return Ok(());
    }
    let _gate = state.exchange_gate.lock().await;
    if state.is_accepted(presented.claims, now) {
        return Ok(());
    }
    let acquired = OffsetDateTime::now_utc();
    let result = exchange(presented).await;
    let mode = presented.mode;
    telemetry::metrics().token_request(mode, if result.is_ok() { "ok" } else { "error" });
    let access_token = result.map_err(|e| describe_token_error(mode, &e, &[presented.token]))?;
    state.accept(presented.token, presented.claims, now);
    credential.seed(&[&presented.scope], access_token, acquired);
    Ok(())
}

/// Exchanges exactly the presented token for an access token to the scope.
async fn exchange(presented: &Presented<'_>) -> azure_core::Result<AccessToken> {
    let assertion = Assertion::Presented(presented.token.clone());
    let credential = build(
        presented.client_options,
        presented.tenant_id,
        presented.client_id,
        assertion,
    )?;
    credential.get_token(&[&presented.scope], None).await
}

/// Refreshing credential of an entry: asserts with the freshest accepted token.
pub(crate) fn entry_factory(
    mode: &'static str,
    client_options: ClientOptions,
    tenant_id: &str,
    client_id: &str,
    state: Arc<WorkloadState>,
    subject: &str,
) -> CredentialFactory {
    let (tenant_id, client_id, subject) = (
        tenant_id.to_string(),
        client_id.to_string(),
        subject.to_string(),
    );
    Arc::new(move || {
        let assertion = Assertion::Freshest {
            state: state.clone(),
            subject: subject.clone(),
            mode,
        };
        build(&client_options, &tenant_id, &client_id, assertion)
    })
}

fn build(
    client_options: &ClientOptions,
    tenant_id: &str,
    client_id: &str,
    assertion: Assertion,
) -> azure_core::Result<Arc<dyn TokenCredential>> {
    let options = ClientAssertionCredentialOptions {
        client_options: client_options.clone(),
    };
    let credential = ClientAssertionCredential::new(
        tenant_id.to_string(),
        client_id.to_string(),
        assertion,
        Some(options),
    )?;
    Ok(credential as Arc<dyn TokenCredential>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::key::digest;

    fn claims(token: &str, sub: &str, exp: i64) -> ServiceAccountClaims {
        ServiceAccountClaims {
            subject: sub.into(),
            expires_at: exp,
            digest: digest(token),
        }
    }

    #[test]
    fn remembers_accepted_digests_until_they_expire() {
        let state = WorkloadState::default();
        let (a, b) = (Sensitive::new("token-a"), Sensitive::new("token-b"));
        let (ca, cb) = (claims("token-a", "s", 200), claims("token-b", "s", 300));
        assert!(state.is_unproven(100));
        state.accept(&a, &ca, 100);
        assert!(state.is_accepted(&ca, 100));
        assert!(!state.is_accepted(&cb, 100));
        state.accept(&b, &cb, 100);
        assert_eq!(state.freshest(100).unwrap().expose(), "token-b");
        // An older token accepted later does not replace the freshest.
        state.accept(&a, &ca, 150);
        assert_eq!(state.freshest(150).unwrap().expose(), "token-b");
        assert!(!state.is_accepted(&ca, 250));
        assert!(state.freshest(301).is_none());
        assert!(state.is_unproven(301));
    }

    #[test]
    fn proving_scope_matches_key_vaults_challenge() {
        let mut cloud = CloudEnvironment::public();
        assert_eq!(proving_scope(&cloud), "https://vault.azure.net/.default");
        cloud.key_vault_endpoint = "https://vault.local.azurestack.external".into();
        assert_eq!(
            proving_scope(&cloud),
            "https://vault.local.azurestack.external/.default"
        );
    }

    #[test]
    fn bounded() {
        let state = WorkloadState::default();
        for i in 0..(MAX_ACCEPTED as i64 + 5) {
            let t = format!("t{i}");
            state.accept(&Sensitive::new(t.clone()), &claims(&t, "s", 1000 + i), 0);
        }
        assert_eq!(state.accepted().digests.len(), MAX_ACCEPTED);
        assert!(!state.is_accepted(&claims("t0", "s", 1000), 0));
        assert!(state.is_accepted(&claims("t68", "s", 1068), 0));
    }
}
