//! aad-pod-identity (`usePodIdentity`, deprecated upstream): the node's NMI hands out a token for
//! the identity bound to the pod named in the `podns`/`podname` headers.
//!
//! `GET http://127.0.0.1:2579/host/token/?resource=<Key Vault resource>` through our transport;
//! the answer is `{"token":{"access_token":..,"expires_on":..},"clientid":..}`. The scopes the
//! caller asks for are ignored, as upstream: NMI is asked for the cloud's Key Vault resource.

use std::sync::Arc;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{HttpClient, Method, Request, Url};
use azure_core::time::OffsetDateTime;
use serde::Deserialize;

use super::cache::CredentialFactory;
use super::errors::{
    auth_error, auth_error_of, http_kind, looks_token_like, misconfigured, scrub, to_core_error,
    unavailable,
};
use crate::transport::Transport;

const MODE: &str = "pod_identity";
/// NMI listens on the node; the provider runs with `hostNetwork`.
const NMI_TOKEN_URL: &str = "http://127.0.0.1:2579/host/token/";
/// Longest NMI error body quoted in a message.
const MAX_BODY: usize = 200;

/// The NMI credential for one pod.
pub(crate) fn nmi_factory(
    transport: &Transport,
    namespace: &str,
    pod: &str,
    resource: &str,
) -> CredentialFactory {
    let credential: Arc<dyn TokenCredential> = Arc::new(NmiCredential {
        client: transport.http_client(),
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        resource: resource.to_string(),
    });
    // Stateless (no cache inside), so one instance serves every acquisition.
    Arc::new(move || Ok(credential.clone()))
}

#[derive(Debug)]
struct NmiCredential {
    client: Arc<dyn HttpClient>,
    namespace: String,
    pod: String,
    resource: String,
}

#[derive(Deserialize)]
struct NmiResponse {
    token: Option<NmiToken>,
    clientid: Option<String>,
}

#[derive(Deserialize)]
struct NmiToken {
    access_token: Option<String>,
    expires_on: Option<serde_json::Value>,
}

impl NmiCredential {
    async fn fetch(&self) -> Result<AccessToken, super::AuthError> {
        // The resource is passed unescaped, as upstream does (NMI expects `https://vault...`).
        let url =
            Url::parse(&format!("{NMI_TOKEN_URL}?resource={}", self.resource)).map_err(|e| {
                misconfigured(
                    MODE,
                    format!(
                        "invalid NMI URL for resource {}: {e}",
                        crate::text::echo(&self.resource)
                    ),
                )
            })?;
        let mut request = Request::new(url, Method::Get);
        request.insert_header("podns", self.namespace.clone());
        request.insert_header("podname", self.pod.clone());
        let response = self.client.execute_request(&request).await.map_err(|e| {
            unavailable(
                MODE,
                format!("NMI request failed: {}", scrub(&e.to_string(), &[])),
            )
        })?;
        let status = u16::from(response.status());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unavailable(MODE, format!("reading the NMI response failed: {e}")))?;
        if status != 200 {
            return Err(auth_error_of(
                http_kind(status),
                MODE,
                status_message(status, &body),
            ));
        }
        parse_token(&body)
    }
}

fn status_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_BODY || text.contains('\n') || looks_token_like(text) {
        format!("NMI answered HTTP {status}")
    } else {
        format!("NMI answered HTTP {status}: {}", scrub(text, &[]))
    }
}

fn parse_token(body: &[u8]) -> Result<AccessToken, super::AuthError> {
    let parsed: NmiResponse = serde_json::from_slice(body).map_err(|_| {
        auth_error(
            MODE,
            "NMI returned a response that is not the expected JSON",
        )
    })?;
    let token = parsed.token.ok_or_else(missing_values)?;
    let access_token = token
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(missing_values)?;
    let client_id = parsed
        .clientid
        .filter(|c| !c.is_empty())
        .ok_or_else(missing_values)?;
    let expires_on = token
        .expires_on
        .as_ref()
        .and_then(unix_seconds)
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| auth_error(MODE, "NMI returned no valid token expiry (expires_on)"))?;
    tracing::debug!(client_id = %client_id, "token from NMI");
    Ok(AccessToken::new(Secret::new(access_token), expires_on))
}

fn missing_values() -> super::AuthError {
    auth_error(
        MODE,
        "NMI did not return the expected values in its response: token and clientid",
    )
}

/// `expires_on` as a number or a numeric string (seconds, possibly fractional).
fn unix_seconds(value: &serde_json::Value) -> Option<i64> {
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    seconds.is_finite().then_some(seconds as i64)
}

#[async_trait::async_trait]
impl TokenCredential for NmiCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.fetch().await.map_err(to_core_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nmi_answers() {
        let token = parse_token(
            br#"{"token":{"access_token":"abc","expires_on":"1900000000"},"clientid":"c"}"#,
        )
        .unwrap();
        assert_eq!(token.token.secret(), "abc");
        assert_eq!(token.expires_on.unix_timestamp(), 1_900_000_000);
        let token = parse_token(
            br#"{"token":{"access_token":"abc","expires_on":1900000000.5},"clientid":"c"}"#,
        )
        .unwrap();
        assert_eq!(token.expires_on.unix_timestamp(), 1_900_000_000);
    }

    #[test]
    fn missing_fields_are_named() {
        for body in [
            &br#"{"token":{"access_token":"","expires_on":"1"},"clientid":"c"}"#[..],
            br#"{"token":{"access_token":"abc","expires_on":"1"}}"#,
            br#"{"clientid":"c"}"#,
        ] {
            assert!(
                parse_token(body)
                    .unwrap_err()
                    .0
                    .contains("token and clientid")
            );
        }
        let err =
            parse_token(br#"{"token":{"access_token":"abc","expires_on":"soon"},"clientid":"c"}"#)
                .unwrap_err();
        assert!(err.0.contains("expires_on"), "{err}");
        assert!(
            parse_token(b"<html>")
                .unwrap_err()
                .0
                .contains("not the expected JSON")
        );
    }

    #[test]
    fn status_messages_quote_only_short_harmless_bodies() {
        assert_eq!(
            status_message(403, b"pod not bound"),
            "NMI answered HTTP 403: pod not bound"
        );
        assert_eq!(
            status_message(500, br#"{"access_token":"x"}"#),
            "NMI answered HTTP 500"
        );
        assert_eq!(
            status_message(500, "x".repeat(500).as_bytes()),
            "NMI answered HTTP 500"
        );
        assert_eq!(
            status_message(500, b"here fake.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
            "NMI answered HTTP 500"
        );
    }
}
