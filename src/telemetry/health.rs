//! The gRPC health check behind `/healthz`: a `grpc.health.v1.Health/Check` over the provider's own
//! endpoint, so the probe proves the socket the driver uses really answers.

use std::error::Error;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};
use tonic::transport::{Channel, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::endpoint::Endpoint;

/// Checks that the provider's gRPC server at `endpoint` reports `SERVING` within `timeout`
/// (connecting included). The error is a one-line reason fit for the `/healthz` body.
pub async fn check_grpc_health(endpoint: &Endpoint, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, check(endpoint)).await {
        Ok(result) => result,
        Err(_) => Err(format!("health check timed out after {timeout:?}")),
    }
}

async fn check(endpoint: &Endpoint) -> Result<(), String> {
    let channel = connect(endpoint)
        .await
        .map_err(|e| format!("cannot connect to {endpoint}: {}", error_chain(&e)))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map_err(|status| {
            format!(
                "health check failed: {:?}: {}",
                status.code(),
                status.message()
            )
        })?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => Err(format!("health status {}", other.as_str_name())),
    }
}

/// A channel over the endpoint's Unix socket or TCP address; the `:authority` is `localhost`.
pub(crate) async fn connect(endpoint: &Endpoint) -> Result<Channel, tonic::transport::Error> {
    let target = endpoint.clone();
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let target = target.clone();
            async move {
                match target {
                    Endpoint::Unix(path) => UnixStream::connect(path)
                        .await
                        .map(|s| TokioIo::new(Box::new(s) as Box<dyn Stream>)),
                    Endpoint::Tcp(address) => TcpStream::connect(address.as_str())
                        .await
                        .map(|s| TokioIo::new(Box::new(s) as Box<dyn Stream>)),
                }
            }
        }))
        .await
}

/// A byte stream of either kind of endpoint.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

/// `error: cause: cause...`, without repeats — tonic's transport errors say little without their sources.
pub(crate) fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their source's message; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
