//! Arbitrary text as a PEM certificate-backed secret, rendered with the `.crt`/`.key` split in
//! every `objectEncoding`; the same bytes through `certificate_expiries` (the expiry metric).
#![no_main]

use akv_csi_provider::content::{
    CONTENT_TYPE_PEM, ContentOptions, SecretBundle, certificate_expiries, render_secret,
};
use akv_csi_provider::request::{ObjectEncoding, ObjectFormat};
use akv_csi_provider::sensitive::Sensitive;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = certificate_expiries(data);
    let bundle = SecretBundle {
        value: Some(Sensitive::new(String::from_utf8_lossy(data))),
        content_type: Some(CONTENT_TYPE_PEM.into()),
        kid: Some("https://kvname.vault.azure.net/keys/cert1/0123456789abcdef".into()),
    };
    let options = ContentOptions {
        construct_pem_chain: true,
        write_cert_and_key_in_separate_files: true,
    };
    for encoding in [
        ObjectEncoding::Utf8,
        ObjectEncoding::Base64,
        ObjectEncoding::Hex,
    ] {
        let _ = render_secret(&bundle, ObjectFormat::Pem, encoding, &options);
    }
});
