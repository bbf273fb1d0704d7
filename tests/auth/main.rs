//! Identity modes and the cross-mount credential cache, against the in-repo fake of Entra ID,
//! IMDS and NMI over real HTTP (the redirecting transport; nothing leaves loopback). One file per
//! identity mode; `common` holds what they share.

#[path = "../support/mod.rs"]
mod support;

mod common;

mod certificate;
mod identity_binding;
mod managed;
mod pod_identity;
mod service_principal;
mod store;
mod workload;
