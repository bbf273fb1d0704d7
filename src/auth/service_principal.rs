//! Service principals from the pod's `nodePublishSecretRef`: client secret, and client certificate
//! (a client-assertion grant whose assertion we sign ourselves, see [`super::certificate`]).

use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientMethodOptions, ClientOptions};
use azure_core::time::OffsetDateTime;
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions,
};

use super::AuthError;
use super::cache::CredentialFactory;
use super::certificate::{AssertionClaims, ClientCertificate};
use super::errors::{auth_error, misconfigured, to_core_error};
use crate::sensitive::Sensitive;

const CERTIFICATE_MODE: &str = "service_principal_certificate";

/// Client-credentials grant with a secret, at `{authority}{tenant}/oauth2/v2.0/token`.
pub(crate) fn client_secret_factory(
    client_options: ClientOptions,
    tenant_id: &str,
    client_id: &str,
    secret: &Sensitive,
) -> CredentialFactory {
    let (tenant_id, client_id, secret) =
        (tenant_id.to_string(), client_id.to_string(), secret.clone());
    Arc::new(move || {
        let options = ClientSecretCredentialOptions {
            client_options: client_options.clone(),
        };
        let credential = ClientSecretCredential::new(
            &tenant_id,
            client_id.clone(),
            Secret::new(secret.expose().to_string()),
            Some(options),
        )?;
        Ok(credential as Arc<dyn TokenCredential>)
    })
}

/// Reads `clientcert` (PEM or base64 PFX with an RSA key); the error names `clientcert`.
pub(crate) fn parse_certificate(clientcert: &Sensitive) -> Result<ClientCertificate, AuthError> {
    ClientCertificate::parse(clientcert)
        .map_err(|problem| auth_error(CERTIFICATE_MODE, format!("clientcert {problem}")))
}

/// [`parse_certificate`] on the bounded blocking pool ([`crate::blocking`]): base64, the PFX
/// opening (key derivation included), PEM and RSA key parsing never run on the async runtime.
/// A parse that overruns the pool's timeout fails the mount with an error naming `clientcert`.
pub(crate) async fn parse_certificate_blocking(
    clientcert: &Sensitive,
) -> Result<ClientCertificate, AuthError> {
    let clientcert = clientcert.clone();
    match crate::blocking::run(move || parse_certificate(&clientcert)).await {
        Ok(parsed) => parsed,
        Err(e) => Err(auth_error(
            CERTIFICATE_MODE,
            format!("clientcert could not be parsed: parsing {e}"),
        )),
    }
}

/// The token endpoint, which is also the assertion's audience: the authority host with the
/// absolute path `/{tenant}/oauth2/v2.0/token`, exactly as azure_identity builds its request URL.
pub(crate) fn token_endpoint(authority_host: &str, tenant_id: &str) -> Result<String, AuthError> {
    url::Url::parse(authority_host)
        .and_then(|host| host.join(&format!("/{tenant_id}/oauth2/v2.0/token")))
        .map(String::from)
        .map_err(|e| {
            misconfigured(
                CERTIFICATE_MODE,
                format!(
                    "invalid activeDirectoryEndpoint {:?}: {e}",
                    crate::text::echo(authority_host)
                ),
            )
        })
}

/// Client-assertion grant signed with the certificate's key, a fresh assertion per request.
pub(crate) fn client_certificate_factory(
    client_options: ClientOptions,
    tenant_id: &str,
    client_id: &str,
    audience: String,
    certificate: ClientCertificate,
) -> CredentialFactory {
    let signer = CertificateAssertion {
        certificate: Arc::new(certificate),
        audience,
        client_id: client_id.to_string(),
    };
    let (tenant_id, client_id) = (tenant_id.to_string(), client_id.to_string());
    Arc::new(move || {
        let options = ClientAssertionCredentialOptions {
            client_options: client_options.clone(),
        };
        let credential = ClientAssertionCredential::new(
            tenant_id.clone(),
            client_id.clone(),
            signer.clone(),
            Some(options),
        )?;
        Ok(credential as Arc<dyn TokenCredential>)
    })
}

/// Signs an assertion each time the SDK asks for one.
#[derive(Clone, Debug)]
struct CertificateAssertion {
    certificate: Arc<ClientCertificate>,
    audience: String,
    client_id: String,
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        let claims = AssertionClaims {
            audience: &self.audience,
            client_id: &self.client_id,
            now: OffsetDateTime::now_utc().unix_timestamp(),
        };
        self.certificate
            .assertion(&claims)
            .map(|assertion| assertion.expose().to_string())
            .map_err(|problem| to_core_error(auth_error(CERTIFICATE_MODE, problem)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_endpoint_is_the_sdks_request_url() {
        for (host, expected) in [
            (
                "https://login.microsoftonline.com/",
                "https://login.microsoftonline.com/t1/oauth2/v2.0/token",
            ),
            (
                "https://login.chinacloudapi.cn",
                "https://login.chinacloudapi.cn/t1/oauth2/v2.0/token",
            ),
        ] {
            assert_eq!(token_endpoint(host, "t1").unwrap(), expected);
        }
        let err = token_endpoint("not a url", "t1").unwrap_err().0;
        assert!(
            err.starts_with("service_principal_certificate: invalid activeDirectoryEndpoint"),
            "{err}"
        );
    }
}
