//! A fake of the Azure endpoints the provider talks to, speaking their real REST shapes.
//!
//! TODO(fake helper): implement every function below. The API is the contract other tests use.
//!
//! Routing: the provider's redirecting transport (`Transport::redirect_all`) keeps the production
//! URL's path and query and sets `x-original-host`:
//! - `<vault>.vault.azure.net` (or any `<vault>.<suffix>`): Key Vault data plane, API 2025-07-01.
//! - `login.microsoftonline.com` (or any host with `/<tenant>/oauth2/v2.0/token`): Entra ID.
//! - `169.254.169.254`: IMDS `/metadata/identity/oauth2/token`.
//! - `127.0.0.1:2579` / `localhost:2579`: NMI `/host/token/`.
#![allow(dead_code, unused_variables)]

use std::time::Duration;

/// A running fake. Dropping it stops the server.
pub struct FakeAzure {}

/// A request the fake received (for assertions).
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `keyvault`, `entra`, `imds`, `nmi`.
    pub service: &'static str,
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `x-original-host` header.
    pub host: String,
    /// Status the fake answered.
    pub status: u16,
    /// Whether an `Authorization: Bearer` header was present.
    pub authorized: bool,
}

/// Counters since start (or the last `reset_counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every Key Vault request, including 401 challenges and throttled ones.
    pub keyvault: u64,
    /// Key Vault requests answered 401 because they carried no token (challenge round trips).
    pub challenges: u64,
    /// Token requests to Entra ID (`/oauth2/v2.0/token`).
    pub entra_tokens: u64,
    pub imds: u64,
    pub nmi: u64,
}

/// A fault to inject; each applies to the next `count` matching requests.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Key Vault answers 429 with `Retry-After: <retry_after_secs>`.
    KeyVaultThrottle { count: u32, retry_after_secs: u64 },
    /// Key Vault answers this status with an error body.
    KeyVaultStatus { count: u32, status: u16 },
    /// Entra ID answers this status with an `AADSTS` error body.
    EntraStatus { count: u32, status: u16, aadsts: &'static str },
    /// IMDS answers this status.
    ImdsStatus { count: u32, status: u16 },
    /// NMI answers this status.
    NmiStatus { count: u32, status: u16 },
    /// The connection is closed without a response (Key Vault).
    KeyVaultReset { count: u32 },
}

impl FakeAzure {
    /// Plain HTTP on 127.0.0.1, random port.
    pub async fn start() -> FakeAzure {
        todo!()
    }

    /// HTTPS on 127.0.0.1 with a throwaway CA (certificate for `localhost` and `127.0.0.1`).
    pub async fn start_tls() -> FakeAzure {
        todo!()
    }

    /// `http://127.0.0.1:<port>/` or `https://localhost:<port>/`.
    pub fn url(&self) -> String {
        todo!()
    }

    /// The throwaway CA in PEM (TLS fakes only).
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        todo!()
    }

    /// The provider's redirecting transport pointed at this fake (trusting its CA when TLS).
    pub fn transport(&self) -> akv_csi_provider::transport::Transport {
        todo!()
    }

    /// Latency added before every Key Vault / token (Entra, IMDS, NMI) response.
    pub fn set_latency(&self, keyvault: Duration, token: Duration) {
        todo!()
    }

    // ---- Key Vault content (vault = the vault name, e.g. "myvault") ----

    /// A secret version. `created` is Unix seconds; versions are 32 hex chars in real Key Vault
    /// but any string works here.
    pub fn add_secret(&self, vault: &str, name: &str, version: &str, value: &str, content_type: Option<&str>, kid: Option<&str>, created: i64, enabled: bool) {
        todo!()
    }

    /// A key version; `jwk` is the JSON Web Key as Key Vault returns it (base64url fields).
    pub fn add_key(&self, vault: &str, name: &str, version: &str, jwk: serde_json::Value, created: i64, enabled: bool) {
        todo!()
    }

    /// A certificate version; `cer` is the DER certificate.
    pub fn add_certificate(&self, vault: &str, name: &str, version: &str, cer: &[u8], created: i64, enabled: bool) {
        todo!()
    }

    /// Versions per page of `/versions` listings (default 25); `nextLink` points back at the fake.
    pub fn set_page_size(&self, n: usize) {
        todo!()
    }

    // ---- identities ----

    /// A service principal with a client secret.
    pub fn add_client_secret(&self, tenant: &str, client_id: &str, secret: &str) {
        todo!()
    }

    /// A federated credential: an assertion JWT with this issuer, subject and audience is
    /// accepted for the client id.
    pub fn add_federated_credential(&self, tenant: &str, client_id: &str, issuer: &str, subject: &str, audience: &str) {
        todo!()
    }

    /// A managed identity on the node: `None` is the system-assigned one.
    pub fn add_managed_identity(&self, client_id: Option<&str>) {
        todo!()
    }

    /// aad-pod-identity: the pod `namespace/name` is bound to this client id.
    pub fn add_pod_identity(&self, namespace: &str, pod: &str, client_id: &str) {
        todo!()
    }

    /// Grants an identity (client id; `"system"` for the system-assigned MI) access to a vault.
    /// Tokens of identities without access get 403 from Key Vault.
    pub fn grant(&self, vault: &str, client_id: &str) {
        todo!()
    }

    /// Access-token lifetime the fake issues (default 1 h).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        todo!()
    }

    /// Key Vault rejects every token issued so far with 401 (as for a revoked token).
    pub fn revoke_tokens(&self) {
        todo!()
    }

    // ---- faults and observation ----

    pub fn inject(&self, fault: Fault) {
        todo!()
    }

    pub fn counts(&self) -> Counts {
        todo!()
    }

    pub fn reset_counts(&self) {
        todo!()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        todo!()
    }

    /// Every access token, client assertion and client secret the fake has seen or issued, for
    /// tests that check logs and errors never contain them.
    pub fn sensitive_strings(&self) -> Vec<String> {
        todo!()
    }
}

/// An unsigned service-account JWT (`alg: none`) with these claims, as kubelet would mint for the
/// CSI driver's `tokenRequests`; `exp` is Unix seconds.
pub fn service_account_token(issuer: &str, namespace: &str, service_account: &str, audience: &str, exp: i64) -> String {
    todo!()
}

/// The `csi.storage.k8s.io/serviceAccount.tokens` attribute value for these (audience, token) pairs.
pub fn service_account_tokens_attribute(tokens: &[(&str, &str)]) -> String {
    todo!()
}
