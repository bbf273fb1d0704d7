//! The driver-facing side: the Unix socket, the gRPC services (`v1alpha1.CSIDriverProvider`,
//! `grpc.health.v1.Health`) and graceful shutdown.
//!
//! - [`parse_endpoint`] (from [`crate::endpoint`]) reads `--endpoint` as the Go provider does.
//! - [`Server::bind`] creates the listener (a stale socket is replaced, the new one is owner-only,
//!   see [`socket`]), so bind errors surface before serving and tests know when the socket is
//!   ready; [`Server::serve`] then serves until the shutdown future resolves.
//! - A `tcp://` endpoint has no file mode to protect it, and the provider API has no
//!   authentication: it is refused unless it binds loopback only, or [`BindOptions`] (the
//!   `--allow-non-loopback-tcp-endpoint` flag) explicitly allows more.
//! - Every accepted connection goes through [`authority::AuthorityFix`], which makes the socket
//!   path that drivers up to v1.5.x send as `:authority` acceptable to `h2`.
//! - `Mount` is delegated to a [`MountHandler`] with the deadline from `grpc-timeout`; the server
//!   knows nothing else about the provider.
//! - On shutdown: stop accepting, answer health `NOT_SERVING`, let in-flight calls finish for up
//!   to `grace`, close whatever is left, remove the socket file.

pub mod authority;
mod conn;
mod service;
pub mod socket;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::time::Instant;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tonic_health::ServingStatus;

pub use crate::endpoint::{Endpoint, InvalidEndpoint, parse_endpoint};
use crate::pb;
use crate::pb::csi_driver_provider_server::CsiDriverProviderServer;
pub use service::parse_grpc_timeout;

/// What the gRPC `Mount` call delegates to (the provider).
#[async_trait::async_trait]
pub trait MountHandler: Send + Sync + 'static {
    /// `deadline` comes from the call's `grpc-timeout`, if any.
    async fn mount(
        &self,
        request: pb::MountRequest,
        deadline: Option<Instant>,
    ) -> Result<pb::MountResponse, tonic::Status>;
}

type Handler = Arc<dyn MountHandler>;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    InvalidEndpoint(#[from] InvalidEndpoint),
    #[error("refusing to replace {path}: it is a {kind}, not a socket")]
    NotASocket { path: PathBuf, kind: &'static str },
    #[error("cannot inspect {path}: {source}")]
    Inspect { path: PathBuf, source: io::Error },
    #[error(
        "another process still serves {path} (waited {waited:?}): a second provider on this socket? (the AKS add-on's must be disabled first)"
    )]
    InUse { path: PathBuf, waited: Duration },
    #[error("cannot remove the stale socket {path}: {source}")]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("cannot listen on {endpoint}: {source}")]
    Bind { endpoint: String, source: io::Error },
    #[error(
        "refusing to listen on {endpoint}: the provider API has no authentication, so a tcp:// endpoint must be a loopback address (127.0.0.1, ::1, localhost) unless --allow-non-loopback-tcp-endpoint is set"
    )]
    NonLoopbackTcp { endpoint: String },
    #[error("cannot restrict the permissions of {path}: {source}")]
    Permissions { path: PathBuf, source: io::Error },
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// How the gRPC endpoint may be bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// Allow a `tcp://` endpoint on an address other than loopback (every address included).
    pub allow_non_loopback_tcp: bool,
}

/// How long to pause after a failed `accept` (e.g. out of file descriptors) before the next one,
/// so the accept loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// After the grace period, how long to wait for the killed connections to wind down.
const KILL_WAIT: Duration = Duration::from_secs(1);

enum Listener {
    Unix(UnixListener, socket::SocketFile),
    Tcp(TcpListener),
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: Listener,
    endpoint: Endpoint,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Creates the listener. For Unix: a stale socket at the path is removed (a live one, or
    /// anything else there, is an error: see [`socket::wait_for_handover`]), the socket is created
    /// owner-only (mode [`socket::SOCKET_MODE`]). A `tcp://` endpoint must be loopback (see
    /// [`Server::bind_with`]).
    pub async fn bind(endpoint: &Endpoint) -> Result<Server, ServerError> {
        Self::bind_with(endpoint, &BindOptions::default()).await
    }

    /// [`Server::bind`], with `options` saying whether a `tcp://` endpoint may listen beyond
    /// loopback. The check is on the address actually bound, so a host name resolving to a
    /// non-loopback address is refused too.
    pub async fn bind_with(
        endpoint: &Endpoint,
        options: &BindOptions,
    ) -> Result<Server, ServerError> {
        match endpoint {
            Endpoint::Unix(path) => {
                let (listener, file) = socket::bind(path).await?;
                Ok(Server {
                    listener: Listener::Unix(listener, file),
                    endpoint: endpoint.clone(),
                })
            }
            Endpoint::Tcp(address) => {
                // Go's `net.Listen("tcp", ":7777")` listens on every interface.
                let address = if address.starts_with(':') {
                    format!("0.0.0.0{address}")
                } else {
                    address.clone()
                };
                let listener =
                    TcpListener::bind(&address)
                        .await
                        .map_err(|source| ServerError::Bind {
                            endpoint: endpoint.to_string(),
                            source,
                        })?;
                let local = listener.local_addr().map_err(|source| ServerError::Bind {
                    endpoint: endpoint.to_string(),
                    source,
                })?;
                if !options.allow_non_loopback_tcp && !local.ip().to_canonical().is_loopback() {
                    return Err(ServerError::NonLoopbackTcp {
                        endpoint: endpoint.to_string(),
                    });
                }
                if !local.ip().to_canonical().is_loopback() {
                    tracing::warn!(
                        endpoint = %endpoint,
                        "the gRPC endpoint listens beyond loopback without authentication (--allow-non-loopback-tcp-endpoint)"
                    );
                }
                Ok(Server {
                    listener: Listener::Tcp(listener),
                    endpoint: Endpoint::Tcp(local.to_string()),
                })
            }
        }
    }

    /// Where the server listens (for TCP, the actual address, e.g. after binding port 0).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Serves until `shutdown` resolves, then drains for up to `grace` and removes the socket.
    pub async fn serve(
        self,
        handler: Arc<dyn MountHandler>,
        shutdown: impl Future<Output = ()> + Send,
        grace: Duration,
    ) -> Result<(), ServerError> {
        tracing::info!(endpoint = %self.endpoint, "serving the driver");
        match self.listener {
            Listener::Unix(listener, socket_file) => {
                let result = run(UnixListenerStream::new(listener), handler, shutdown, grace).await;
                drop(socket_file);
                result
            }
            Listener::Tcp(listener) => {
                run(TcpListenerStream::new(listener), handler, shutdown, grace).await
            }
        }
    }
}

/// Binds `endpoint` and serves it (see [`Server::bind`] and [`Server::serve`]).
pub async fn serve(
    endpoint: &Endpoint,
    handler: Arc<dyn MountHandler>,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> Result<(), ServerError> {
    Server::bind(endpoint)
        .await?
        .serve(handler, shutdown, grace)
        .await
}

async fn run<IO>(
    accepted: impl Stream<Item = io::Result<IO>> + Send + 'static,
    handler: Handler,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> Result<(), ServerError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
{
    // Cancelled when the grace period runs out, or when this future is dropped.
    let kill = CancellationToken::new();
    let _kill_on_drop = kill.clone().drop_guard();
    let incoming = {
        let kill = kill.clone();
        accepted.then(move |accepted| {
            let kill = kill.clone();
            async move {
                match accepted {
                    Ok(io) => Ok(conn::Connection::new(io, &kill)),
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a driver connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        Err(e)
                    }
                }
            }
        })
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    health
        .set_serving::<CsiDriverProviderServer<service::ProviderService>>()
        .await;

    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down: no new connections, draining in-flight calls"
        );
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        health
            .set_not_serving::<CsiDriverProviderServer<service::ProviderService>>()
            .await;
        let _ = draining_tx.send(());
    };
    let serving = tonic::transport::Server::builder()
        .max_frame_size(Some(authority::MAX_FRAME_SIZE as u32))
        .add_service(health_service)
        .add_service(CsiDriverProviderServer::new(service::ProviderService::new(
            handler,
        )))
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(serving);

    let grace_expired = async {
        match draining_rx.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = &mut serving => result.map_err(ServerError::from),
        () = grace_expired => {
            tracing::warn!("shutdown grace period expired: closing the connections still open");
            kill.cancel();
            match tokio::time::timeout(KILL_WAIT, serving).await {
                Ok(result) => result.map_err(ServerError::from),
                Err(_) => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_endpoints_are_loopback_unless_allowed() {
        for loopback in ["tcp://127.0.0.1:0", "tcp://localhost:0"] {
            let endpoint = parse_endpoint(loopback).unwrap();
            assert!(Server::bind(&endpoint).await.is_ok(), "{loopback}");
        }
        for remote in ["tcp://:0", "tcp://0.0.0.0:0"] {
            let endpoint = parse_endpoint(remote).unwrap();
            let error = Server::bind(&endpoint).await.unwrap_err();
            assert!(
                matches!(error, ServerError::NonLoopbackTcp { .. }),
                "{error}"
            );
            assert!(
                error
                    .to_string()
                    .contains("--allow-non-loopback-tcp-endpoint")
            );
            let allowed = BindOptions {
                allow_non_loopback_tcp: true,
            };
            assert!(
                Server::bind_with(&endpoint, &allowed).await.is_ok(),
                "{remote}"
            );
        }
    }
}
