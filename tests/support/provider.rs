//! The provider served in-process on a Unix socket in a temporary directory, as the driver sees it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use akv_csi_provider::provider::{Provider, ProviderOptions};
use akv_csi_provider::server::{Endpoint, MountHandler, Server};
use akv_csi_provider::transport::Transport;
use tokio::sync::oneshot;

use super::driver::Driver;

/// A serving provider; dropping it shuts the server down.
pub struct RunningProvider {
    socket: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl RunningProvider {
    /// Our provider with these options, every Azure call through `transport`.
    pub async fn start(transport: Transport, options: ProviderOptions) -> Self {
        Self::start_handler(Arc::new(Provider::new(transport, options))).await
    }

    /// Any mount handler behind the real server.
    pub async fn start_handler(handler: Arc<dyn MountHandler>) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let socket = dir.path().join("azure.sock");
        let server = Server::bind(&Endpoint::Unix(socket.clone()))
            .await
            .expect("bind the provider socket");
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(server.serve(
            handler,
            async move {
                let _ = stop.await;
            },
            Duration::from_secs(5),
        ));
        Self {
            socket,
            shutdown: Some(shutdown),
            _dir: dir,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A new driver connection (one HTTP/2 connection, as the driver keeps one per provider).
    pub async fn driver(&self) -> Driver {
        Driver::connect(&self.socket).await
    }
}

impl Drop for RunningProvider {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
