//! The node's managed identity through IMDS (`useVMManagedIdentity`), system-assigned or
//! user-assigned by client id or ARM resource ID.
//!
//! The SDK hard-codes IMDS at `169.254.169.254` and its own retry policy (up to 72 s for 5xx, 404,
//! 410, 429 and connection errors), which would outlast the driver's mount deadline. The request
//! goes through our transport, whose retries ([`super::retry`]) stop at the mount's deadline,
//! wrapped in [`SingleAttempt`], which turns the last outcome into an error the SDK does not
//! retry again.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{AsyncRawResponse, ClientOptions, HttpClient, Request, StatusCode};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};

use super::cache::CredentialFactory;
use crate::transport::Transport;

/// A managed identity credential built on `transport`, one IMDS attempt per acquisition.
pub(crate) fn managed_identity_factory(
    transport: &Transport,
    user_assigned_id: Option<&str>,
) -> CredentialFactory {
    let client_options = ClientOptions {
        transport: Some(azure_core::http::Transport::new(Arc::new(SingleAttempt {
            inner: transport.http_client(),
        }))),
        ..transport.client_options()
    };
    // The request parser admits a GUID client id or an ARM resource ID; the latter is sent to
    // IMDS as `msi_res_id` instead of being passed off as a client id.
    let user_assigned_id =
        user_assigned_id
            .filter(|id| !id.is_empty())
            .map(|id| match id.starts_with('/') {
                true => UserAssignedId::ResourceId(id.to_string()),
                false => UserAssignedId::ClientId(id.to_string()),
            });
    Arc::new(move || {
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: user_assigned_id.clone(),
            client_options: client_options.clone(),
        };
        Ok(ManagedIdentityCredential::new(Some(options))? as Arc<dyn TokenCredential>)
    })
}

/// Makes the SDK's IMDS retry policy give up after the first attempt.
#[derive(Debug)]
struct SingleAttempt {
    inner: Arc<dyn HttpClient>,
}

/// Statuses the SDK's IMDS policy would retry.
fn is_retried(status: StatusCode) -> bool {
    let code = u16::from(status);
    code >= 500 || matches!(code, 404 | 410 | 429)
}

#[async_trait::async_trait]
impl HttpClient for SingleAttempt {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        match self.inner.execute_request(request).await {
            Ok(response) if is_retried(response.status()) => {
                let status = response.status();
                Err(azure_core::Error::with_message(
                    ErrorKind::HttpResponse {
                        status,
                        error_code: None,
                        raw_response: None,
                    },
                    "IMDS is unavailable",
                ))
            }
            Ok(response) => Ok(response),
            Err(e) if matches!(e.kind(), ErrorKind::Io | ErrorKind::Connection) => Err(
                azure_core::Error::with_error(ErrorKind::Other, e, "IMDS is unreachable"),
            ),
            Err(e) => Err(e),
        }
    }
}
