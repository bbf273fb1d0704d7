//! The two plain-HTTP servers: `/metrics` (Prometheus) and the health endpoint (`/healthz`).
//!
//! Each is bound first ([`bind_metrics`], [`bind_health`]) so that a port already in use is a
//! startup error (the Go provider silently ignored it), then served with [`HttpServer::serve`]
//! until a shutdown future resolves. HTTP/1 only. The metrics server answers `GET /metrics` and
//! nothing else: no debug or profiling endpoints, unlike upstream's shared default mux.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use super::health::check_grpc_health;
use super::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};
use crate::server::Endpoint;

/// A server could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} for the {server} server: {source}")]
pub struct BindError {
    pub server: &'static str,
    pub address: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// What the health endpoint checks.
#[derive(Clone, Debug)]
pub struct HealthConfig {
    /// URL path answered (`--healthz-path`); a missing leading `/` is added.
    pub path: String,
    /// The provider's own gRPC endpoint (`--endpoint`).
    pub endpoint: Endpoint,
    /// Deadline of the gRPC health check (`--healthz-timeout`).
    pub timeout: Duration,
}

/// `0.0.0.0:<port>`, where upstream listens.
pub fn all_interfaces(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

/// A bound, not yet serving, HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
}

impl HttpServer {
    async fn bind(
        server: &'static str,
        address: SocketAddr,
        router: Router,
    ) -> Result<Self, BindError> {
        let bind_error = |source| BindError {
            server,
            address,
            source,
        };
        let listener = TcpListener::bind(address).await.map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            router,
            address,
        })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Binds the metrics server: `GET /metrics` with `metrics` encoded, 404 for anything else.
pub async fn bind_metrics(
    address: SocketAddr,
    metrics: &'static Metrics,
) -> Result<HttpServer, BindError> {
    let router = Router::new()
        .route("/metrics", get(serve_metrics).fallback(not_found))
        .fallback(not_found)
        .with_state(metrics);
    HttpServer::bind("metrics", address, router).await
}

/// Binds the health server: at `config.path`, 200 `ok` when the gRPC health check passes, else 503
/// with the reason; 404 for other paths.
pub async fn bind_health(
    address: SocketAddr,
    mut config: HealthConfig,
) -> Result<HttpServer, BindError> {
    if !config.path.starts_with('/') {
        config.path.insert(0, '/');
    }
    // Matched by hand rather than with a route: any configured path is valid, even one that
    // axum's route syntax would reject.
    let router = Router::new()
        .fallback(serve_health)
        .with_state(Arc::new(config));
    HttpServer::bind("health", address, router).await
}

async fn serve_metrics(State(metrics): State<&'static Metrics>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        metrics.encode(),
    )
        .into_response()
}

async fn serve_health(State(config): State<Arc<HealthConfig>>, uri: Uri) -> Response {
    if uri.path() != config.path {
        return not_found().await;
    }
    match check_grpc_health(&config.endpoint, config.timeout).await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
        }
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}
