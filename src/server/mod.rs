//! The driver-facing side: the Unix socket, the gRPC services (`v1alpha1.CSIDriverProvider`,
//! `grpc.health.v1.Health`) and graceful shutdown.
//!
//! TODO(server helper): implement (endpoint parsing, socket, :authority normalisation, services).

use std::sync::Arc;

use tokio::time::Instant;

use crate::pb;

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

/// Where to listen: `unix:///path/azure.sock` or `tcp://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(std::path::PathBuf),
    Tcp(String),
}

#[allow(dead_code)]
type Handler = Arc<dyn MountHandler>;
