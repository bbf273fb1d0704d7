//! Transient identity-service faults retried in one place, for every identity mode: a
//! [`RetryingClient`] wraps the transport each token endpoint is reached through (Entra ID's token
//! endpoint for service principals and workload identity, IMDS, NMI), below the SDK credentials
//! (whose own retries are off) and our own NMI client.
//!
//! What is retried, per endpoint:
//! - every endpoint: a failed connection, a reset or a timeout (no HTTP answer);
//! - Entra ID: HTTP 408, 429 and 5xx. A definite rejection (400 or 401 with an `AADSTS` code: bad
//!   secret, unknown client, no federated credential) is never retried;
//! - IMDS: HTTP 404, 410, 429 and 5xx, as Microsoft's retry guidance for managed identities asks
//!   (<https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/how-to-use-vm-token#error-handling>;
//!   410 while IMDS is updating:
//!   <https://learn.microsoft.com/en-us/azure/virtual-machines/instance-metadata-service#errors-and-debugging>);
//! - NMI: HTTP 5xx (its 403 and 404 name a pod without an identity).
//!
//! At most `--auth-max-retries` retries per token request, with jittered exponential back-off
//! (the Key Vault client's, [`crate::backoff`]), or the service's `Retry-After` plus
//! jitter; never past the mount's deadline ([`within_deadline`]): a wait that would end after it
//! is not started and the last answer is returned as it is, and an attempt still running at the
//! deadline is abandoned. A token request made outside a mount (tools, tests) gets
//! [`DEFAULT_WINDOW`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::http::headers::{RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
use azure_core::http::policies::get_retry_after;
use azure_core::http::{AsyncRawResponse, HttpClient, Request};
use azure_core::time::OffsetDateTime;
use tokio::time::Instant;

use crate::backoff::{backoff, with_jitter};
use crate::transport::Transport;

/// Default of `--auth-max-retries`: retries after the first attempt of one token request.
pub const DEFAULT_AUTH_MAX_RETRIES: u32 = 3;
/// How long a token request made outside any mount may keep retrying.
pub(crate) const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `future` (a mount's identity resolution, a Key Vault attempt) with `deadline` as the
/// limit of every token request it makes.
pub async fn within_deadline<F: Future>(deadline: Instant, future: F) -> F::Output {
    DEADLINE.scope(deadline, future).await
}

fn current_deadline() -> Instant {
    DEADLINE
        .try_with(|deadline| *deadline)
        .unwrap_or_else(|_| Instant::now() + DEFAULT_WINDOW)
}

/// The token endpoint a [`RetryingClient`] talks to; it decides which answers are transient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Entra,
    Imds,
    Nmi,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Entra => "entra",
            Endpoint::Imds => "imds",
            Endpoint::Nmi => "nmi",
        }
    }

    /// Whether an HTTP answer of this status is worth another attempt.
    pub(crate) fn is_transient(self, status: u16) -> bool {
        match self {
            Endpoint::Entra => matches!(status, 408 | 429) || status >= 500,
            Endpoint::Imds => matches!(status, 404 | 410 | 429) || status >= 500,
            Endpoint::Nmi => status >= 500,
        }
    }
}

/// Retries transient faults of one token endpoint (see the module doc).
#[derive(Debug)]
pub(crate) struct RetryingClient {
    inner: Arc<dyn HttpClient>,
    endpoint: Endpoint,
    max_retries: u32,
}

/// `transport`, with transient faults of `endpoint` retried up to `max_retries` times.
pub(crate) fn retrying(transport: &Transport, endpoint: Endpoint, max_retries: u32) -> Transport {
    Transport::from_client(retrying_client(
        transport.http_client(),
        endpoint,
        max_retries,
    ))
}

/// `inner`, with transient faults of `endpoint` retried up to `max_retries` times (for clients
/// built outside a [`Transport`], such as identity binding's token-proxy client).
pub(crate) fn retrying_client(
    inner: Arc<dyn HttpClient>,
    endpoint: Endpoint,
    max_retries: u32,
) -> Arc<dyn HttpClient> {
    Arc::new(RetryingClient {
        inner,
        endpoint,
        max_retries,
    })
}

#[async_trait::async_trait]
impl HttpClient for RetryingClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let deadline = current_deadline();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let outcome = match tokio::time::timeout_at(
                deadline,
                self.inner.execute_request(request),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Err(azure_core::Error::with_message(
                        ErrorKind::Io,
                        format!(
                            "no answer from {} before the mount deadline (attempt {attempt})",
                            self.endpoint.name()
                        ),
                    ));
                }
            };
            let (wait, status) = match &outcome {
                Ok(response) if self.endpoint.is_transient(u16::from(response.status())) => {
                    let asked = get_retry_after(
                        response.headers(),
                        OffsetDateTime::now_utc,
                        &[X_MS_RETRY_AFTER_MS, RETRY_AFTER_MS, RETRY_AFTER],
                    )
                    .and_then(|d| Duration::try_from(d).ok());
                    let wait = asked.map_or_else(|| backoff(attempt), with_jitter);
                    (wait, u16::from(response.status()))
                }
                Err(error) if matches!(error.kind(), ErrorKind::Io | ErrorKind::Connection) => {
                    (backoff(attempt), 0)
                }
                _ => return outcome,
            };
            if attempt > self.max_retries || Instant::now() + wait >= deadline {
                return outcome;
            }
            tracing::debug!(
                endpoint = self.endpoint.name(),
                attempt,
                status,
                wait_ms = wait.as_millis() as u64,
                "transient token endpoint fault, retrying"
            );
            drop(outcome);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses_per_endpoint() {
        for status in [500, 502, 503, 504, 429] {
            assert!(Endpoint::Entra.is_transient(status), "{status}");
            assert!(Endpoint::Imds.is_transient(status), "{status}");
        }
        for status in [400, 401, 403, 404] {
            assert!(!Endpoint::Entra.is_transient(status), "{status}");
        }
        assert!(Endpoint::Imds.is_transient(410));
        assert!(Endpoint::Imds.is_transient(404));
        assert!(!Endpoint::Imds.is_transient(400));
        assert!(Endpoint::Nmi.is_transient(500));
        assert!(!Endpoint::Nmi.is_transient(403));
        assert!(!Endpoint::Nmi.is_transient(429));
    }

    #[tokio::test]
    async fn the_deadline_comes_from_the_scope() {
        let deadline = Instant::now() + Duration::from_secs(3);
        let seen = within_deadline(deadline, async { current_deadline() }).await;
        assert_eq!(seen, deadline);
        assert!(current_deadline() > Instant::now() + DEFAULT_WINDOW / 2);
    }
}
