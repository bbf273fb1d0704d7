//! Binary entry point: parse flags, wire the parts together, serve.
use clap::Parser;

fn main() {
    let flags = akv_csi_provider::config::Flags::parse();
    if flags.version {
        println!("{{\"version\":\"{}\"}}", akv_csi_provider::RUNTIME_VERSION);
    }
}
