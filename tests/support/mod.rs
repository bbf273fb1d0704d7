//! Test support shared by the integration tests and the benchmark: an in-repo fake of Key Vault,
//! Entra ID, IMDS and NMI ([`fake`]), a driver-side gRPC client over a Unix socket ([`driver`]), and
//! the provider served in-process on a temporary socket ([`provider`]), and the binary as a child
//! process with the isolation tests' attack harness ([`process`]).
#![allow(dead_code)]
// Items are `pub` for the test crates and benches that include this module, not for a library API.
#![allow(unreachable_pub)]

pub mod driver;
pub mod fake;
pub mod process;
pub mod prom_text;
pub mod provider;
