//! Test support shared by the integration tests and the benchmark: an in-repo fake of Key Vault,
//! Entra ID, IMDS and NMI ([`fake`]), and a driver-side gRPC client over a Unix socket ([`driver`]).
#![allow(dead_code)]

pub mod driver;
pub mod fake;
