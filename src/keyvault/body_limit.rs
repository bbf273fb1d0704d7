//! A per-try pipeline policy that bounds every Key Vault response body as it is read: a body
//! announcing (`Content-Length`) or streaming more than [`MAX_RESPONSE_BODY_BYTES`] fails the call
//! at once, before the SDK buffers or parses it. Key Vault's own values are at most 25 KB and a
//! list page holds at most 25 items, so the cap only ever stops a vault (or something posing as
//! one) that sends far more than the service can.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{AsyncRawResponse, Context, Request};
use bytes::Bytes;
use futures::Stream;

/// Largest Key Vault response body read (per HTTP exchange, list pages included): 256 KiB, ten
/// times the 25 KB Key Vault allows for a secret value. With a mount's first window of
/// concurrent fetches (64) this bounds what is in flight before the response budget can act
/// to 16 MiB.
pub const MAX_RESPONSE_BODY_BYTES: usize = 256 * 1024;

/// The policy; one instance serves every client.
#[derive(Debug)]
pub(crate) struct BodyLimit {
    max_bytes: usize,
}

impl BodyLimit {
    pub(super) fn policy(max_bytes: usize) -> Arc<dyn Policy> {
        Arc::new(Self { max_bytes })
    }
}

/// The error a too-large body becomes: a data error, so the call is not retried.
fn too_large(max_bytes: usize) -> azure_core::Error {
    azure_core::Error::with_message(
        ErrorKind::DataConversion,
        format!("the response body is larger than the limit of {max_bytes} bytes"),
    )
}

#[async_trait::async_trait]
impl Policy for BodyLimit {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let (status, headers, body) = response.deconstruct();
        let announced = headers
            .get_optional_str(&azure_core::http::headers::CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > self.max_bytes as u64) {
            return Err(too_large(self.max_bytes));
        }
        let capped = Capped {
            inner: Box::pin(body),
            left: self.max_bytes,
            max_bytes: self.max_bytes,
            failed: false,
        };
        Ok(AsyncRawResponse::new(status, headers, Box::pin(capped)))
    }
}

/// A body stream that fails once more than `max_bytes` came through.
struct Capped<S> {
    inner: Pin<Box<S>>,
    left: usize,
    max_bytes: usize,
    failed: bool,
}

impl<S> Stream for Capped<S>
where
    S: Stream<Item = azure_core::Result<Bytes>>,
{
    type Item = azure_core::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if chunk.len() > self.left {
                    self.failed = true;
                    return Poll::Ready(Some(Err(too_large(self.max_bytes))));
                }
                self.left -= chunk.len();
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn chunks(sizes: &[usize]) -> impl Stream<Item = azure_core::Result<Bytes>> {
        let items: Vec<azure_core::Result<Bytes>> = sizes
            .iter()
            .map(|n| Ok(Bytes::from(vec![b'x'; *n])))
            .collect();
        futures::stream::iter(items)
    }

    #[tokio::test]
    async fn bodies_within_the_cap_pass_whole() {
        let capped = Capped {
            inner: Box::pin(chunks(&[400, 600])),
            left: 1000,
            max_bytes: 1000,
            failed: false,
        };
        let got: Vec<_> = capped.collect().await;
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_body_over_the_cap_fails_without_retry() {
        let mut capped = Capped {
            inner: Box::pin(chunks(&[600, 600, 600])),
            left: 1000,
            max_bytes: 1000,
            failed: false,
        };
        assert!(capped.next().await.unwrap().is_ok());
        let err = capped.next().await.unwrap().unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::DataConversion));
        assert!(err.to_string().contains("1000 bytes"), "{err}");
        assert!(
            capped.next().await.is_none(),
            "nothing is read after the failure"
        );
    }
}
