//! Service principals from the pod's `nodePublishSecretRef`: client secret (supported) and client
//! certificate (not in this build: azure_identity's certificate credential needs OpenSSL).

use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};

use super::AuthError;
use super::cache::CredentialFactory;
use super::errors::auth_error;
use crate::sensitive::Sensitive;

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

/// `clientcert` in nodePublishSecretRef: refused with a clear reason.
pub(crate) fn certificate_unsupported(mode: &str) -> AuthError {
    auth_error(
        mode,
        "a service principal with a client certificate (clientcert) is not supported by this build; \
         use clientsecret or workload identity",
    )
}
