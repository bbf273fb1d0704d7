//! Arbitrary bytes as an Azure Stack environment file → `CloudEnvironment::from_json`, the parser
//! and validator behind `cloudEnvFileName` and `AZURE_ENVIRONMENT_FILEPATH`.
//!
//! Beyond "never panics": an accepted file yields endpoints that are absolute URLs with a
//! trailing slash and a vault URL whose host ends with the DNS suffix; a refused one gets a short
//! message (it names the key, never quotes the file).
#![no_main]

use akv_csi_provider::request::CloudEnvironment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match CloudEnvironment::from_json(data) {
        Ok(cloud) => {
            for endpoint in [&cloud.active_directory_endpoint, &cloud.key_vault_endpoint] {
                assert!(endpoint.ends_with('/'));
                assert!(url::Url::parse(endpoint).is_ok());
            }
            let vault = url::Url::parse(&cloud.vault_url("kv1")).expect("vault URL");
            let host = vault.host_str().expect("vault host");
            assert!(host.ends_with(&cloud.key_vault_dns_suffix.to_ascii_lowercase()));
            assert!(!cloud.name.chars().any(char::is_control));
        }
        Err(e) => {
            assert!(
                e.starts_with("not a valid Azure Stack environment file: "),
                "{e}"
            );
            assert!(e.len() < 256, "{e}");
        }
    }
});
