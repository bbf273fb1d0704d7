//! Test support shared by the integration tests and the benchmark: an in-repo fake of Key Vault,
//! Entra ID, IMDS and NMI ([`fake`]), a driver-side gRPC client over a Unix socket ([`driver`]), and
//! the provider served in-process on a temporary socket ([`provider`]).
#![allow(dead_code)]

pub mod driver;
pub mod fake;
pub mod provider;
