//! Azure Key Vault provider for the Kubernetes Secrets Store CSI driver.
//!
//! A mount flows through the modules in this order:
//! [`server`] (Unix socket, gRPC) → [`request`] (attributes, parameters, objects, validation) →
//! [`auth`] (identity modes, credential cache) → [`keyvault`] (clients, retries, throttling) →
//! [`content`] (PFX/PEM/JWK/encodings) → response, orchestrated by [`provider`],
//! whose failures are one [`error::MountError`] each.
//! [`telemetry`] (logs, metrics, health) sits beside them; [`transport`] is the single HTTP seam
//! every Azure call goes through.

pub mod auth;
pub(crate) mod backoff;
pub mod blocking;
pub mod content;
pub mod endpoint;
pub mod error;
pub mod flags;
pub mod go;
pub mod keyvault;
pub mod provider;
pub mod request;
pub mod sensitive;
pub mod server;
pub mod sync;
pub mod telemetry;
pub mod text;
pub mod tools;
pub mod transport;

/// Generated from `proto/service.proto` (the driver's provider API).
pub mod pb {
    tonic::include_proto!("v1alpha1");
}

/// `runtime_name` reported by `Version`.
pub const RUNTIME_NAME: &str = "akv-csi-provider";
/// `runtime_version` reported by `Version`: the crate's semver.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Version printed by `--version`: injected at image build time (`AKV_CSI_PROVIDER_VERSION`),
/// else the crate's semver.
pub const BUILD_VERSION: &str = match option_env!("AKV_CSI_PROVIDER_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};
