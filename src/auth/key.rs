//! Who a mount proves to be: the [`IdentityKey`] of each mode, and what a presented
//! service-account token claims.
//!
//! The token's signature is not verified here (Entra ID verifies it during the exchange); its
//! claims only name the cache entry. Whether a mount may use that entry is decided by the digest
//! of the exact token, see [`super::workload`].

use base64::Engine;
use sha2::{Digest, Sha256};

use super::IdentityKey;
use crate::request::{CloudEnvironment, MountRequest};
use crate::sensitive::Sensitive;

/// SHA-256 of a token or credential, the only form in which one is remembered or compared.
pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(value: &str) -> TokenDigest {
    Sha256::digest(value.as_bytes()).into()
}

/// Longest `sub` claim accepted: `system:serviceaccount:` plus a namespace (≤ 63) and a
/// service-account name (≤ 253) fit well within it; the subject becomes part of a cache key.
pub(crate) const MAX_SUBJECT_BYTES: usize = 512;

/// The claims of a presented service-account token the provider relies on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceAccountClaims {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    pub digest: TokenDigest,
}

/// Reads `sub` and `exp` from a JWT's payload (base64url JSON), without checking the signature.
/// The error names the problem, never the token.
pub(crate) fn inspect_service_account_token(
    token: &Sensitive,
) -> Result<ServiceAccountClaims, String> {
    let payload = token
        .expose()
        .split('.')
        .nth(1)
        .filter(|p| !p.is_empty())
        .ok_or("the service account token is not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the service account token's payload is not base64url")?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| "the service account token's payload is not JSON")?;
    let subject = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or("the service account token has no sub claim")?
        .to_string();
    if subject.len() > MAX_SUBJECT_BYTES {
        return Err(format!(
            "the service account token's sub claim is {} bytes, more than the limit of {MAX_SUBJECT_BYTES} (system:serviceaccount:<namespace>:<name>)",
            subject.len()
        ));
    }
    let expires_at = claims
        .get("exp")
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .ok_or("the service account token has no exp claim")?;
    Ok(ServiceAccountClaims {
        subject,
        expires_at,
        digest: digest(token.expose()),
    })
}

/// `system:serviceaccount:<namespace>:<name>`, the subject Kubernetes puts in the token.
pub(crate) fn service_account_subject(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// `sha256:<hex>` of a service principal's client id and secret (or `clientcert`), salted with a
/// random value drawn once per process, so a digest seen in a debug log cannot be used to test guesses of a
/// weak secret.
pub(crate) fn credential_subject(client_id: &str, secret: &Sensitive) -> String {
    static SALT: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let mut hasher = Sha256::new();
    hasher.update(SALT.get_or_init(rand::random));
    hasher.update(client_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(secret.expose().as_bytes());
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// `pod:<namespace>/<name>/<uid>`, or `pod:<namespace>/<name>` when the driver sent no UID: a
/// pod recreated under the same name has a new UID, so it never inherits the old pod's token.
pub(crate) fn pod_subject(namespace: &str, name: &str, uid: Option<&str>) -> String {
    match uid {
        Some(uid) => format!("pod:{namespace}/{name}/{uid}"),
        None => format!("pod:{namespace}/{name}"),
    }
}

/// Cloud part of a key: the name plus the endpoints that decide where tokens come from and for
/// what, so two Azure Stack environment files sharing a name never share an entry.
fn cloud_key(cloud: &CloudEnvironment) -> String {
    format!(
        "{}|{}|{}",
        cloud.name, cloud.active_directory_endpoint, cloud.key_vault_endpoint
    )
}

/// The key for this request's identity with the given client id and subject.
pub(crate) fn identity_key(
    request: &MountRequest,
    client_id: &str,
    subject: String,
) -> IdentityKey {
    IdentityKey {
        cloud: cloud_key(&request.cloud),
        tenant_id: request.tenant_id.clone(),
        mode: request.identity.mode_name(),
        client_id: client_id.to_string(),
        subject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> Sensitive {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        Sensitive::new(format!("{}.{}.", enc(r#"{"alg":"none"}"#), enc(payload)))
    }

    #[test]
    fn reads_sub_and_exp() {
        let token = jwt(r#"{"sub":"system:serviceaccount:ns:sa","exp":1700000000,"aud":["x"]}"#);
        let claims = inspect_service_account_token(&token).unwrap();
        assert_eq!(claims.subject, "system:serviceaccount:ns:sa");
        assert_eq!(claims.expires_at, 1_700_000_000);
        assert_eq!(claims.digest, digest(token.expose()));
    }

    #[test]
    fn rejects_malformed_tokens_without_echoing_them() {
        for (token, problem) in [
            (Sensitive::new("not-a-jwt"), "not a JWT"),
            (Sensitive::new("a.!!!.c"), "not base64url"),
            (jwt("[1"), "not JSON"),
            (jwt(r#"{"exp":1}"#), "no sub"),
            (jwt(r#"{"sub":"s"}"#), "no exp"),
        ] {
            let err = inspect_service_account_token(&token).unwrap_err();
            assert!(err.contains(problem), "{err}");
            assert!(!err.contains(token.expose()));
        }
    }

    #[test]
    fn credential_subject_depends_on_both_parts_and_hides_the_secret() {
        let a = credential_subject("id", &Sensitive::new("secret-one"));
        let b = credential_subject("id", &Sensitive::new("secret-two"));
        let c = credential_subject("idsecret-one", &Sensitive::new(""));
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(!a.contains("secret"));
        assert_eq!(a, credential_subject("id", &Sensitive::new("secret-one")));
    }
}
