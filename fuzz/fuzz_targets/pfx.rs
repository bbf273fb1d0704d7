//! Arbitrary bytes as a PKCS#12 file: base64-encoded as Key Vault returns it, then rendered as a
//! certificate-backed secret (PFX → PKCS#8 keys + certificates), with and without chain ordering
//! and with the split into `.crt`/`.key`.
#![no_main]

use akv_csi_provider::content::{CONTENT_TYPE_PFX, ContentOptions, SecretBundle, render_secret};
use akv_csi_provider::request::{ObjectEncoding, ObjectFormat};
use akv_csi_provider::sensitive::Sensitive;
use base64::Engine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|der: &[u8]| {
    let bundle = SecretBundle {
        value: Some(Sensitive::new(
            base64::engine::general_purpose::STANDARD.encode(der),
        )),
        content_type: Some(CONTENT_TYPE_PFX.into()),
        kid: Some("https://kvname.vault.azure.net/keys/cert1/0123456789abcdef".into()),
    };
    for construct_pem_chain in [true, false] {
        let options = ContentOptions {
            construct_pem_chain,
            write_cert_and_key_in_separate_files: construct_pem_chain,
        };
        let _ = render_secret(&bundle, ObjectFormat::Pem, ObjectEncoding::Utf8, &options);
    }
});
